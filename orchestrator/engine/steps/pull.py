"""`pull`: pull an image unless the engine already has it."""

from __future__ import annotations

import logging
import time

import docker.errors
import requests

from ...errors import StepFailed
from ..context import Context
from ..dockerapi import exists, explain, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)

# Seconds between two progress lines of one pull.
PROGRESS_INTERVAL = 5.0
# A pull that fails with a server error or a broken connection is tried again
# this many times in all, waiting RETRY_DELAY seconds times the attempt number.
ATTEMPTS = 3
RETRY_DELAY = 1.0


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
        for attempt in range(1, ATTEMPTS + 1):
            try:
                self._pull(context, image)
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
                time.sleep(RETRY_DELAY * attempt)

    def _pull(self, context: Context, image: str) -> None:
        repository, tag = split_image(image)
        timeout = self.args.get("timeout", context.settings.pull_timeout)
        log.info("pulling %s", image, extra={"step": self.name, "image": image})
        last_report = time.monotonic()
        deadline = last_report + timeout
        try:
            stream = context.client.api.pull(repository, tag, stream=True, decode=True)
            for event in stream:
                # Leaving the stream makes the engine give the pull up too.
                context.stop_if_cancelled(image)
                if time.monotonic() > deadline:
                    raise StepFailed(
                        f"pull {image} timed out after {timeout:g}s; raise the "
                        f"step's timeout (--pull-timeout for the service)",
                        resource=image,
                    )
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
        except (OSError, requests.exceptions.ConnectionError) as error:
            raise TransientPullError(str(error)) from error

    def check(self, context: Context) -> Change:
        image = self.resource()
        if exists(context, "image", image):
            return Change("nothing", f"image {image} is present")
        context.expectations.create("image", image, None)
        return Change("pull", f"would pull {image}")
