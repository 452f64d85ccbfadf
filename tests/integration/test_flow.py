"""The whole flow on a real engine: warm, start, build, delete."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading

import pytest
import requests
import waitress
from support.containers import command_output

from orchestrator import names
from orchestrator.api.app import create_app, server_options
from orchestrator.service import archive_chunks

from .conftest import make_template, new_id, new_session, session_leftovers
from .helpers import (
    TEMPLATE_GLOBS,
    build_body,
    expected_blob_output,
    read_archive,
    start_body,
)

pytestmark = pytest.mark.docker


def warm_and_start(server, cleanup, template, session_id, merger_id):
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    server.catalog.add(template)
    warm = server.post(f"/executor/{session_id}/warm", template.body)
    assert warm.status_code == 200, warm.text
    assert warm.json() == {
        "session_id": session_id,
        "vol_ref": {"cyan_id": template.id, "session_id": session_id},
    }
    started = server.post("/executor", start_body(template.body, session_id, merger_id))
    assert started.status_code == 200, started.text
    assert started.json() == {"status": "OK"}


def standard_build(template, merger_id, name):
    processors = [
        {
            "name": "cyan/render",
            "config": {
                "vars": {"name": name},
                "files": {"shared.txt": "from render\n"},
            },
            "files": TEMPLATE_GLOBS,
        },
        {
            "name": "cyan/extra",
            "config": {
                "files": {"shared.txt": "from extra\n", "extra/only.txt": name},
                "modes": {"extra/only.txt": "0600"},
            },
            "files": [],
        },
    ]
    plugins = [
        {
            "name": "cyan/append",
            "config": {"append": {"path": "README.md", "text": "\nappended"}},
        },
        {"name": "cyan/append", "config": {"files": {"plugin/made.txt": "by plugin"}}},
    ]
    return build_body(template.body, merger_id, processors, plugins)


def fixture_template(fixture_images):
    return make_template(
        fixture_images,
        processors={"cyan/render": "processor", "cyan/extra": "processor"},
        plugins={"cyan/append": "plugin"},
    )


def check_archive(response, name):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-gzip"
    assert response.headers["Content-Disposition"] == (
        "attachment; filename=cyan-output.tar.gz"
    )
    files, folders = read_archive(response.content)
    expected = expected_blob_output({"name": name})
    readme, mode = expected.pop("README.md")
    assert files.pop("README.md") == (readme + b"\nappended", mode)
    for path, (content, mode) in expected.items():
        assert files.pop(path) == (content, mode), path
    assert files.pop("shared.txt") == (b"from extra\n", 0o644)
    assert files.pop("extra/only.txt") == (name.encode(), 0o600)
    assert files.pop("plugin/made.txt")[0] == b"by plugin"
    assert files == {}
    assert "extra" in folders
    assert "plugin" in folders


def area_entries(client, images, template, session_id) -> set[str]:
    """List the top-level entries of a session's work area."""
    volume = names.session_volume(template.id, session_id)
    listing = command_output(
        client,
        images["blob"],
        ["/bin/busybox", "ls", "/area"],
        volumes={volume: {"bind": "/area", "mode": "ro"}},
    )
    return set(listing.split())


def test_whole_flow(
    server, cleanup, fixture_images, local_fixture_images, docker_client
):
    template = fixture_template(fixture_images)
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)

    response = server.post(
        f"/executor/{session_id}", standard_build(template, merger_id, "orders")
    )
    check_archive(response, "orders")
    first = area_entries(docker_client, local_fixture_images, template, session_id)

    # A second build in the same session gives the same result.
    again = server.post(
        f"/executor/{session_id}", standard_build(template, merger_id, "orders")
    )
    check_archive(again, "orders")
    # Only the last build's folders stay in the session volume.
    second = area_entries(docker_client, local_fixture_images, template, session_id)
    assert len(second) == len(first)
    assert second.isdisjoint(first)

    deleted = server.delete(f"/executor/{session_id}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"status": "OK"}
    assert session_leftovers(docker_client, session_id) == []
    # The template volume is shared by sessions and stays.
    docker_client.volumes.get(names.template_volume(template.id))


def test_warm_pulls_missing_images(server, cleanup, fixture_images, docker_client):
    template = fixture_template(fixture_images)
    reference, tag = fixture_images["plugin"]
    for image in docker_client.images.list(name=reference):
        if f"{reference}:{tag}" in image.tags:
            docker_client.images.remove(f"{reference}:{tag}", force=False)
    session_id = new_session()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)
    warm = server.post(f"/executor/{session_id}/warm", template.body)
    assert warm.status_code == 200, warm.text
    docker_client.images.get(f"{reference}:{tag}")
    volume = docker_client.volumes.get(names.session_volume(template.id, session_id))
    assert volume.attrs["Labels"]["cyanprint.session"] == session_id
    assert volume.attrs["Labels"]["cyanprint.dev"] == "true"


def test_two_sessions_no_crosstalk(server, cleanup, fixture_images):
    template = fixture_template(fixture_images)
    results: dict[str, object] = {}

    def run(name):
        session_id, merger_id = new_session(), new_id()
        warm_and_start(server, cleanup, template, session_id, merger_id)
        results[name] = server.post(
            f"/executor/{session_id}", standard_build(template, merger_id, name)
        )

    threads = [threading.Thread(target=run, args=(name,)) for name in ("alpha", "beta")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_archive(results["alpha"], "alpha")
    check_archive(results["beta"], "beta")


def test_template_warm_starts_template(server, cleanup, fixture_images, docker_client):
    template = fixture_template(fixture_images)
    cleanup.templates.append(template.id)
    response = server.post("/template/warm", template.body)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "OK"}
    container = docker_client.containers.get(names.template_container(template.id))
    assert container.status == "running"
    assert container.labels["cyanprint.dev"] == "true"
    docker_client.volumes.get(names.template_volume(template.id))
    # Warming again finds everything in place.
    assert server.post("/template/warm", template.body).status_code == 200
    assert docker_client.containers.get(container.name).id == container.id


def test_start_twice_changes_nothing(server, cleanup, fixture_images, docker_client):
    template = fixture_template(fixture_images)
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    planned = server.executor.plan_start(
        start_body(template.body, session_id, merger_id)
    )
    report = server.executor.apply(planned)
    assert [r.status for r in report.results if r.status != "ok"] == []


def test_build_keeps_dollar_brace_text(server, cleanup, fixture_images):
    template = fixture_template(fixture_images)
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    script = "echo ${home}/bin $${escaped} ${merge.directory}\n"
    processors = [
        {"name": "cyan/render", "config": {"files": {"run.sh": script}}, "files": []}
    ]
    plugins = [
        {
            "name": "cyan/append",
            "config": {"files": {"note.txt": "dir=${process-1.outputDir}"}},
        }
    ]
    body = build_body(template.body, merger_id, processors, plugins)

    response = server.post(f"/executor/{session_id}", body)

    assert response.status_code == 200, response.text
    files, _ = read_archive(response.content)
    assert files["run.sh"][0] == script.encode()
    assert files["note.txt"][0] == b"dir=${process-1.outputDir}"


def test_delete_during_stream_keeps_archive(
    server, cleanup, fixture_images, docker_client
):
    template = fixture_template(fixture_images)
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    processors = [
        {
            "name": "cyan/render",
            "config": {"bulk": {"count": 16, "size": 256 * 1024}},
            "files": [],
        }
    ]
    executor = server.executor
    planned = executor.plan_build(
        session_id, build_body(template.body, merger_id, processors, [])
    )
    stream = archive_chunks(executor.apply(planned, hold_session=True), session_id)
    chunks = iter(stream)
    received = [next(chunks)]

    # The client reads nothing more, yet the delete goes through once the
    # merger has sent the whole archive, and the archive stays whole.
    deleting = threading.Thread(
        target=lambda: executor.apply(executor.plan_delete(session_id))
    )
    deleting.start()
    deleting.join(timeout=60)
    assert not deleting.is_alive()
    assert session_leftovers(docker_client, session_id) == []

    received.extend(chunks)
    files, _ = read_archive(b"".join(received))
    assert len([path for path in files if path.startswith("bulk/")]) == 16


def test_stalled_client_keeps_no_worker(server, cleanup, fixture_images):
    template = fixture_template(fixture_images)
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    # One worker thread: if a stalled download kept it, nothing else would run.
    settings = dataclasses.replace(server.executor.settings, threads=1)
    wsgi = waitress.create_server(
        create_app(server.executor),
        host="127.0.0.1",
        port=0,
        **server_options(settings),
    )
    threading.Thread(target=wsgi.run, daemon=True).start()
    port = int(wsgi.effective_port)

    processors = [
        {
            "name": "cyan/render",
            "config": {"bulk": {"count": 64, "size": 512 * 1024}},
            "files": [],
        }
    ]
    body = json.dumps(build_body(template.body, merger_id, processors, [])).encode()

    stalled = socket.create_connection(("127.0.0.1", port))
    try:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            f"POST /executor/{session_id} HTTP/1.1\r\nHost: test\r\n"
            f"Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        assert stalled.recv(12) == b"HTTP/1.1 200"
        # The client reads nothing more, yet the server still serves others.
        answer = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert answer.status_code == 200
        deleted = requests.delete(
            f"http://127.0.0.1:{port}/executor/{session_id}", timeout=60
        )
        assert deleted.status_code == 200
    finally:
        stalled.close()
        wsgi.close()
