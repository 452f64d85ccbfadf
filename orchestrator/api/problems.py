"""Problem responses (application/problem+json) in the shape CyanPrint clients read."""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
from http import HTTPStatus
from typing import Any

import falcon

from ..errors import ServiceStopping

log = logging.getLogger(__name__)

PROBLEM_TYPE = "https://developer.mozilla.org/en-US/docs/Web/HTTP/Status/{status}"


class Problem(Exception):
    """An error response: title, status, detail, and one message per failure."""

    def __init__(
        self, status: int, title: str, detail: str, data: list[str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.data = data if data is not None else [detail]

    def body(self) -> dict:
        return {
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "type": PROBLEM_TYPE.format(status=self.status),
            "trace_id": None,
            "data": self.data,
        }


def write(resp: falcon.Response, problem: Problem) -> None:
    resp.status = problem.status
    resp.content_type = "application/problem+json"
    resp.text = json.dumps(problem.body())


def handle_problem(
    req: falcon.Request, resp: falcon.Response, error: Problem, params
) -> None:
    write(resp, error)


def handle_http_error(
    req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError, params
) -> None:
    """Render Falcon's own errors (unknown route, wrong method) as problems too."""
    status = int(error.status_code)
    title = error.title or HTTPStatus(status).phrase
    detail = error.description or f"{req.method} {req.path}: {title}"
    write(resp, Problem(status, title, detail))


def handle_stopping(
    req: falcon.Request, resp: falcon.Response, error: ServiceStopping, params
) -> None:
    log.warning("%s %s: %s", req.method, req.path, error.message)
    write(resp, Problem(503, "Service stopping", error.message, error.errors))


def handle_unexpected(
    req: falcon.Request, resp: falcon.Response, error: Exception, params
) -> None:
    log.exception(
        "unexpected error in %s %s; this is a bug in the executor", req.method, req.path
    )
    write(
        resp,
        Problem(
            500,
            "Internal error",
            f"{type(error).__name__}: {error}; the traceback is in the executor's log",
        ),
    )


def install(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(Problem, handle_problem)
    app.add_error_handler(ServiceStopping, handle_stopping)


# Largest request body the API reads, in bytes; template versions are far smaller.
MAX_BODY_BYTES = 16 * 1024 * 1024


def read_body(req: falcon.Request, limit: int, why: str) -> bytes:
    """Read at most `limit` bytes of the body; a longer body is a 413 saying `why`."""
    raw = req.bounded_stream.read(limit + 1)
    if len(raw) > limit:
        raise Problem(
            413,
            "Request body too large",
            f"the body is larger than {limit} bytes; {why}",
        )
    return raw


# Deepest nesting of arrays and objects a request body may have. Template
# versions and configs are a few levels deep. A body far deeper would exhaust
# the recursion limit of the JSON parser, the schema check or the plan's YAML.
MAX_NESTING = 100


def nesting(document: Any) -> int:
    """Return how deeply arrays and objects nest in `document`, without recursion."""
    deepest = 0
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


# A JSON string, escapes included, written to match in linear time.
JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
NOT_BRACKET = bytes(code for code in range(256) if code not in b"[]{}")
BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def bracket_depth(raw: bytes) -> int:
    """Return how deeply brackets nest in a UTF-8 JSON text, without parsing it.

    Brackets inside strings do not count. Checked before parsing, this keeps
    a deep body from driving the parser to the recursion limit, where any
    finalizer that runs at that moment fails too.
    """
    brackets = JSON_STRING.sub(b"", raw).translate(None, NOT_BRACKET)
    return max(itertools.accumulate(map(BRACKET_STEP.__getitem__, brackets)), default=0)


def too_deep(title: str) -> Problem:
    return Problem(
        400,
        title,
        f"the request body nests arrays and objects too deeply; at most "
        f"{MAX_NESTING} levels are accepted",
    )


def reject_constant(name: str) -> Any:
    """Reject NaN and Infinity, which Python reads but JSON does not have."""
    raise ValueError(f"{name} is not a JSON value; send a number or a string")


def finite_float(text: str) -> float:
    """Read a JSON number, rejecting one too large for a float (such as 1e400)."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text} is too large; send it as a string")
    return value


def read_json(req: falcon.Request, title: str) -> Any:
    """Parse the request body as JSON, or raise a 400 problem quoting the error."""
    why = "a request is a template version and the choices made, far smaller"
    raw = read_body(req, MAX_BODY_BYTES, why)
    if not raw:
        raise Problem(400, title, "the request body is empty; send a JSON document")
    # In UTF-16 or UTF-32, bytes of other characters can look like brackets,
    # so those bodies are measured once parsed.
    scanned = json.detect_encoding(raw) == "utf-8"
    if scanned and bracket_depth(raw) > MAX_NESTING:
        raise too_deep(title)
    try:
        document = json.loads(
            raw, parse_constant=reject_constant, parse_float=finite_float
        )
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError too
        raise Problem(
            400, title, f"the request body is not valid JSON: {error}"
        ) from None
    except RecursionError:
        raise too_deep(title) from None
    if not scanned and nesting(document) > MAX_NESTING:
        raise too_deep(title)
    return document
