"""The test images behave as the integration tests expect.

Each test pulls fixture images from the session's registry and talks to them
over HTTP at their container IP on a temporary bridge network.
"""

from __future__ import annotations

import zlib

import pytest
from support.containers import container_ip, http_session, read_files, wait_for_http
from support.images import IMAGES_DIR

TEMPLATE_DIR = IMAGES_DIR / "blob" / "template"
READ_DIR = "/workspace/cyanprint"
WRITE_DIR = "/workspace/output"


def source(relative: str) -> bytes:
    return (TEMPLATE_DIR / relative).read_bytes()


def pull(docker_client, fixture_images, name: str) -> str:
    reference, tag = fixture_images[name]
    docker_client.images.pull(reference, tag=tag)
    return f"{reference}:{tag}"


def glob(pattern: str, kind: str) -> dict:
    # The SDK's file helper fails on an empty exclude list.
    return {"root": ".", "glob": pattern, "exclude": [".git/**"], "type": kind}


@pytest.fixture
def session():
    with http_session() as http:
        yield http


@pytest.fixture
def template_volume(docker_client, fixture_images, docker_resources):
    """A volume filled with the template files by the blob image."""
    volume = docker_resources.volume("template")
    blob = docker_resources.run(
        pull(docker_client, fixture_images, "blob"),
        "blob",
        volumes={volume.name: {"bind": READ_DIR, "mode": "rw"}},
        network_disabled=True,
    )
    result = blob.wait(timeout=60)
    assert result["StatusCode"] == 0, blob.logs().decode(errors="replace")
    return volume.name


def start_service(
    docker_client, fixture_images, docker_resources, name, port, session, **kwargs
):
    """Start a fixture image on a new network and wait until GET / returns 200."""
    network = docker_resources.network()
    container = docker_resources.run(
        pull(docker_client, fixture_images, name), name, network=network.name, **kwargs
    )
    url = f"http://{container_ip(container, network.name)}:{port}"
    wait_for_http(url + "/", container=container, session=session)
    return container, url


def test_blob_copies_template_with_modes(
    docker_client, fixture_images, docker_resources, template_volume
):
    reader = docker_resources.run(
        pull(docker_client, fixture_images, "processor"),
        "reader",
        command=["sleep", "60"],
        volumes={template_volume: {"bind": READ_DIR, "mode": "ro"}},
    )
    files = read_files(reader, READ_DIR)

    expected = {
        path.relative_to(TEMPLATE_DIR).as_posix()
        for path in TEMPLATE_DIR.rglob("*")
        if path.is_file()
    }
    assert set(files) == expected
    assert files["README.md"] == (0o644, source("README.md"))
    assert files["scripts/run.sh"] == (0o755, source("scripts/run.sh"))


def test_processor_renders_template(
    docker_client, fixture_images, docker_resources, template_volume, session
):
    output = docker_resources.volume("output")
    container, url = start_service(
        docker_client,
        fixture_images,
        docker_resources,
        "processor",
        5551,
        session,
        volumes={
            template_volume: {"bind": READ_DIR, "mode": "ro"},
            output.name: {"bind": WRITE_DIR, "mode": "rw"},
        },
    )
    request = {
        "readDir": READ_DIR,
        "writeDir": WRITE_DIR,
        "globs": [
            glob("**/*.md", "template"),
            glob("**/*.txt", "template"),
            glob("**/*.sh", "copy"),
            glob("**/*.json", "copy"),
        ],
        "config": {
            "vars": {"name": "demo"},
            "files": {"extra/hello.txt": "hello"},
            "modes": {"extra/hello.txt": "0600"},
            "bulk": {"count": 2, "size": 4096, "dir": "bulk"},
        },
    }

    response = session.post(url + "/api/process", json=request, timeout=60)

    assert response.status_code == 200, response.text
    assert response.json() == {"outputDir": WRITE_DIR}
    files = read_files(container, WRITE_DIR)
    readme = source("README.md").replace(b"{{name}}", b"demo")
    notes = source("docs/guide/deep/nested/notes.txt").replace(b"{{name}}", b"demo")
    assert files["README.md"][1] == readme
    assert files["docs/guide/deep/nested/notes.txt"][1] == notes
    assert files["scripts/run.sh"] == (0o755, source("scripts/run.sh"))
    # Copy globs copy bytes as they are, placeholders included.
    assert files["config/settings.json"][1] == source("config/settings.json")
    assert files["extra/hello.txt"] == (0o600, b"hello")
    bulk = [files[f"bulk/file-{index:05d}.bin"][1] for index in range(2)]
    assert [len(data) for data in bulk] == [4096, 4096]
    assert bulk[0] != bulk[1]
    assert len(zlib.compress(bulk[0])) > 4000


def test_plugin_appends_and_creates_files(
    docker_client, fixture_images, docker_resources, template_volume, session
):
    container, url = start_service(
        docker_client,
        fixture_images,
        docker_resources,
        "plugin",
        5552,
        session,
        volumes={template_volume: {"bind": READ_DIR, "mode": "rw"}},
    )
    request = {
        "directory": READ_DIR,
        "config": {
            "append": {"path": "README.md", "text": "appended\n"},
            "files": {"new/created.txt": "created"},
        },
    }

    response = session.post(url + "/api/plug", json=request, timeout=60)

    assert response.status_code == 200, response.text
    assert response.json() == {"outputDir": READ_DIR}
    files = read_files(container, READ_DIR)
    assert files["README.md"][1] == source("README.md") + b"appended\n"
    assert files["new/created.txt"][1] == b"created"


def test_resolver_joins_in_layer_order(
    docker_client, fixture_images, docker_resources, session
):
    _, url = start_service(
        docker_client, fixture_images, docker_resources, "resolver", 5553, session
    )
    request = {
        "config": {"separator": "|"},
        "files": [
            {
                "path": "a.txt",
                "content": "second",
                "origin": {"template": "t/b", "layer": 2},
            },
            {
                "path": "a.txt",
                "content": "first",
                "origin": {"template": "t/a", "layer": 1},
            },
        ],
    }

    response = session.post(url + "/api/resolve", json=request, timeout=60)

    assert response.status_code == 200, response.text
    assert response.json() == {"path": "a.txt", "content": "first|second"}


def test_template_asks_name_then_answers(
    docker_client, fixture_images, docker_resources, session
):
    _, url = start_service(
        docker_client, fixture_images, docker_resources, "template", 5550, session
    )

    first = session.post(
        url + "/api/template/init",
        json={"answers": {}, "deterministicStates": {}},
        timeout=60,
    )
    final = session.post(
        url + "/api/template/init",
        json={"answers": {"name": {"answer": "demo"}}, "deterministicStates": {}},
        timeout=60,
    )

    assert first.status_code == 200, first.text
    assert first.json()["type"] == "questionnaire"
    assert first.json()["question"]["id"] == "name"
    assert first.json()["question"]["type"] == "text"
    assert final.status_code == 200, final.text
    cyan = final.json()["cyan"]
    assert final.json()["type"] == "final"
    assert [p["name"] for p in cyan["processors"]] == ["cyan/processor"]
    assert cyan["processors"][0]["config"] == {"vars": {"name": "demo"}}
    assert all(g["exclude"] for g in cyan["processors"][0]["files"])
    assert [p["name"] for p in cyan["plugins"]] == ["cyan/plugin"]


def test_fault_500_fails_every_post(
    docker_client, fixture_images, docker_resources, session
):
    _, url = start_service(
        docker_client, fixture_images, docker_resources, "fault-500", 5551, session
    )
    host = url.rsplit(":", 1)[0]

    responses = [
        session.post(f"{host}:{port}/api/{path}", json={}, timeout=30)
        for port, path in ((5551, "process"), (5552, "plug"), (5553, "resolve"))
    ]

    assert [r.status_code for r in responses] == [500, 500, 500]
    assert all(r.text == "processor failed on purpose" for r in responses)


def test_fault_never_ready_answers_503(
    docker_client, fixture_images, docker_resources, session
):
    network = docker_resources.network()
    container = docker_resources.run(
        pull(docker_client, fixture_images, "fault-never-ready"),
        "never-ready",
        network=network.name,
    )
    url = f"http://{container_ip(container, network.name)}:5551/"

    with pytest.raises(TimeoutError, match="HTTP 503"):
        wait_for_http(url, container=container, timeout=3, session=session)
    container.reload()
    assert container.status == "running"


def test_fault_exit_stops_with_code_3(docker_client, fixture_images, docker_resources):
    container = docker_resources.run(
        pull(docker_client, fixture_images, "fault-exit"), "exit"
    )

    result = container.wait(timeout=60)

    assert result["StatusCode"] == 3
    assert container.logs(stdout=False, stderr=True) == b"fatal: bad configuration\n"


def test_fault_bad_json_returns_non_json(
    docker_client, fixture_images, docker_resources, session
):
    _, url = start_service(
        docker_client, fixture_images, docker_resources, "fault-bad-json", 5551, session
    )

    response = session.post(url + "/api/process", json={}, timeout=30)

    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_executor_image_runs_cli(docker_client, executor_image, docker_resources):
    config = docker_client.images.get(executor_image).attrs["Config"]
    container = docker_resources.run(
        executor_image, "executor-help", command=["cyanprint-executor", "--help"]
    )

    result = container.wait(timeout=60)

    assert config["Cmd"] == ["cyanprint-executor", "serve"]
    assert "9000/tcp" in config["ExposedPorts"]
    assert result["StatusCode"] == 0, container.logs().decode(errors="replace")
