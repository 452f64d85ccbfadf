"""`pull`: pull an image unless the engine already has it."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Generator

import docker
import docker.auth
import docker.errors
import requests

from ...errors import StepFailed
from ...threads import start_thread
from ..context import Context
from ..dockerapi import exists, explain, on_engine, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)

# Seconds between two progress lines of one pull.
PROGRESS_INTERVAL = 5.0
# A pull that fails with a server error or a broken connection is tried again
# this many times in all, waiting RETRY_DELAY seconds times the attempt number.
ATTEMPTS = 3
RETRY_DELAY = 1.0
# Seconds between two looks at a pull's deadline and at interrupts.
WATCH_INTERVAL = 0.1
# Seconds to connect to the engine for a pull.
CONNECT_TIMEOUT = 60.0


class TransientPullError(Exception):
    """A pull failure that may pass: a server error or a broken connection."""


def split_image(image: str) -> tuple[str, str]:
    """Split `repo:tag` or `repo[:tag]@digest` into the repository and what to pull.

    The repository may contain a registry port. A digest wins over a tag,
    since it names the exact image; the engine takes it in place of a tag.
    """
    name, _, digest = image.partition("@")
    repository, _, tag = name.rpartition(":")
    if not repository or "/" in tag:
        repository, tag = name, "latest"
    return repository, digest or tag


class PullCut(Exception):
    """A pull given up at its deadline ("timeout") or by an interrupt ("interrupt")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PullRequest:
    """One pull request to the engine, which ends by its deadline or an interrupt.

    The engine starts its response to a pull only once it has the image's
    manifest, and then streams progress events. The SDK's pull waits for both
    without limit, and leaving its generator keeps the pull running in the
    engine. Here the request goes through the SDK's own transport from a
    thread of its own, so waiting for the response can stop at the deadline
    or an interrupt. The request's read timeout ends just after the deadline,
    so a connection still waiting is dropped then.

    Once the response has started, a watchdog shuts the connection down at
    the deadline or an interrupt. A read waiting on it returns at once, and
    the engine's end of the connection closes too.
    """

    def __init__(
        self,
        client: docker.DockerClient,
        repository: str,
        tag: str,
        deadline: float,
        cancelled: threading.Event,
        on_silence: Callable[[float], None],
    ) -> None:
        self._api = client.api
        self._on_silence = on_silence
        self._last_event = self._last_note = time.monotonic()
        self._deadline = deadline
        self._cancelled = cancelled
        self._lock = threading.Lock()
        self._opened = threading.Event()
        self._done = threading.Event()
        self._response: requests.Response | None = None
        self._error: BaseException | None = None
        self._given_up = False
        self.cut: str | None = None
        registry, _ = docker.auth.resolve_repository_name(repository)
        self._headers = {}
        credentials = docker.auth.get_config_header(self._api, registry)
        if credentials:
            self._headers["X-Registry-Auth"] = credentials
        self._params = {"fromImage": repository, "tag": tag}
        start_thread(self._open, "pull-open")

    def _note_silence(self) -> None:
        """Call on_silence with the seconds since the engine last sent anything.

        It is called at most every PROGRESS_INTERVAL seconds, and only while
        the engine sends nothing.
        """
        now = time.monotonic()
        quiet = now - self._last_event
        if quiet >= PROGRESS_INTERVAL and now - self._last_note >= PROGRESS_INTERVAL:
            self._last_note = now
            self._on_silence(quiet)

    def _reason(self) -> str | None:
        if self._cancelled.is_set():
            return "interrupt"
        if time.monotonic() > self._deadline:
            return "timeout"
        return None

    def _open(self) -> None:
        try:
            response = self._api._post(
                self._api._url("/images/create"),
                params=self._params,
                headers=self._headers,
                stream=True,
                timeout=(
                    CONNECT_TIMEOUT,
                    max(self._deadline - time.monotonic(), 0) + 1.0,
                ),
            )
        except BaseException as error:
            self._error = error
        else:
            with self._lock:
                if self._given_up:
                    response.close()
                else:
                    self._response = response
        finally:
            self._opened.set()

    def _give_up(self) -> None:
        """Close the response, now or when it arrives."""
        with self._lock:
            self._given_up = True
            if self._response is not None:
                self._response.close()

    def _wait_open(self) -> requests.Response:
        try:
            while not self._opened.wait(WATCH_INTERVAL):
                reason = self._reason()
                if reason:
                    self.cut = reason
                    raise PullCut(reason)
                self._note_silence()
        except BaseException:
            # A Ctrl-C lands here too.
            self._give_up()
            raise
        if self._error is not None:
            if isinstance(self._error, requests.exceptions.Timeout) and self._reason():
                self.cut = "timeout"
                raise PullCut("timeout") from self._error
            raise self._error
        assert self._response is not None
        try:
            self._api._raise_for_status(self._response)
        except BaseException:
            self._response.close()
            raise
        return self._response

    def events(self) -> Generator[dict, None, None]:
        """Yield the engine's progress messages as they arrive."""
        response = self._wait_open()
        # Run in a copy of this context, so its log lines keep the session id.
        watchdog = start_thread(
            contextvars.copy_context().run, "pull-watchdog", (self._watch, response)
        )
        finished = False
        try:
            for line in response.iter_lines():
                self._last_event = time.monotonic()
                if line.strip():
                    yield json.loads(line)
            finished = True
        except (OSError, ValueError):
            # A connection cut at the deadline or an interrupt is no error of
            # the pull, whichever of the watchdog and the read timeout came first.
            self.cut = self.cut or self._reason()
            if self.cut is None:
                raise
        finally:
            self._done.set()
            watchdog.join()
            # A pull left before its end must end in the engine too.
            if not finished:
                self._shut(response)
            response.close()
        if self.cut is not None:
            raise PullCut(self.cut)

    def _watch(self, response: requests.Response) -> None:
        while not self._done.wait(WATCH_INTERVAL):
            reason = self._reason()
            if reason:
                self.cut = reason
                self._shut(response)
                return
            self._note_silence()

    @staticmethod
    def _shut(response: requests.Response) -> None:
        """Shut the connection down, which wakes a read waiting on it."""
        sock = getattr(response.raw.connection, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Pull(Step):
    kind = "pull"

    def resource(self) -> str:
        return self.args["image"]

    def describe(self) -> str:
        return f"pull image {self.resource()} unless present"

    def apply(self, context: Context) -> Outcome:
        image = self.resource()
        with context.locks("image:" + image):
            with translated("inspect image", image):
                try:
                    context.client.images.get(image)
                    return Outcome(False, f"image {image} already present")
                except docker.errors.ImageNotFound:
                    pass
            started = time.monotonic()
            self._pull_with_retries(context, image)
        return Outcome(True, f"pulled {image} in {time.monotonic() - started:.1f}s")

    def _pull_with_retries(self, context: Context, image: str) -> None:
        timeout = self.args.get("timeout", context.settings.pull_timeout)
        # One deadline covers every attempt.
        deadline = time.monotonic() + timeout
        timed_out = StepFailed(
            f"pull {image} timed out after {timeout:g}s; raise the step's timeout "
            f"(--pull-timeout for the service)",
            resource=image,
        )
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._pull(context, image, deadline, timed_out)
                return
            except TransientPullError as error:
                if attempt == ATTEMPTS:
                    raise StepFailed(
                        f"pull {image} failed {ATTEMPTS} times, last with: {error}; "
                        f"check that the registry is reachable",
                        resource=image,
                    ) from error
                log.warning(
                    "pull %s failed (attempt %d of %d), retrying: %s",
                    image,
                    attempt,
                    ATTEMPTS,
                    error,
                    extra={"step": self.name, "image": image},
                )
                delay = RETRY_DELAY * attempt
                if time.monotonic() + delay > deadline:
                    raise timed_out from error
                context.cancelled.wait(delay)
                context.stop_if_cancelled(image)

    def _pull(
        self, context: Context, image: str, deadline: float, timed_out: StepFailed
    ) -> None:
        repository, tag = split_image(image)
        log.info("pulling %s", image, extra={"step": self.name, "image": image})
        last_report = time.monotonic()

        def on_silence(seconds: float) -> None:
            log.info(
                "pulling %s: no progress from the engine for %.0fs",
                image,
                seconds,
                extra={"step": self.name, "image": image},
            )

        pull = PullRequest(
            context.client, repository, tag, deadline, context.cancelled, on_silence
        )
        try:
            # Closed at once when this loop raises, so the pull stops with it.
            with contextlib.closing(pull.events()) as events:
                for event in events:
                    context.stop_if_cancelled(image)
                    if time.monotonic() > deadline:
                        raise timed_out
                    if "error" in event:
                        raise StepFailed(
                            f"pull {image} failed: {event['error']}", resource=image
                        )
                    if time.monotonic() - last_report >= PROGRESS_INTERVAL:
                        last_report = time.monotonic()
                        log.info(
                            "pulling %s: %s %s",
                            image,
                            event.get("status", ""),
                            event.get("progress", ""),
                            extra={"step": self.name, "image": image},
                        )
        except PullCut as cut:
            if cut.reason == "interrupt":
                raise StepFailed("interrupted", resource=image) from None
            raise timed_out from None
        except docker.errors.NotFound as error:
            raise StepFailed(
                f"pull {image} failed: the registry has no such image or tag "
                f"({explain(error)}); check dockerReference and dockerTag",
                resource=image,
            ) from error
        except docker.errors.APIError as error:
            if error.is_server_error():
                raise TransientPullError(explain(error)) from error
            raise StepFailed(
                f"pull {image} failed: {explain(error)}", resource=image
            ) from error
        except (OSError, ValueError) as error:
            raise TransientPullError(str(error)) from error
        if not on_engine(context.client, "image", image):
            raise TransientPullError("the engine ended the pull without the image")

    def check(self, context: Context) -> Change:
        image = self.resource()
        if exists(context, "image", image):
            return Change("nothing", f"image {image} is present")
        context.expectations.create("image", image, None)
        return Change("pull", f"would pull {image}")
