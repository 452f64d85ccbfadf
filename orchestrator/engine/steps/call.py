"""`call`: send an HTTP request to a container; its JSON response is the output."""

from __future__ import annotations

import json
import time
from typing import Any

import requests
import urllib3

from ...errors import StepFailed
from ..context import Context, http
from ..dockerapi import container_address, exists, find_container, translated
from .base import Change, Outcome, Step

# How much of an unexpected response body an error message quotes.
EXCERPT = 500


def excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def container_url(context: Context, container: str, network: str, port: int) -> str:
    with translated("inspect container", container):
        found = find_container(context.client, container)
    if found is None:
        raise StepFailed(
            f"container {container} not found; warming starts template and "
            f"resolver containers (POST /template/warm), starting a session starts "
            f"its own (POST /executor)",
            resource=container,
            unreachable=True,
        )
    if found.status != "running":
        raise StepFailed(
            f"container {container} is not running (status {found.status}); "
            f"{restart_hint(container)}",
            resource=container,
            unreachable=True,
        )
    return f"http://{container_address(found, network)}:{port}"


def restart_hint(container: str) -> str:
    """Say which request starts `container` again."""
    if container.startswith(("cyan-template-", "cyan-resolver-")):
        return "warm the template again (POST /template/warm) to replace it"
    return "start the session's containers again (POST /executor)"


def send(
    context: Context,
    args: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    timeout: float,
    stream: bool = False,
    raw: tuple[str, str] | None = None,
) -> requests.Response:
    """Send one request to the container in `args`; raise StepFailed unless 2xx.

    `raw` is (content type, text) of a body sent untouched instead of `body`,
    and with it any status is returned rather than raised.
    """
    container = args["container"]
    network = args.get("network", context.settings.network)
    url = container_url(context, container, network, args["port"]) + path
    options: dict[str, Any] = {"json": body if method != "GET" else None}
    if raw is not None:
        content_type, text = raw
        options = {
            "data": text.encode("utf-8"),
            "headers": {"Content-Type": content_type} if content_type else {},
        }
    try:
        response = http().request(
            method,
            url,
            timeout=(min(10.0, timeout), timeout),
            stream=stream,
            **options,
        )
    except requests.Timeout as error:
        raise StepFailed(
            f"{method} {path} on container {container} timed out after {timeout:g}s",
            resource=container,
        ) from error
    except requests.RequestException as error:
        raise StepFailed(
            f"could not reach container {container} at {url}: {error}",
            resource=container,
            unreachable=True,
        ) from error
    if raw is None and not 200 <= response.status_code < 300:
        prefix = f"container {container} responded to {method} {path} with HTTP "
        prefix += f"{response.status_code}: "
        causes = problem_messages(response) or [
            excerpt(response.text) or "(empty body)"
        ]
        failure = StepFailed(prefix + causes[0], resource=container)
        failure.errors = [prefix + cause for cause in causes]
        raise failure
    return response


def read_some(
    response: requests.Response, seconds: float, container: str
) -> bytes | None:
    """Read what has arrived of the body, waiting at most `seconds` for any of it.

    Return None when nothing arrived in time and b"" at the end of the body.
    Reading whatever has arrived, rather than a fixed amount, lets the caller
    enforce its deadline on a body that trickles in a byte at a time.
    """
    connection = getattr(response.raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        sock.settimeout(max(0.01, seconds))
    try:
        return response.raw.read1(64 * 1024, decode_content=True)
    except (TimeoutError, urllib3.exceptions.ReadTimeoutError):
        return None
    except urllib3.exceptions.HTTPError as error:
        raise StepFailed(
            f"reading the response of container {container} failed: {error}",
            resource=container,
        ) from error


def problem_messages(response: requests.Response) -> list[str]:
    """Return the messages of a problem+json response (the merger's errors), if any."""
    if "json" not in response.headers.get("Content-Type", ""):
        return []
    try:
        body = response.json()
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    data = body.get("data")
    if isinstance(data, list) and data and all(isinstance(d, str) for d in data):
        return data
    return [body["detail"]] if isinstance(body.get("detail"), str) else []


def json_answer(response: requests.Response, container: str, path: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, requests.JSONDecodeError) as error:
        raise StepFailed(
            f"container {container} responded to {path} with a body that is not JSON: "
            f"{excerpt(response.text) or '(empty body)'}",
            resource=container,
        ) from error
    except RecursionError as error:
        raise StepFailed(
            f"container {container} responded to {path} with JSON nested too deeply "
            f"to read",
            resource=container,
        ) from error


class Call(Step):
    kind = "call"
    outputs = None

    def resource(self) -> str:
        return self.args["container"]

    def describe(self) -> str:
        method = self.args.get("method", "POST")
        return (
            f"{method} {self.args['path']} on container {self.resource()} "
            f"port {self.args['port']}"
        )

    def apply(self, context: Context) -> Outcome:
        method = self.args.get("method", "POST")
        path = self.args["path"]
        timeout = self.args.get("timeout", context.settings.call_timeout)
        if "raw_body" in self.args:
            return self._pass_through(context, method, path, timeout)
        response = send(
            context, self.args, method, path, self.args.get("body"), timeout
        )
        answer = json_answer(response, self.resource(), path)
        return Outcome(
            False,
            f"{method} {path} on {self.resource()}: HTTP {response.status_code}",
            answer,
        )

    def _pass_through(
        self, context: Context, method: str, path: str, timeout: float
    ) -> Outcome:
        """Send `raw_body` untouched; the answer's status and body are the output."""
        content_type = self.args.get("content_type", "application/json")
        limit = self.args.get("max_bytes", context.settings.proxy_max_bytes)
        raw = (content_type, self.args["raw_body"])
        deadline = time.monotonic() + timeout
        response = send(context, self.args, method, path, None, timeout, True, raw)
        with response:
            body = bytearray()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StepFailed(
                        f"{method} {path} on container {self.resource()} timed out "
                        f"after {timeout:g}s while reading the response",
                        resource=self.resource(),
                    )
                chunk = read_some(response, remaining, self.resource())
                if chunk is None:
                    continue
                if not chunk:
                    break
                body += chunk
                if len(body) > limit:
                    raise StepFailed(
                        f"container {self.resource()} responded to {path} with more "
                        f"than {limit} bytes, the step's max_bytes (the service sets "
                        f"it from --proxy-max-bytes); raise it to allow more",
                        resource=self.resource(),
                    )
        output = {
            "status": response.status_code,
            "content_type": response.headers.get("Content-Type", "application/json"),
            "body": bytes(body),
        }
        message = f"{method} {path} on {self.resource()}: HTTP {response.status_code}"
        return Outcome(False, message, output)

    def check(self, context: Context) -> Change:
        return check_call(context, self.resource(), self.describe())


def check_call(context: Context, container: str, description: str) -> Change:
    """Say whether a request to `container` could be sent at this point of a plan."""
    if not exists(context, "container", container):
        return Change(
            "fail",
            f"would fail: container {container} is not running and no earlier "
            f"step starts it",
        )
    return Change("call", f"would {description} (not sent in check mode)")
