"""The executor's HTTP API: thin resources over `Executor`, errors as problems."""

from __future__ import annotations

import logging
import time

import falcon

from .. import logs
from ..errors import PlanInvalid, RequestInvalid
from ..service import Executor, PlanFailed, archive_chunks, template_of
from .problems import Problem, install, read_json

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
        req.context.dry_run = req.get_param_as_bool("dry_run", default=False)
        req.context.check = req.get_param_as_bool("check", default=False)

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        elapsed = time.monotonic() - getattr(req.context, "started", time.monotonic())
        log.info(
            "%s %s %s in %.3fs",
            req.method,
            req.path,
            resp.status_code,
            elapsed,
            extra={"method": req.method, "path": req.path, "status": resp.status_code},
        )


def invalid(title: str, error: RequestInvalid | PlanInvalid) -> Problem:
    return Problem(400, title, error.message, error.errors)


class Resources:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def _plan(self, title: str, make):
        try:
            return make()
        except (RequestInvalid, PlanInvalid) as error:
            log.warning("%s: %s", title, error.message)
            raise invalid(title, error) from None

    def _previewed(self, req: falcon.Request, resp: falcon.Response, planned) -> bool:
        """Answer with the plan (dry_run) or its changes (check), not applying it."""
        if req.context.dry_run:
            resp.content_type = "application/yaml"
            resp.text = planned.text
            return True
        if req.context.check:
            changes = self.executor.check(planned)
            resp.media = {
                "plan": planned.kind,
                "changes": sum(1 for c in changes if c["action"] != "nothing"),
                "steps": changes,
            }
            return True
        return False

    def _apply(self, planned, status: int, title: str, detail: str):
        try:
            return self.executor.apply(planned)
        except PlanFailed as failure:
            raise Problem(status, title, detail, failure.messages) from None

    # GET /
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "OK"}

    # POST /template/warm
    def on_post_template_warm(self, req: falcon.Request, resp: falcon.Response) -> None:
        title = "Failed to warm template"
        body = read_json(req, title)
        planned = self._plan(title, lambda: self.executor.plan_template_warm(body))
        if self._previewed(req, resp, planned):
            return
        self._apply(
            planned, 503, title, "Failed to warm the template volume and container"
        )
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
        if isinstance(body, dict) and isinstance(body.get("session_id"), str):
            logs.session_id.set(body["session_id"])
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
            report = self.executor.apply(planned)
        except PlanFailed as failure:
            unreachable = any(
                f.unreachable and f.kind in ("merge", "archive")
                for f in failure.failures
            )
            if unreachable:
                raise Problem(
                    503,
                    "Failed to contact upstream server",
                    "Error contacting upstream (merger) server",
                    failure.messages,
                ) from None
            raise Problem(
                400, title, f"Failed to build session {session_id}", failure.messages
            ) from None
        resp.content_type = "application/x-gzip"
        resp.set_header(
            "Content-Disposition", "attachment; filename=cyan-output.tar.gz"
        )
        resp.stream = archive_chunks(report)

    # DELETE /executor/{session_id}
    def on_delete_session(self, req, resp, session_id: str) -> None:
        title = "Failed to clean"
        planned = self._plan(title, lambda: self.executor.plan_delete(session_id))
        if self._previewed(req, resp, planned):
            return
        self._apply(planned, 400, title, f"Failed to clean session {session_id}")
        resp.media = {"status": "OK"}


def create_app(executor: Executor) -> falcon.App:
    app = falcon.App(middleware=[RequestLog()])
    install(app)
    resources = Resources(executor)
    app.add_route("/", resources)
    app.add_route("/template/warm", resources, suffix="template_warm")
    app.add_route("/executor", resources, suffix="start")
    app.add_route("/executor/{session_id}", resources, suffix="session")
    app.add_route("/executor/{session_id}/warm", resources, suffix="session_warm")
    return app
