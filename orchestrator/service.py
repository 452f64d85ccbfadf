"""The executor's operations: validate a request, plan it, apply the plan.

Each operation has a `plan_*` method, which validates and renders without
touching Docker, and the API applies the result with `apply`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from . import names
from .config import Settings
from .engine import Engine, Report
from .engine.dockerapi import find_container
from .errors import ExecutorError, RequestInvalid, ServiceStopping, StepFailed
from .planning import Planner, load
from .registry import RegistryUnavailable, Resolver
from .threads import start_thread
from .validation import check

log = logging.getLogger(__name__)

# Largest piece of a streamed archive handed to the server at once, in bytes.
SEND_CHUNK = 256 * 1024


@dataclass
class Planned:
    """A rendered plan: its YAML text and the parsed, validated document."""

    kind: str
    text: str
    document: dict[str, Any]


class PlanFailed(Exception):
    """A plan whose apply failed; `report` has every step's result."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.failures = [
            r.error for r in report.failures if isinstance(r.error, StepFailed)
        ]
        super().__init__("; ".join(str(f) for f in self.failures))

    @property
    def messages(self) -> list[str]:
        """One message per cause, each naming its step."""
        return [message for f in self.failures for message in cause_messages(f)]


def cause_messages(failure: StepFailed) -> list[str]:
    """Return the messages of one failed step, one per cause, each naming the step."""
    if len(failure.errors) > 1:
        prefix = f"step '{failure.step}' failed: "
        return [prefix + cause for cause in failure.errors]
    return [str(failure)]


def template_of(body: dict[str, Any]) -> dict[str, Any]:
    """Return the template version of a warm body, given at the top level or wrapped."""
    return body["template"] if "principal" not in body else body


class Executor:
    def __init__(
        self,
        settings: Settings,
        client: docker.DockerClient | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.settings = settings
        self._client = client
        self._engine: Engine | None = None
        self.planner = Planner(settings)
        self.resolver = resolver or Resolver.from_setting(
            settings.registry, settings.registry_timeout
        )

    @property
    def engine(self) -> Engine:
        """The step engine. It connects to Docker on first use; planning never does."""
        if self._engine is None:
            if self._client is None:
                self._client = docker_client(self.settings)
            self._engine = Engine(self._client, self.settings)
        return self._engine

    def stop(self) -> int:
        """Interrupt every plan being applied, and every later one.

        Returns how many plans were being applied.
        """
        return self._engine.stop() if self._engine is not None else 0

    def wait_idle(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for plans to end; return how many still run."""
        return self._engine.wait_idle(timeout) if self._engine is not None else 0

    def _planned(self, kind: str, text: str) -> Planned:
        return Planned(kind, text, load(text, f"<{kind} plan>"))

    def plan_template_warm(self, body: Any) -> Planned:
        check("template-version", body, "template version")
        return self._planned("template-warm", self.planner.template_warm(body))

    def plan_session_warm(self, session_id: str, body: Any) -> Planned:
        check_session_id(session_id)
        check("session-warm", body, "warm request")
        return self._planned(
            "session-warm", self.planner.session_warm(session_id, template_of(body))
        )

    def plan_start(self, body: Any) -> Planned:
        check("start", body, "start request")
        check_session_id(body["session_id"])
        volume_session = body["write_vol_reference"]["session_id"]
        if volume_session != body["session_id"]:
            raise RequestInvalid(
                f"write_vol_reference.session_id {volume_session!r} differs from "
                f"session_id {body['session_id']!r}; a session writes only to its "
                f"own volume, so send the vol_ref that warming this session returned"
            )
        volume_template = body["write_vol_reference"]["cyan_id"]
        template_id = body["template"]["principal"]["id"]
        if volume_template != template_id:
            raise RequestInvalid(
                f"write_vol_reference.cyan_id {volume_template!r} differs from "
                f"template.principal.id {template_id!r}; the session volume belongs "
                f"to the template the session runs, so send the vol_ref that warming "
                f"this session returned"
            )
        check_merger_ids(body)
        return self._planned("start", self.planner.start(body))

    def plan_build(self, session_id: str, body: Any) -> Planned:
        check_session_id(session_id)
        check("build", body, "build request")
        check_merger_ids(body)
        template = body["template"]
        errors: list[str] = []
        processor_ids = self._resolve_all(
            "processor", body["cyan"]["processors"], template["processors"], errors
        )
        plugin_ids = self._resolve_all(
            "plugin", body["cyan"]["plugins"], template["plugins"], errors
        )
        if errors:
            raise RequestInvalid(errors[0], errors=errors)
        text = self.planner.build(session_id, body, processor_ids, plugin_ids)
        return self._planned("build", text)

    def plan_delete(self, session_id: str) -> Planned:
        check_session_id(session_id)
        return self._planned("delete", self.planner.delete(session_id))

    def plan_try(self, body: Any) -> Planned:
        check("try", body, "try request")
        check_session_id(body["sessionId"])
        path = None
        if body.get("source") == "path":
            path = allowed_folder(body["path"], self.settings.allowed_try_root)
        return self._planned("try", self.planner.try_session(body, path))

    def plan_proxy(
        self, kind: str, identifier: str, path: str, body: bytes, content_type: str
    ) -> Planned:
        """Plan one request passed through to a template or resolver container."""
        if not names.is_uuid(identifier):
            raise RequestInvalid(
                f"invalid {kind} id {identifier!r}: expected a UUID with dashes, "
                f"such as 0b6f3c1e-9a47-4d2b-8f31-5c2e7a9d4410"
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestInvalid("the request body is not UTF-8 text") from None
        container = (
            names.template_container(identifier)
            if kind == "template"
            else names.resolver_container(identifier)
        )
        port = names.PORTS[kind]
        planned = self.planner.proxy(container, port, path, text, content_type)
        return self._planned("proxy", planned)

    def plan_setup(self) -> Planned:
        return self._planned("setup", self.planner.setup())

    def plan_cleanup(self) -> Planned:
        return self._planned("cleanup", self.planner.cleanup())

    def _resolve_all(
        self, kind: str, entries: list[dict], pinned: list[dict], errors: list[str]
    ) -> list[str]:
        """Resolve each reference; add a message to `errors` for each that fails."""
        pinned_ids = {item["id"] for item in pinned}
        resolved: list[str] = []
        for position, entry in enumerate(entries):
            try:
                resolved.append(
                    self.resolver.resolve(kind, entry["name"], pinned_ids).id
                )
            except RegistryUnavailable:
                raise
            except RequestInvalid as error:
                errors.append(f"$.cyan.{kind}s[{position}].name: {error.message}")
        return resolved

    def not_started(self, session_id: str, failure: PlanFailed) -> list[str] | None:
        """Reword a build's failures at containers that do not exist, else None.

        A session that was warmed but not started has volumes and no
        containers, so its build fails at the first container it calls.
        """
        missing: set[str] = set()
        for cause in failure.failures:
            if cause.unreachable and cause.resource and cause.resource not in missing:
                try:
                    if find_container(self.engine.client, cause.resource) is None:
                        missing.add(cause.resource)
                except docker.errors.DockerException:
                    continue
        if not missing:
            return None
        messages = []
        for cause in failure.failures:
            if cause.resource in missing:
                messages.append(
                    f"step '{cause.step}' failed: container {cause.resource} does "
                    f"not exist: {not_started_hint(session_id)}"
                )
            else:
                messages.extend(cause_messages(cause))
        return messages

    def ping(self) -> None:
        """Raise ExecutorError unless the Docker engine answers."""
        try:
            self.engine.client.ping()
        except (docker.errors.DockerException, OSError) as error:
            raise ExecutorError(
                f"cannot reach the Docker engine ({error}); start Docker or set "
                f"DOCKER_HOST"
            ) from error

    def check(self, planned: Planned) -> list[dict[str, str]]:
        """List what applying the plan would change, reading but not changing Docker."""
        return self.engine.check(planned.document)

    def apply(self, planned: Planned, hold_session: bool = False) -> Report:
        """Apply a plan; raise PlanFailed when any step failed.

        Plans of one session run one at a time, so a delete can never slip
        between a start's volume check and the containers that mount them.
        With `hold_session`, a plan that succeeds keeps its session's turn
        until `report.release` is called. A build keeps it while its archive
        streams, so no other plan of the session changes the files under it.
        """
        session = planned.document.get("session")
        with ExitStack() as turn:
            if session:
                turn.enter_context(self.engine.locks("session:" + session))
            report = self.engine.apply(planned.document)
            counts = report.counts()
            log.info(
                "plan %s finished: %d ok, %d changed, %d failed, %d skipped",
                planned.kind,
                counts["ok"],
                counts["changed"],
                counts["failed"],
                counts["skipped"],
            )
            if report.interrupted:
                raise ServiceStopping(
                    f"the executor is stopping, so the {planned.kind} plan was "
                    f"interrupted after cleaning up; send the request again once "
                    f"the executor is back",
                    errors=[
                        f"step '{r.name}' failed: {r.message}" for r in report.failures
                    ]
                    or None,
                )
            if report.failed:
                raise PlanFailed(report)
            if hold_session:
                report.release = turn.pop_all().close
        return report


def docker_client(settings: Settings) -> docker.DockerClient:
    """Connect to the engine DOCKER_HOST names, or the local socket; fail clearly."""
    try:
        client = docker.from_env(timeout=max(60, int(settings.call_timeout)))
        client.ping()
    except docker.errors.DockerException as error:
        raise ExecutorError(
            f"cannot reach the Docker engine ({error}); start Docker or set "
            f"DOCKER_HOST, then try again"
        ) from error
    return client


def allowed_folder(path: str, root: str) -> str:
    """Resolve symbolic links in `path` and check that it lies inside `root`."""
    allowed = os.path.realpath(root)
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError) as error:
        # A NUL byte, or a link changed while it was being resolved.
        raise RequestInvalid(
            f"path {path!r} cannot be resolved ({error}); give a plain folder path"
        ) from None
    if os.path.commonpath([allowed, real]) != allowed:
        raise RequestInvalid(
            f"path {path!r} resolves to {real}, which is outside the allowed root "
            f"{allowed}; move the template inside it or start the executor with "
            f"--try-root"
        )
    if not os.path.isdir(real):
        raise RequestInvalid(
            f"path {path!r} is not a folder; give the template's folder"
        )
    return real


def check_session_id(session_id: str) -> None:
    if session_id in names.RESERVED_SESSION_IDS:
        raise RequestInvalid(
            f"invalid session id {session_id!r}: it is reserved for an endpoint "
            f"(POST /executor/try); choose another id"
        )
    if not names.is_safe(session_id):
        raise RequestInvalid(
            f"invalid session id {session_id!r}: use 1 to 64 letters, digits, '_', "
            f"'.' or '-', starting with a letter or digit"
        )


def not_started_hint(session_id: str) -> str:
    return (
        f"the containers of session {session_id} are not started; start them with "
        f"POST /executor first (warming a session pulls its images and creates its "
        f"volumes, but starts no container)"
    )


def check_merger_ids(body: dict[str, Any]) -> None:
    """Reject a body whose merger.merger_id and merger_id name different mergers."""
    nested = body.get("merger", {}).get("merger_id")
    top = body.get("merger_id")
    if nested is not None and top is not None and nested != top:
        raise RequestInvalid(
            f"merger.merger_id {nested!r} differs from merger_id {top!r}; both name "
            f"the session's merger, so give one of them or the same id in both"
        )


class ArchiveStream:
    """The archive a build streamed, as a WSGI body that always cleans up.

    A pump thread reads the merger's archive at full speed into an unlinked
    spool file, and the client is sent the spool as it grows. The session the
    build keeps is released as soon as the merger's stream ends, so a client
    that reads slowly or stalls holds only its own connection, never the
    session a DELETE waits for.

    The request's own log line is written when the status is sent, so the end
    of the stream gets a line of its own: the bytes sent and the time taken,
    or the failure at error level.
    """

    def __init__(self, report: Report, session_id: str = "") -> None:
        self.report = report
        self.session_id = session_id
        self.response = report.output("archive")["response"]
        self.spool = tempfile.TemporaryFile(prefix="cyanprint-archive-")
        self.changed = threading.Condition()
        self.written = 0
        self.sent = 0
        self.finished = False
        self.failure: BaseException | None = None
        self.stopping = False
        self.closed = False
        self.started = time.monotonic()
        self.outcome = "the client closed the connection"
        self.pump = start_thread(
            contextvars.copy_context().run, f"archive-{session_id}", (self._pump,)
        )

    def _pump(self) -> None:
        try:
            for chunk in self.report.output("archive")["stream"]:
                if self.stopping:
                    break
                self.spool.write(chunk)
                self.spool.flush()
                with self.changed:
                    self.written += len(chunk)
                    self.changed.notify_all()
        except BaseException as error:  # handed to the client's thread
            self.failure = error
        finally:
            try:
                self.response.close()
            finally:
                self.report.release()
                with self.changed:
                    self.finished = True
                    self.changed.notify_all()
                self._discard_spool()

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                with self.changed:
                    while self.sent >= self.written and not self.finished:
                        self.changed.wait()
                    available = self.written - self.sent
                if available == 0:
                    break
                chunk = os.pread(
                    self.spool.fileno(), min(available, SEND_CHUNK), self.sent
                )
                self.sent += len(chunk)
                yield chunk
            if self.failure is not None:
                raise self.failure
            self.outcome = "done"
        except GeneratorExit:
            raise
        except Exception as error:
            self.outcome = f"{type(error).__name__}: {error}"
            raise
        finally:
            self.close()

    def close(self) -> None:
        """Stop the pump, log how the stream ended and free the spool, once."""
        if self.closed:
            return
        self.closed = True
        self.stopping = True
        self._log()
        self._discard_spool()

    def _discard_spool(self) -> None:
        # The pump writes to the spool until it finishes, the client reads
        # from it until it closes; whichever comes last closes the file.
        with self.changed:
            if self.finished and self.closed and not self.spool.closed:
                self.spool.close()

    def _log(self) -> None:
        elapsed = time.monotonic() - self.started
        tags = {"session": self.session_id} if self.session_id else {}
        if self.outcome == "done":
            log.info(
                "streamed the archive of session %s: %d bytes in %.3fs",
                self.session_id,
                self.sent,
                elapsed,
                extra={**tags, "bytes": self.sent},
            )
            return
        # The status line is already sent: the client sees only the stream end.
        log.error(
            "streaming the archive of session %s failed after %d bytes in %.3fs: %s",
            self.session_id,
            self.sent,
            elapsed,
            self.outcome,
            extra={**tags, "bytes": self.sent},
        )


def archive_chunks(report: Report, session_id: str = "") -> ArchiveStream:
    """Return the archive a build streamed, to iterate once and then close."""
    return ArchiveStream(report, session_id)
