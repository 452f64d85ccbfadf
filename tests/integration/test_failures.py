"""Every failure the API promises a clear answer for, on a real engine."""

from __future__ import annotations

import threading

import pytest
import requests
import waitress

from orchestrator import names
from orchestrator.api.app import create_app
from orchestrator.config import Settings
from orchestrator.service import Executor

from .conftest import (
    Server,
    make_template,
    new_id,
    new_session,
    session_leftovers,
)
from .helpers import TEMPLATE_GLOBS, build_body, start_body

pytestmark = pytest.mark.docker


def assert_problem(response, status, *fragments):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["type"].endswith(f"/{status}")
    assert body["trace_id"] is None
    assert isinstance(body["data"], list) and body["data"]
    text = " ".join(body["data"]) + " " + body["detail"]
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} not in {text!r}"
    return body


@pytest.fixture(scope="module")
def quick_server(docker_client, executor_image, test_network, server):
    """A second executor that gives containers 4 seconds to become ready."""
    settings = Settings(
        registry=str(server.catalog.path),
        merger_image=executor_image,
        network=test_network,
        ready_timeout=4.0,
        call_timeout=30.0,
    )
    executor = Executor(settings, docker_client)
    wsgi = waitress.create_server(
        create_app(executor), host="127.0.0.1", port=0, threads=8
    )
    threading.Thread(target=wsgi.run, daemon=True).start()
    yield Server(
        f"http://127.0.0.1:{wsgi.effective_port}",
        executor,
        server.catalog,
        test_network,
    )
    wsgi.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/template/warm"),
        ("POST", "/executor/s1/warm"),
        ("POST", "/executor"),
        ("POST", "/executor/s1"),
    ],
)
def test_malformed_json(server, method, path):
    response = requests.request(
        method,
        server.url + path,
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "not valid JSON")


def test_empty_body(server):
    response = requests.post(server.url + "/executor", data=b"")
    assert_problem(response, 400, "empty")


def test_missing_fields_listed(server):
    response = server.post("/executor", {"session_id": "abc"})
    body = assert_problem(response, 400)
    assert body["title"] == "Failed to start executor"
    assert "$: 'template' is a required property" in body["data"]
    assert "$: 'write_vol_reference' is a required property" in body["data"]


@pytest.mark.parametrize("session_id", ["-rm", "a%20b", "x" * 65, "a..%0A"])
def test_unsafe_session_id(server, fixture_images, session_id):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    for response in (
        server.post(f"/executor/{session_id}/warm", template.body),
        server.post(
            f"/executor/{session_id}", build_body(template.body, new_id(), [], [])
        ),
        server.delete(f"/executor/{session_id}"),
    ):
        assert_problem(response, 400, "invalid session id")


def test_unsafe_session_id_in_start_body(server, fixture_images):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    body = start_body(template.body, "bad id", new_id())
    assert_problem(server.post("/executor", body), 400, "$.session_id")


def test_unknown_reference(server, fixture_images):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    server.catalog.add(template)
    body = build_body(
        template.body, new_id(), [{"name": "nobody/missing", "files": []}], []
    )
    assert_problem(
        server.post(f"/executor/{new_session()}", body), 400, "nobody/missing"
    )


def test_invalid_reference_shape(server, fixture_images):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    body = build_body(template.body, new_id(), [{"name": "a/b/c", "files": []}], [])
    assert_problem(server.post(f"/executor/{new_session()}", body), 400, "'a/b/c'")


def test_version_not_pinned(server, fixture_images):
    pinned = make_template(fixture_images, {"cyan/pinned": "processor"}, {})
    server.catalog.add(pinned)
    other = make_template(fixture_images, {"cyan/pinned": "processor"}, {})
    server.catalog.add(other)
    # Version 2 of cyan/pinned belongs to the other template.
    body = build_body(
        pinned.body, new_id(), [{"name": "cyan/pinned:2", "files": []}], []
    )
    assert_problem(
        server.post(f"/executor/{new_session()}", body),
        400,
        "cyan/pinned:2",
        "not pinned",
    )


def test_image_missing_from_registry(server, cleanup, fixture_images, registry):
    images = dict(fixture_images)
    images["missing"] = (f"{registry.host}/cyan-test/does-not-exist", "1.0")
    template = make_template(images, {"cyan/ghost": "missing"}, {})
    session_id = new_session()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    response = server.post(f"/executor/{session_id}/warm", template.body)
    assert_problem(response, 400, "does-not-exist:1.0", "Failed to warm executor")


def start_fault(server, cleanup, fixture_images, image):
    template = make_template(fixture_images, {"cyan/fault": image}, {})
    session_id, merger_id = new_session(), new_id()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    server.catalog.add(template)
    assert server.post(f"/executor/{session_id}/warm", template.body).status_code == 200
    response = server.post(
        "/executor", start_body(template.body, session_id, merger_id)
    )
    return template, session_id, merger_id, response


def test_container_never_ready(quick_server, cleanup, fixture_images, docker_client):
    template, session_id, _, response = start_fault(
        quick_server, cleanup, fixture_images, "fault-never-ready"
    )
    container = names.session_container(
        "processor", template.processors["cyan/fault"], session_id
    )
    assert_problem(response, 503, container, "within 4s", "HTTP 503")
    # The failed start removed its containers; DELETE removes the volumes.
    assert [
        c for c in session_leftovers(docker_client, session_id) if "processor" in c
    ] == []
    assert quick_server.delete(f"/executor/{session_id}").status_code == 200
    assert session_leftovers(docker_client, session_id) == []


def test_container_exits_early(quick_server, cleanup, fixture_images, docker_client):
    _, session_id, _, response = start_fault(
        quick_server, cleanup, fixture_images, "fault-exit"
    )
    body = assert_problem(response, 503, "exit code 3", "fatal: bad configuration")
    assert any("stopped before it was ready" in line for line in body["data"])
    assert quick_server.delete(f"/executor/{session_id}").status_code == 200
    assert session_leftovers(docker_client, session_id) == []


def test_processor_answers_500(server, cleanup, fixture_images):
    template, session_id, merger_id, response = start_fault(
        server, cleanup, fixture_images, "fault-500"
    )
    assert response.status_code == 200, response.text
    body = build_body(
        template.body, merger_id, [{"name": "cyan/fault", "files": TEMPLATE_GLOBS}], []
    )
    container = names.session_container(
        "processor", template.processors["cyan/fault"], session_id
    )
    assert_problem(
        server.post(f"/executor/{session_id}", body),
        400,
        container,
        "HTTP 500",
        "processor failed on purpose",
        "process-1",
    )


def test_processor_answers_bad_json(server, cleanup, fixture_images):
    template, session_id, merger_id, response = start_fault(
        server, cleanup, fixture_images, "fault-bad-json"
    )
    assert response.status_code == 200, response.text
    body = build_body(
        template.body, merger_id, [{"name": "cyan/fault", "files": []}], []
    )
    assert_problem(server.post(f"/executor/{session_id}", body), 400, "not JSON")


def test_merger_unreachable(server, cleanup, fixture_images, docker_client):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    session_id, merger_id = new_session(), new_id()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    server.catalog.add(template)
    assert server.post(f"/executor/{session_id}/warm", template.body).status_code == 200
    started = server.post("/executor", start_body(template.body, session_id, merger_id))
    assert started.status_code == 200, started.text
    docker_client.containers.get(
        names.session_container("merger", merger_id, session_id)
    ).stop(timeout=1)
    body = build_body(
        template.body,
        merger_id,
        [
            {
                "name": "cyan/render",
                "config": {"vars": {"name": "x"}},
                "files": TEMPLATE_GLOBS,
            }
        ],
        [],
    )
    assert_problem(server.post(f"/executor/{session_id}", body), 503, "merger")


def test_build_before_start(server, fixture_images):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    server.catalog.add(template)
    body = build_body(
        template.body, new_id(), [{"name": "cyan/render", "files": []}], []
    )
    session_id = new_session()
    assert_problem(
        server.post(f"/executor/{session_id}", body),
        400,
        f"the containers of session {session_id} are not started",
        "start them with POST /executor first",
    )


@pytest.mark.parametrize(
    ("processors", "status"),
    [([{"name": "cyan/render", "files": []}], 400), ([], 503)],
)
def test_build_of_warmed_session_not_started(
    server, cleanup, fixture_images, processors, status
):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    session_id, merger_id = new_session(), new_id()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    server.catalog.add(template)
    warmed = server.post(f"/executor/{session_id}/warm", template.body)
    assert warmed.status_code == 200, warmed.text
    body = build_body(template.body, merger_id, processors, [])
    problem = assert_problem(
        server.post(f"/executor/{session_id}", body),
        status,
        f"the containers of session {session_id} are not started",
        "start them with POST /executor first",
    )
    first = (
        names.session_container(
            "processor", template.processors["cyan/render"], session_id
        )
        if processors
        else names.session_container("merger", merger_id, session_id)
    )
    assert f"container {first} does not exist" in problem["data"][0]
    assert "POST /template/warm" not in " ".join(problem["data"])


def test_sdk_processor_fails_on_empty_exclude(server, cleanup, fixture_images):
    """The published SDK's file helper fails on a glob whose exclude list is empty."""
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    session_id, merger_id = new_session(), new_id()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    server.catalog.add(template)
    assert server.post(f"/executor/{session_id}/warm", template.body).status_code == 200
    started = server.post("/executor", start_body(template.body, session_id, merger_id))
    assert started.status_code == 200, started.text
    glob = {
        "root": None,
        "glob": "**/*.md",
        "exclude": ["**/*.tmp"],
        "type": "template",
    }
    processor = {"name": "cyan/render", "config": {}, "files": [glob]}
    body = build_body(template.body, merger_id, [processor], [])
    assert server.post(f"/executor/{session_id}", body).status_code == 200
    glob["exclude"] = []
    assert_problem(
        server.post(f"/executor/{session_id}", body), 400, "process-1", "HTTP 500"
    )


def test_unknown_route(server):
    response = requests.get(server.url + "/nothing-here")
    assert_problem(response, 404)


def test_delete_unknown_session_is_ok(server):
    assert server.delete(f"/executor/{new_session()}").json() == {"status": "OK"}


def test_template_warm_missing_image_is_400(server, cleanup, fixture_images, registry):
    images = dict(fixture_images)
    images["blob"] = (f"{registry.host}/cyan-test/no-such-blob", "2.0")
    template = make_template(images, {}, {})
    cleanup.templates.append(template.id)
    response = server.post("/template/warm", template.body)
    body = assert_problem(response, 400, "no-such-blob:2.0", "check dockerReference")
    assert body["title"] == "Failed to warm template"


def test_template_never_ready_is_503(quick_server, cleanup, fixture_images):
    images = dict(fixture_images)
    images["template"] = fixture_images["fault-never-ready"]
    template = make_template(images, {}, {})
    cleanup.templates.append(template.id)
    response = quick_server.post("/template/warm", template.body)
    container = names.template_container(template.id)
    assert_problem(response, 503, container, "within 4s")
    # A container that never became ready is removed; its log is in the error.
    assert not quick_server.executor.engine.client.containers.list(
        all=True, filters={"name": f"^{container}$"}
    )


def test_start_without_warm_is_refused(server, fixture_images, docker_client):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    session_id = new_session()
    response = server.post("/executor", start_body(template.body, session_id, new_id()))
    assert_problem(
        response,
        503,
        names.template_volume(template.id),
        f"warm the session first (POST /executor/{session_id}/warm)",
    )
    # Docker would have made the volumes, empty and unlabelled, had a container
    # mounted them; the start stopped before any container was created.
    assert session_leftovers(docker_client, session_id) == []
    assert not [
        v
        for v in docker_client.volumes.list()
        if v.name == names.template_volume(template.id)
    ]
