"""The proxy endpoints, driving SDK-built template and resolver containers."""

from __future__ import annotations

import dataclasses
import time

import falcon.testing
import pytest
import requests

from orchestrator import names
from orchestrator.api.app import create_app
from orchestrator.service import Executor

from .conftest import make_template, new_id
from .test_failures import assert_problem
from .test_resolvers import resolver_entry

pytestmark = pytest.mark.docker


@pytest.fixture
def warmed(server, cleanup, fixture_images):
    """A template whose template container and one resolver are running."""
    resolver_id = new_id()
    template = make_template(
        fixture_images,
        {"cyan/processor": "processor"},
        {"cyan/plugin": "plugin"},
        resolvers=[resolver_entry(fixture_images, resolver_id, ["*.txt"])],
    )
    cleanup.templates.append(template.id)
    cleanup.resolvers.append(resolver_id)
    response = server.post("/template/warm", template.body)
    assert response.status_code == 200, response.text
    return template, resolver_id


def test_template_questions_to_final_answer(server, warmed):
    template, _ = warmed
    url = f"/proxy/template/{template.id}/api/template/init"
    first = server.post(url, {"answers": {}, "deterministicStates": {}})
    assert first.status_code == 200, first.text
    question = first.json()
    assert question["type"] == "questionnaire"
    assert question["question"]["id"] == "name"

    final = server.post(
        url,
        {"answers": {"name": {"answer": "orders"}}, "deterministicStates": {}},
    )
    assert final.status_code == 200, final.text
    answer = final.json()
    assert answer["type"] == "final"
    processor = answer["cyan"]["processors"][0]
    assert processor["name"] == "cyan/processor"
    assert processor["config"] == {"vars": {"name": "orders"}}
    assert answer["cyan"]["plugins"][0]["name"] == "cyan/plugin"


def test_template_validate_passes_through(server, warmed):
    template, _ = warmed
    response = server.post(
        f"/proxy/template/{template.id}/api/template/validate",
        {"answers": {}, "deterministicStates": {}, "validate": "name"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"valid": None}


def test_resolver_proxy(server, warmed):
    _, resolver_id = warmed
    body = {
        "config": {"separator": "+"},
        "files": [
            {"path": "a.txt", "content": "1", "origin": {"template": "x", "layer": 0}},
            {"path": "a.txt", "content": "2", "origin": {"template": "y", "layer": 1}},
        ],
    }
    response = server.post(f"/proxy/resolver/{resolver_id}/api/resolve", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"path": "a.txt", "content": "1+2"}


def test_container_errors_pass_through(server, warmed):
    template, _ = warmed
    response = requests.post(
        server.url + f"/proxy/template/{template.id}/api/template/init",
        data=b'{"answers": "not a map", "deterministicStates": {}}',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    # The SDK answers a body it cannot read with 400; the proxy keeps the status.
    assert response.status_code == 400
    assert "answers" in response.text


def test_body_and_content_type_untouched(server, warmed):
    _, resolver_id = warmed
    text = '{"config": {}, "files": []}'
    response = requests.post(
        server.url + f"/proxy/resolver/{resolver_id}/api/resolve",
        data=text.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        timeout=30,
    )
    # The fixture resolver fails on an empty file list with a 500 of its own.
    assert response.status_code == 500


def test_unknown_container_is_502(server):
    response = server.post(f"/proxy/template/{new_id()}/api/template/init", {})
    assert_problem(response, 502, "not found", "POST /template/warm")
    response = server.post(f"/proxy/resolver/{new_id()}/api/resolve", {})
    assert_problem(response, 502, "cyan-resolver-")


@pytest.mark.parametrize("identifier", ["-x", "a%20b", "x" * 65])
def test_unsafe_id_rejected(server, identifier):
    response = server.post(f"/proxy/template/{identifier}/api/template/init", {})
    assert_problem(response, 400, "invalid template id")
    response = server.post(f"/proxy/resolver/{identifier}/api/resolve", {})
    assert_problem(response, 400, "invalid resolver id")


def test_unknown_template_action(server):
    response = server.post(f"/proxy/template/{new_id()}/api/template/delete", {})
    assert_problem(response, 404, "init or validate")


def test_body_too_large(server):
    limit = server.executor.settings.proxy_max_bytes
    response = requests.post(
        server.url + f"/proxy/resolver/{new_id()}/api/resolve",
        data=b"x" * (limit + 1),
        timeout=60,
    )
    assert_problem(response, 413, str(limit))


def test_proxy_dry_run(server, warmed):
    template, _ = warmed
    response = server.post(
        f"/proxy/template/{template.id}/api/template/init?dry_run=true",
        {"answers": {}},
    )
    assert response.status_code == 200
    assert "kind: call" in response.text
    assert "/api/template/init" in response.text


def bounded_client(server, docker_client, **limits) -> falcon.testing.TestClient:
    """The same executor with tighter proxy limits, driven in this process."""
    settings = dataclasses.replace(server.executor.settings, **limits)
    return falcon.testing.TestClient(create_app(Executor(settings, docker_client)))


def warm_fault_resolver(server, cleanup, fixture_images, fault: str) -> str:
    resolver_id = new_id()
    images = dict(fixture_images)
    images["resolver"] = fixture_images[fault]
    template = make_template(
        fixture_images,
        {"cyan/processor": "processor"},
        {},
        resolvers=[resolver_entry(images, resolver_id, ["*.txt"])],
    )
    cleanup.templates.append(template.id)
    cleanup.resolvers.append(resolver_id)
    response = server.post("/template/warm", template.body)
    assert response.status_code == 200, response.text
    return resolver_id


def test_proxy_slow_container_times_out(server, cleanup, fixture_images, docker_client):
    resolver_id = warm_fault_resolver(server, cleanup, fixture_images, "fault-slow")
    client = bounded_client(server, docker_client, proxy_timeout=2.0)
    started = time.monotonic()
    response = client.simulate_post(
        f"/proxy/resolver/{resolver_id}/api/resolve", json={"files": []}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 502, response.text
    problem = response.json
    assert "timed out after 2s" in problem["detail"]
    assert "POST /template/warm" not in problem["detail"]
    container = names.resolver_container(resolver_id)
    assert any(container in message for message in problem["data"])
    # The container sleeps 30 s; the proxy must give up long before that.
    assert elapsed < 15


def test_proxy_oversize_response_rejected(
    server, cleanup, fixture_images, docker_client
):
    resolver_id = warm_fault_resolver(server, cleanup, fixture_images, "fault-big")
    limit = 1024 * 1024
    client = bounded_client(server, docker_client, proxy_max_bytes=limit)
    response = client.simulate_post(
        f"/proxy/resolver/{resolver_id}/api/resolve", json={"files": []}
    )
    assert response.status_code == 502, response.text
    detail = response.json["detail"]
    assert f"more than {limit} bytes" in detail
    assert "--proxy-max-bytes" in detail

    # Under a limit that fits, the same response passes through whole.
    roomy = bounded_client(server, docker_client, proxy_max_bytes=4 * limit)
    response = roomy.simulate_post(
        f"/proxy/resolver/{resolver_id}/api/resolve", json={"files": []}
    )
    assert response.status_code == 200
    assert len(response.content) == 2 * limit


def test_proxy_trickled_response_times_out(
    server, cleanup, fixture_images, docker_client
):
    resolver_id = warm_fault_resolver(server, cleanup, fixture_images, "fault-trickle")
    client = bounded_client(server, docker_client, proxy_timeout=3.0)
    started = time.monotonic()
    response = client.simulate_post(
        f"/proxy/resolver/{resolver_id}/api/resolve", json={"files": []}
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 502, response.text
    assert "timed out after 3s while reading the response" in response.json["detail"]
    # The body takes 60 s to arrive; the deadline covers the whole of it.
    assert elapsed < 8


def test_proxy_stopped_container_hint(server, warmed, docker_client):
    _, resolver_id = warmed
    container = docker_client.containers.get(names.resolver_container(resolver_id))
    container.stop(timeout=1)

    response = server.post(f"/proxy/resolver/{resolver_id}/api/resolve", {})

    assert_problem(response, 502, "is not running", "POST /template/warm")
    assert "POST /executor" not in " ".join(response.json()["data"])
