"""Dry runs and check mode on the API: plans are shown, Docker is left as it was."""

from __future__ import annotations

import uuid

import pytest
import yaml

from orchestrator.engine import Engine
from orchestrator.planning import check

from .conftest import make_template, new_id, new_session
from .helpers import TEMPLATE_GLOBS, build_body, start_body
from .test_flow import warm_and_start

pytestmark = pytest.mark.docker


def engine_state(client) -> dict:
    return {
        "containers": sorted(
            (c.name, c.status) for c in client.containers.list(all=True)
        ),
        "volumes": sorted(v.name for v in client.volumes.list()),
        "networks": sorted(n.name for n in client.networks.list()),
        "images": sorted(tag for image in client.images.list() for tag in image.tags),
    }


def test_dry_run_changes_nothing(server, fixture_images, docker_client):
    template = make_template(
        fixture_images, {"cyan/render": "processor"}, {"cyan/p": "plugin"}
    )
    server.catalog.add(template)
    session_id, merger_id = new_session(), new_id()
    build = build_body(
        template.body,
        merger_id,
        [{"name": "cyan/render", "config": {}, "files": TEMPLATE_GLOBS}],
        [{"name": "cyan/p", "config": None}],
    )
    requests_by_plan = {
        "template-warm": ("POST", "/template/warm", template.body),
        "session-warm": ("POST", f"/executor/{session_id}/warm", template.body),
        "start": (
            "POST",
            "/executor",
            start_body(template.body, session_id, merger_id),
        ),
        "build": ("POST", f"/executor/{session_id}", build),
        "delete": ("DELETE", f"/executor/{session_id}", None),
    }
    before = engine_state(docker_client)
    for plan_name, (method, path, body) in requests_by_plan.items():
        if method == "POST":
            response = server.post(path + "?dry_run=true", body)
        else:
            response = server.delete(path + "?dry_run=true")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/yaml"
        plan = yaml.safe_load(response.text)
        assert plan["name"] == plan_name
        assert plan["steps"]
    assert engine_state(docker_client) == before


def test_dry_run_invalid_request_same_error(server):
    plain = server.post("/executor", {"session_id": "x"})
    dry = server.post("/executor?dry_run=true", {"session_id": "x"})
    assert dry.status_code == plain.status_code == 400
    assert dry.json() == plain.json()


def test_dry_run_flag_must_be_boolean(server):
    response = server.post("/executor?dry_run=maybe", {})
    assert response.status_code == 400
    assert "dry_run" in response.text


def test_check_lists_changes_then_nothing(
    server, cleanup, fixture_images, docker_client
):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    session_id, merger_id = new_session(), new_id()
    before = engine_state(docker_client)
    checked = server.post(f"/executor/{session_id}/warm?check=true", template.body)
    assert checked.status_code == 200, checked.text
    steps = {step["name"]: step for step in checked.json()["steps"]}
    assert steps["session-volume"]["action"] == "create"
    assert steps["template-volume"]["action"] == "create"
    assert "filled by running" in steps["template-volume"]["detail"]
    assert checked.json()["changes"] >= 2
    assert engine_state(docker_client) == before

    warm_and_start(server, cleanup, template, session_id, merger_id)
    again = server.post(f"/executor/{session_id}/warm?check=true", template.body)
    assert {step["action"] for step in again.json()["steps"]} == {"nothing"}
    assert again.json()["changes"] == 0

    start = server.post(
        "/executor?check=true", start_body(template.body, session_id, merger_id)
    )
    assert {step["action"] for step in start.json()["steps"]} == {"nothing"}

    delete = server.delete(f"/executor/{session_id}?check=true")
    remove = delete.json()["steps"][0]
    assert remove["action"] == "remove"
    assert session_id in remove["detail"]
    assert docker_client.containers.list(
        filters={"label": f"cyanprint.session={session_id}"}
    )


def test_check_build_of_unstarted_session_fails(server, fixture_images):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    server.catalog.add(template)
    processors = [{"name": "cyan/render", "config": {}, "files": []}]
    body = build_body(template.body, new_id(), processors, [])

    checked = server.post(f"/executor/{new_session()}?check=true", body)

    assert checked.status_code == 200, checked.text
    answer = checked.json()
    actions = {step["name"]: step["action"] for step in answer["steps"]}
    assert actions == {
        "process-1": "fail",
        "clear": "fail",
        "merge": "fail",
        "archive": "fail",
    }
    assert answer["failures"] == 4
    assert "no earlier step starts it" in answer["steps"][0]["detail"]


def test_check_follows_earlier_steps(server, docker_client, local_fixture_images):
    prefix = "cyanprint-check-" + uuid.uuid4().hex[:8]
    labels = {"cyanprint.session": prefix}
    run = {
        "kind": "run",
        "image": local_fixture_images["processor"],
        "network": server.network,
        "port": 5551,
        "labels": labels,
    }
    plan = {
        "name": "check",
        "steps": [
            {"name": "volume", "kind": "volume", "volume": prefix, "labels": labels},
            {
                **run,
                "name": "mounted",
                "container": prefix + "-a",
                "mounts": [{"volume": prefix, "target": "/data"}],
            },
            {
                **run,
                "name": "typo",
                "container": prefix + "-b",
                "mounts": [{"volume": prefix + "-typo", "target": "/data"}],
            },
            {
                "name": "call",
                "kind": "call",
                "container": prefix + "-a",
                "port": 5551,
                "path": "/",
            },
            {
                "name": "teardown",
                "kind": "teardown",
                "selector": labels,
                "remove_volumes": True,
            },
            {
                "name": "late-call",
                "kind": "call",
                "container": prefix + "-a",
                "port": 5551,
                "path": "/",
            },
        ],
    }
    check(plan)
    before = engine_state(docker_client)

    changes = Engine(docker_client, server.executor.settings).check(plan)

    actions = {change["name"]: change["action"] for change in changes}
    assert actions == {
        "volume": "create",
        "mounted": "start",
        "typo": "fail",
        "call": "call",
        "teardown": "remove",
        "late-call": "fail",
    }
    teardown = next(c for c in changes if c["name"] == "teardown")
    assert prefix + "-a" in teardown["detail"]
    assert prefix in teardown["detail"]
    assert engine_state(docker_client) == before
