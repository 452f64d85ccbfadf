"""API behaviour that needs no Docker engine, through Falcon's test client."""

import json
from pathlib import Path

import docker
import pytest
from falcon import testing

from orchestrator.api.app import create_app
from orchestrator.api.problems import MAX_BODY_BYTES
from orchestrator.config import Settings
from orchestrator.service import Executor

GOLDEN = Path(__file__).parent.parent / "golden"


def example(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


@pytest.fixture
def client(tmp_path):
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("processors: {}\nplugins: {}\n")
    # A client for a socket that does not exist: nothing here may reach Docker.
    unreachable = docker.DockerClient(
        base_url="unix:///nonexistent/docker.sock", version="1.41"
    )
    executor = Executor(Settings(registry=str(catalog)), unreachable)
    return testing.TestClient(create_app(executor))


def test_health_fails_without_docker(client):
    response = client.simulate_get("/")
    assert response.status_code == 503
    assert "cannot reach the Docker engine" in response.json["detail"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("dryrun=true", "unknown query parameter 'dryrun'"),
        ("dry_run=yes", "invalid dry_run='yes'"),
        ("dry_run=", "invalid dry_run=''"),
        ("check=1", "invalid check='1'"),
        ("dry_run=true&check=true", "cannot be combined"),
        ("dry_run=TRUE", "invalid dry_run='TRUE'"),
        ("dry_run=true&dry_run=false", "dry_run is given 2 times"),
        ("check=false&check=true", "check is given 2 times"),
    ],
)
def test_preview_flags_strict(client, query, fragment):
    response = client.simulate_delete("/executor/abc", query_string=query)
    assert response.status_code == 400
    assert fragment in response.json["detail"]


def test_body_too_large(client):
    response = client.simulate_post(
        "/executor/abc/warm", body=b" " * (MAX_BODY_BYTES + 1)
    )
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json["detail"]


def test_session_id_try_reserved(client):
    response = client.simulate_post(
        "/executor/try/warm",
        json=example("template-version"),
        query_string="dry_run=true",
    )
    assert response.status_code == 400
    assert "reserved" in response.json["detail"]


def test_volume_reference_must_match_session(client):
    body = example("start")
    body["write_vol_reference"]["session_id"] = "otherSess1"
    response = client.simulate_post("/executor", json=body, query_string="dry_run=true")
    assert response.status_code == 400
    assert (
        "'otherSess1' differs from session_id 'Qx7Lm2Pa9Z'" in (response.json["detail"])
    )


def test_start_plan_requires_warmed_volumes(client):
    response = client.simulate_post(
        "/executor", json=example("start"), query_string="dry_run=true"
    )
    assert response.status_code == 200
    assert response.text.count("must_exist: true") == 2


def test_all_reference_errors_listed(client):
    response = client.simulate_post(
        "/executor/abc", json=example("build"), query_string="dry_run=true"
    )
    assert response.status_code == 400
    data = response.json["data"]
    assert len(data) == 3
    assert data[0].startswith("$.cyan.processors[0].name: processor cyan/default")
    assert data[2].startswith("$.cyan.plugins[0].name: plugin acme/format")


def test_unreachable_registry_is_503(tmp_path):
    executor = Executor(
        Settings(registry="http://127.0.0.1:9", registry_timeout=2),
        docker.DockerClient(base_url="unix:///nonexistent/docker.sock", version="1.41"),
    )
    client = testing.TestClient(create_app(executor))
    response = client.simulate_post(
        "/executor/abc", json=example("build"), query_string="dry_run=true"
    )
    assert response.status_code == 503
    assert "http://127.0.0.1:9" in response.json["detail"]


def test_ids_must_be_uuids(client):
    body = example("template-version")
    body["processors"][0]["id"] = "ab-cd"
    response = client.simulate_post(
        "/template/warm", json=body, query_string="dry_run=true"
    )
    assert response.status_code == 400
    assert "$.processors[0].id: 'ab-cd'" in response.json["data"][0]
