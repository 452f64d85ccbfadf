"""API behaviour that needs no Docker engine, through Falcon's test client."""

import json
import os
from pathlib import Path

import docker
import pytest
from falcon import testing

from orchestrator.api.app import create_app
from orchestrator.api.problems import MAX_BODY_BYTES, MAX_NESTING, bracket_depth
from orchestrator.config import Settings
from orchestrator.errors import RequestInvalid
from orchestrator.merger import create_app as create_merger_app
from orchestrator.service import Executor, allowed_folder

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


def test_try_session_id_try_reserved(client):
    body = {
        "sessionId": "try",
        "localTemplateId": "0b6f3c1e-9a47-4d2b-8f31-5c2e7a9d4410",
        "template": example("template-version"),
        "imageRef": {"reference": "registry.example.com/blob", "tag": "1"},
    }
    response = client.simulate_post(
        "/executor/try", json=body, query_string="dry_run=true"
    )
    assert response.status_code == 400
    assert "invalid session id 'try'" in response.json["detail"]


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


@pytest.mark.parametrize(
    ("wrapped", "path"),
    [
        (False, "$.processors[0].dockerReference"),
        (True, "$.template.processors[0].dockerReference"),
    ],
)
def test_session_warm_names_the_bad_field(client, wrapped, path):
    template = example("template-version")
    template["processors"][0]["dockerReference"] = "UPPER/Case"
    body = {"template": template} if wrapped else template
    response = client.simulate_post("/executor/abc/warm", json=body)
    assert response.status_code == 400
    data = response.json["data"]
    assert len(data) == 1
    assert data[0].startswith(f"{path}: 'UPPER/Case' does not match")
    assert "image repository in lower case" in data[0]
    assert path in response.json["detail"]


def test_start_volume_must_belong_to_template(client):
    body = example("start")
    other = "11111111-2222-4333-8444-555555555555"
    body["write_vol_reference"]["cyan_id"] = other
    # Without dry_run: the check comes before anything reaches Docker.
    response = client.simulate_post("/executor", json=body)
    assert response.status_code == 400
    detail = response.json["detail"]
    assert f"write_vol_reference.cyan_id {other!r}" in detail
    assert f"template.principal.id {body['template']['principal']['id']!r}" in detail


@pytest.mark.parametrize(
    ("path", "name"), [("/executor", "start"), ("/executor/abc", "build")]
)
def test_both_merger_ids_must_agree(client, path, name):
    body = example(name)
    first = "2c9d1e8f-4b3a-4d5c-9e6f-7a8b9c0d1e2f"
    second = "3d0e2f9a-5c4b-4e6d-8f7a-8b9c0d1e2f3a"
    body["merger"] = {"merger_id": first}
    body["merger_id"] = second
    response = client.simulate_post(path, json=body)
    assert response.status_code == 400
    detail = response.json["detail"]
    assert f"merger.merger_id {first!r} differs from merger_id {second!r}" in detail
    # The same id in both places is accepted.
    body["merger_id"] = first
    response = client.simulate_post(path, json=body, query_string="dry_run=true")
    assert "differs" not in response.text


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    "path",
    [
        "/template/warm",
        "/executor/abc/warm",
        "/executor",
        "/executor/abc",
        "/executor/try",
    ],
)
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 200_000])
def test_deep_nesting_is_400(client, path, depth):
    body = b'{"template": ' + nested(depth - 1) + b"}"
    response = client.simulate_post(
        path, body=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "nests arrays and objects too deeply" in response.json["detail"]
    assert str(MAX_NESTING) in response.json["detail"]


def test_merger_refuses_deep_nesting(tmp_path):
    merger = testing.TestClient(create_merger_app(tmp_path))
    response = merger.simulate_post(
        "/api/merge", body=nested(200_000), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "too deeply" in response.json["detail"]


CATALOG = """\
processors:
  cyan/default: {2: 7e2d9c41-3b5a-4f60-9d8e-aa01bb02cc03}
  acme/licence: {5: c3a1e5f7-2d4b-4e6a-8c0d-99aa88bb77cc}
plugins:
  acme/format: {1: f1e2d3c4-b5a6-4798-8a9b-0c1d2e3f4a5b}
"""


@pytest.fixture
def catalog_client(tmp_path):
    """A client whose catalog file resolves every reference of the golden build."""
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text(CATALOG)
    unreachable = docker.DockerClient(
        base_url="unix:///nonexistent/docker.sock", version="1.41"
    )
    executor = Executor(Settings(registry=str(catalog)), unreachable)
    return testing.TestClient(create_app(executor)), catalog


def test_deepest_accepted_body_plans(catalog_client):
    client, _ = catalog_client
    body = example("build")
    config: object = "leaf"
    # The config sits 4 levels down: body, cyan, processors, the processor.
    for _ in range(MAX_NESTING - 4):
        config = [config]
    body["cyan"]["processors"][0]["config"] = config
    response = client.simulate_post(
        "/executor/abc", json=body, query_string="dry_run=true"
    )
    assert response.status_code == 200, response.text


def test_broken_catalog_file_is_503(catalog_client):
    client, catalog = catalog_client
    build = example("build")
    response = client.simulate_post(
        "/executor/abc", json=build, query_string="dry_run=true"
    )
    assert response.status_code == 200, response.text
    catalog.write_text(CATALOG + "  broken: [\n")
    response = client.simulate_post(
        "/executor/abc", json=build, query_string="dry_run=true"
    )
    assert response.status_code == 503
    detail = response.json["detail"]
    assert f"catalog file {catalog} cannot be used" in detail
    assert "invalid YAML at line 7, column 1" in detail
    assert "$.cyan" not in response.text
    # Once the file is fixed, builds resolve again.
    catalog.write_text(CATALOG)
    response = client.simulate_post(
        "/executor/abc", json=build, query_string="dry_run=true"
    )
    assert response.status_code == 200, response.text


def test_merger_clear_empties_area(tmp_path):
    (tmp_path / "build-1" / "deep").mkdir(parents=True)
    (tmp_path / "build-1" / "deep" / "file.txt").write_text("old")
    (tmp_path / "loose.txt").write_text("old")
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    (tmp_path / "link").symlink_to(outside)
    merger = testing.TestClient(create_merger_app(tmp_path))

    response = merger.simulate_post("/api/clear", json={"directory": str(tmp_path)})

    assert response.status_code == 200
    assert response.json["removed"] == 3
    assert list(tmp_path.iterdir()) == []
    # A link is removed as a link; what it points to stays.
    assert (outside / "keep.txt").read_text() == "keep"


def test_merger_clear_keeps_named_folders(tmp_path):
    for name in ("old", "current-1", "current-2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "file.txt").write_text(name)
    merger = testing.TestClient(create_merger_app(tmp_path))
    keep = [str(tmp_path / "current-1"), str(tmp_path / "current-2" / ".")]

    response = merger.simulate_post(
        "/api/clear", json={"directory": str(tmp_path), "keep": keep}
    )

    assert response.status_code == 200
    assert response.json["removed"] == 1
    assert sorted(entry.name for entry in tmp_path.iterdir()) == [
        "current-1",
        "current-2",
    ]


def test_merger_clear_outside_root_rejected(tmp_path):
    merger = testing.TestClient(create_merger_app(tmp_path / "area"))
    response = merger.simulate_post("/api/clear", json={"directory": str(tmp_path)})
    assert response.status_code == 400
    assert "lies outside" in response.json["detail"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"a": NaN}', "NaN is not a JSON value"),
        ('{"a": -Infinity}', "-Infinity is not a JSON value"),
        ('{"a": 1e400}', "the number 1e400 is too large"),
    ],
)
def test_body_numbers_outside_json_rejected(client, text, fragment):
    response = client.simulate_post(
        "/executor", body=text, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert fragment in response.json["detail"]


def test_try_path_with_nul_rejected(client):
    body = {
        "sessionId": "abc",
        "localTemplateId": "0b6f3c1e-9a47-4d2b-8f31-5c2e7a9d4410",
        "template": example("template-version"),
        "source": "path",
        "path": "/tmp/a\u0000b",
    }
    response = client.simulate_post(
        "/executor/try", json=body, query_string="dry_run=true"
    )
    assert response.status_code == 400
    assert "$.path" in " ".join(response.json["data"])


def test_try_path_resolve_error_is_400(monkeypatch):
    resolve = os.path.realpath

    def broken(path):
        if path == "/tmp/racing":
            raise OSError(22, "Invalid argument")
        return resolve(path)

    monkeypatch.setattr(os.path, "realpath", broken)
    with pytest.raises(RequestInvalid, match="cannot be resolved"):
        allowed_folder("/tmp/racing", "/")


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [1, {"b": 2}]}', 3),
        (b'{"a": "[[[{{{"}', 1),
        (b'{"a": "\\"[[[", "b": ["\\\\"]}', 2),
        (b"[" * 50_000 + b"]" * 50_000, 50_000),
        (b"1", 0),
    ],
)
def test_bracket_depth(raw, depth):
    assert bracket_depth(raw) == depth


def test_deep_utf16_body_is_400(client):
    text = '{"template": ' + nested(MAX_NESTING).decode() + "}"
    response = client.simulate_post(
        "/template/warm",
        body=text.encode("utf-16-le"),
        headers={"Content-Type": "application/json"},
    )

    assert response.status_code == 400
    assert "nests arrays and objects too deeply" in response.json["detail"]
