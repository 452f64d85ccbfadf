"""`call`: send an HTTP request to a container; its JSON answer is the output."""

from __future__ import annotations

import json
from typing import Any

import requests

from ...errors import StepFailed
from ..context import Context, http
from ..dockerapi import container_address, find_container, translated
from .base import Change, Outcome, Step

# How much of an unexpected answer body an error message quotes.
EXCERPT = 500


def excerpt(text: str) -> str:
    text = text.strip()
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


def container_url(context: Context, container: str, network: str, port: int) -> str:
    with translated("inspect container", container):
        found = find_container(context.client, container)
    if found is None:
        raise StepFailed(
            f"container {container} not found; start the session's containers "
            f"first (POST /executor)",
            resource=container,
            unreachable=True,
        )
    if found.status != "running":
        raise StepFailed(
            f"container {container} is not running (status {found.status}); "
            f"start the session's containers again (POST /executor)",
            resource=container,
            unreachable=True,
        )
    return f"http://{container_address(found, network)}:{port}"


def send(
    context: Context,
    args: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    timeout: float,
    stream: bool = False,
) -> requests.Response:
    """Send one request to the container in `args`; raise StepFailed unless 2xx."""
    container = args["container"]
    network = args.get("network", context.settings.network)
    url = container_url(context, container, network, args["port"]) + path
    try:
        response = http().request(
            method,
            url,
            json=body if method != "GET" else None,
            timeout=(min(10.0, timeout), timeout),
            stream=stream,
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
    if not 200 <= response.status_code < 300:
        raise StepFailed(
            f"container {container} answered {method} {path} with HTTP "
            f"{response.status_code}: {excerpt(response.text) or '(empty body)'}",
            resource=container,
        )
    return response


def json_answer(response: requests.Response, container: str, path: str) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, requests.JSONDecodeError) as error:
        raise StepFailed(
            f"container {container} answered {path} with a body that is not JSON: "
            f"{excerpt(response.text) or '(empty body)'}",
            resource=container,
        ) from error


class Call(Step):
    kind = "call"

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
        response = send(
            context, self.args, method, path, self.args.get("body"), timeout
        )
        answer = json_answer(response, self.resource(), path)
        return Outcome(
            False,
            f"{method} {path} on {self.resource()}: HTTP {response.status_code}",
            answer,
        )

    def check(self, context: Context) -> Change:
        return Change("call", f"would {self.describe()} (not sent in check mode)")
