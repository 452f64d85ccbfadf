"""The executor's HTTP API: thin resources over `Executor`, errors as problems."""

from __future__ import annotations

import logging
import time
from typing import Any

import falcon

from .. import logs
from ..config import Settings
from ..engine.engine import count_changes
from ..errors import ExecutorError, PlanInvalid, RequestInvalid
from ..registry import RegistryUnavailable
from ..service import (
    Executor,
    PlanFailed,
    archive_chunks,
    not_started_hint,
    template_of,
)
from .problems import Problem, install, read_body, read_json

log = logging.getLogger(__name__)


class RequestLog:
    """Log one line per request, with the session id of the route if it has one."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.monotonic()
        logs.session_id.set("")

    def process_resource(self, req, resp, resource, params) -> None:
        if params.get("session_id"):
            logs.session_id.set(params["session_id"])
        # Read the preview flags before the body, so a bad flag is reported first.
        req.context.dry_run, req.context.check = preview_flags(req)

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        elapsed = time.monotonic() - getattr(req.context, "started", time.monotonic())
        target = f"{req.path}?{req.query_string}" if req.query_string else req.path
        log.info(
            "%s %s %s in %.3fs",
            req.method,
            target,
            resp.status_code,
            elapsed,
            extra={"method": req.method, "path": target, "status": resp.status_code},
        )


PREVIEW_FLAGS = ("dry_run", "check")


def preview_flags(req: falcon.Request) -> tuple[bool, bool]:
    """Read dry_run and check strictly, so a misspelt flag never runs the action."""
    for name in req.params:
        if name not in PREVIEW_FLAGS:
            raise Problem(
                400,
                "Unknown query parameter",
                f"unknown query parameter {name!r}; the only ones are dry_run=true "
                f"and check=true",
            )
    values = []
    for name in PREVIEW_FLAGS:
        raw = req.params.get(name)
        if isinstance(raw, list):
            raise Problem(
                400,
                "Invalid query parameter",
                f"{name} is given {len(raw)} times ({', '.join(map(repr, raw))}); "
                f"give it once, as {name}=true or {name}=false",
            )
        if raw is None or raw == "false":
            values.append(False)
        elif raw == "true":
            values.append(True)
        else:
            raise Problem(
                400,
                "Invalid query parameter",
                f"invalid {name}={raw!r}; use {name}=true or {name}=false",
            )
    if all(values):
        raise Problem(
            400,
            "Invalid query parameters",
            "dry_run=true and check=true cannot be combined; send one of them",
        )
    return values[0], values[1]


def merger_container(plan: dict) -> str:
    """Return the name of the merger container a build plan talks to."""
    return next(
        step["container"] for step in plan["steps"] if step.get("kind") == "merge"
    )


def previewed(
    executor: Executor, req: falcon.Request, resp: falcon.Response, planned
) -> bool:
    """Respond with the plan (dry_run) or its changes (check), not applying it."""
    if req.context.dry_run:
        resp.content_type = "application/yaml"
        resp.text = planned.text
        return True
    if req.context.check:
        changes = executor.check(planned)
        changing, failing = count_changes(changes)
        resp.media = {
            "plan": planned.kind,
            "changes": changing,
            "failures": failing,
            "steps": changes,
        }
        return True
    return False


def log_session_of(body: object, key: str) -> None:
    """Tag the request's log lines with the session id a body carries, if any."""
    if isinstance(body, dict) and isinstance(body.get(key), str):
        logs.session_id.set(body[key])


def start_status(failure: PlanFailed) -> int:
    """Return 503 when a container could not be started, else 400."""
    return 503 if any(f.kind == "run" for f in failure.failures) else 400


def invalid(title: str, error: RequestInvalid | PlanInvalid) -> Problem:
    return Problem(400, title, error.message, error.errors)


class Resources:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def _plan(self, title: str, make):
        try:
            return make()
        except RegistryUnavailable as error:
            log.error("%s: %s", title, error.message)
            raise Problem(503, title, error.message, error.errors) from None
        except (RequestInvalid, PlanInvalid) as error:
            log.warning("%s: %s", title, error.message)
            raise invalid(title, error) from None

    def _previewed(self, req: falcon.Request, resp: falcon.Response, planned) -> bool:
        return previewed(self.executor, req, resp, planned)

    def _apply(self, planned, status: int, title: str, detail: str):
        try:
            return self.executor.apply(planned)
        except PlanFailed as failure:
            raise Problem(status, title, detail, failure.messages) from None

    # GET /
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Report OK only while the Docker engine responds: nothing works without it."""
        try:
            self.executor.ping()
        except ExecutorError as error:
            log.error("health check failed: %s", error.message)
            raise Problem(503, "Docker engine unreachable", error.message) from None
        resp.media = {"status": "OK"}

    # POST /template/warm
    def on_post_template_warm(self, req: falcon.Request, resp: falcon.Response) -> None:
        title = "Failed to warm template"
        body = read_json(req, title)
        planned = self._plan(title, lambda: self.executor.plan_template_warm(body))
        if self._previewed(req, resp, planned):
            return
        try:
            self.executor.apply(planned)
        except PlanFailed as failure:
            raise Problem(
                start_status(failure),
                title,
                "Failed to warm the template volume, template and resolver containers",
                failure.messages,
            ) from None
        resp.media = {"status": "OK"}

    # POST /executor/{session_id}/warm
    def on_post_session_warm(self, req, resp, session_id: str) -> None:
        title = "Failed to warm executor"
        body = read_json(req, title)
        planned = self._plan(
            title, lambda: self.executor.plan_session_warm(session_id, body)
        )
        if self._previewed(req, resp, planned):
            return
        self._apply(
            planned, 400, title, "Failed to warm executor images, templates and volumes"
        )
        template = template_of(body)
        resp.media = {
            "session_id": session_id,
            "vol_ref": {
                "cyan_id": template["principal"]["id"],
                "session_id": session_id,
            },
        }

    # POST /executor
    def on_post_start(self, req: falcon.Request, resp: falcon.Response) -> None:
        title = "Failed to start executor"
        body = read_json(req, title)
        log_session_of(body, "session_id")
        planned = self._plan(title, lambda: self.executor.plan_start(body))
        if self._previewed(req, resp, planned):
            return
        self._apply(planned, 503, title, "Failed to start cyanprint executor")
        resp.media = {"status": "OK"}

    # POST /executor/{session_id}
    def on_post_session(self, req, resp, session_id: str) -> None:
        title = "Failed to build"
        body = read_json(req, title)
        planned = self._plan(title, lambda: self.executor.plan_build(session_id, body))
        if self._previewed(req, resp, planned):
            return
        try:
            report = self.executor.apply(planned, hold_session=True)
        except PlanFailed as failure:
            merger = merger_container(planned.document)
            unreachable = any(
                f.unreachable and f.resource == merger for f in failure.failures
            )
            rewording = self.executor.not_started(session_id, failure)
            messages = failure.messages if rewording is None else rewording
            if unreachable:
                detail = "Error contacting upstream (merger) server"
                if rewording is not None:
                    detail += f": {not_started_hint(session_id)}"
                raise Problem(
                    503, "Failed to contact upstream server", detail, messages
                ) from None
            detail = f"Failed to build session {session_id}"
            if rewording is not None:
                detail += f": {not_started_hint(session_id)}"
            raise Problem(400, title, detail, messages) from None
        resp.content_type = "application/x-gzip"
        resp.set_header(
            "Content-Disposition", "attachment; filename=cyan-output.tar.gz"
        )
        resp.stream = archive_chunks(report, session_id)

    # POST /executor/try
    def on_post_try(self, req: falcon.Request, resp: falcon.Response) -> None:
        title = "Failed to prepare try session"
        body = read_json(req, title)
        log_session_of(body, "sessionId")
        planned = self._plan(title, lambda: self.executor.plan_try(body))
        if self._previewed(req, resp, planned):
            return
        try:
            self.executor.apply(planned)
        except PlanFailed as failure:
            detail = "Failed to prepare the blob volume, images and resolvers"
            raise Problem(
                start_status(failure), title, detail, failure.messages
            ) from None
        resp.media = {
            "blobVolume": {"cyan_id": body["localTemplateId"], "session_id": ""}
        }

    # DELETE /cleanup
    def on_delete_cleanup(self, req: falcon.Request, resp: falcon.Response) -> None:
        planned = self._plan("Failed to clean up", self.executor.plan_cleanup)
        if self._previewed(req, resp, planned):
            return
        try:
            report = self.executor.apply(planned)
            removed = report.output("remove-everything")
            resp.status = 200
        except PlanFailed as failure:
            removed = next((f.details for f in failure.failures if f.details), None)
            if removed is None:
                raise Problem(
                    503, "Failed to clean up", str(failure), failure.messages
                ) from None
            resp.status = 207
        resp.media = cleanup_body(removed)

    # DELETE /executor/{session_id}
    def on_delete_session(self, req, resp, session_id: str) -> None:
        title = "Failed to clean"
        planned = self._plan(title, lambda: self.executor.plan_delete(session_id))
        if self._previewed(req, resp, planned):
            return
        self._apply(planned, 400, title, f"Failed to clean session {session_id}")
        resp.media = {"status": "OK"}


def cleanup_body(removed: dict) -> dict:
    """Return the clean-up response body: what was removed, and any errors."""
    body = {
        "status": "OK" if not removed["errors"] else "PARTIAL",
        "containers_removed": removed["containers"],
        "images_removed": removed["images"],
        "volumes_removed": removed["volumes"],
        "containers_count": len(removed["containers"]),
        "images_count": len(removed["images"]),
        "volumes_count": len(removed["volumes"]),
    }
    if removed["errors"]:
        body["errors"] = removed["errors"]
    return body


class ProxyResources:
    """Requests passed through to template and resolver containers, untouched."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def _forward(self, req, resp, kind: str, identifier: str, path: str) -> None:
        title = f"Failed to proxy to the {kind} container"
        limit = self.executor.settings.proxy_max_bytes
        body = read_body(req, limit, "the executor's --proxy-max-bytes sets the limit")
        # No Content-Type in the request means none is sent on either.
        content_type = req.content_type or ""
        try:
            planned = self.executor.plan_proxy(
                kind, identifier, path, body, content_type
            )
        except (RequestInvalid, PlanInvalid) as error:
            raise invalid(title, error) from None
        if previewed(self.executor, req, resp, planned):
            return

        try:
            report = self.executor.apply(planned)
        except PlanFailed as failure:
            log.warning("%s %s: %s", kind, identifier, failure)
            if any(cause.unreachable for cause in failure.failures):
                detail = (
                    f"the {kind} container {identifier} did not answer; warm the "
                    f"template first (POST /template/warm)"
                )
            else:
                detail = (
                    f"the {kind} container {identifier} did not give a usable "
                    f"answer: {failure.failures[0].message}"
                )
            raise Problem(502, title, detail, failure.messages) from None

        answer = report.output("forward")
        resp.status = answer["status"]
        resp.content_type = answer["content_type"]
        resp.data = answer["body"]

    # POST /proxy/template/{template_id}/api/template/{action}
    def on_post_template(self, req, resp, template_id: str, action: str) -> None:
        if action not in ("init", "validate"):
            raise falcon.HTTPNotFound(
                description=f"unknown template action {action!r}: use init or validate"
            )
        path = f"/api/template/{action}"
        self._forward(req, resp, "template", template_id, path)

    # POST /proxy/resolver/{resolver_id}/api/resolve
    def on_post_resolver(self, req, resp, resolver_id: str) -> None:
        self._forward(req, resp, "resolver", resolver_id, "/api/resolve")


def create_app(executor: Executor) -> falcon.App:
    app = falcon.App(middleware=[RequestLog()])
    install(app)
    resources = Resources(executor)
    app.add_route("/", resources)
    app.add_route("/template/warm", resources, suffix="template_warm")
    app.add_route("/executor", resources, suffix="start")
    app.add_route("/executor/{session_id}", resources, suffix="session")
    app.add_route("/executor/{session_id}/warm", resources, suffix="session_warm")
    app.add_route("/executor/try", resources, suffix="try")
    app.add_route("/cleanup", resources, suffix="cleanup")
    proxies = ProxyResources(executor)
    app.add_route(
        "/proxy/template/{template_id}/api/template/{action}",
        proxies,
        suffix="template",
    )
    app.add_route(
        "/proxy/resolver/{resolver_id}/api/resolve", proxies, suffix="resolver"
    )
    return app


# waitress makes the thread serving a response wait while more than this many
# bytes are queued for a client that reads slowly. The queue spills to
# temporary files past 1 MiB, so with no practical bound a client that stops
# reading costs disk space, not one of the --threads worker threads.
UNBOUNDED_OUTPUT_QUEUE = 1 << 50


def server_options(settings: Settings) -> dict[str, Any]:
    """Return the waitress options the executor's API is served with."""
    return {
        "threads": settings.threads,
        "ident": "cyanprint-executor",
        "channel_timeout": int(max(120, settings.call_timeout)),
        "outbuf_high_watermark": UNBOUNDED_OUTPUT_QUEUE,
    }
