"""The proxy endpoints, driving SDK-built template and resolver containers."""

from __future__ import annotations

import pytest
import requests

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
