"""Log lines of a real merger container, and of the archive a build streams."""

from __future__ import annotations

import json
import logging
import time

import pytest
import requests

from orchestrator import names

from .conftest import make_template, new_id, new_session
from .helpers import build_body
from .test_flow import fixture_template, standard_build, warm_and_start

pytestmark = pytest.mark.docker


def wait_until_ready(container, network: str) -> str:
    """Return the base URL of a merger container once GET / returns 200."""
    deadline = time.monotonic() + 30
    while True:
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode()
        address = container.attrs["NetworkSettings"]["Networks"][network]["IPAddress"]
        if address:
            url = f"http://{address}:{names.PORTS['merger']}"
            try:
                if requests.get(url + "/", timeout=1).status_code == 200:
                    return url
            except requests.RequestException:
                pass
        assert time.monotonic() < deadline, container.logs().decode()
        time.sleep(0.2)


@pytest.mark.parametrize("given_by", ["environment", "option"])
def test_merger_logs_its_session(
    docker_resources, executor_image, test_network, given_by
):
    session_id = new_session()

    command = ["cyanprint-executor", "merger"]
    environment = {}
    if given_by == "option":
        command += ["--session", session_id]
    else:
        environment["CYANPRINT_MERGER_SESSION"] = session_id
    container = docker_resources.run(
        executor_image,
        "merger",
        command=command,
        environment=environment,
        network=test_network,
    )
    url = wait_until_ready(container, test_network)

    # A merge runs in one of the server's worker threads, not the main one.
    merged = requests.post(
        url + "/api/merge",
        json={"layers": [], "output": f"{names.AREA_MOUNT}/out", "resolvers": []},
        timeout=30,
    )
    assert merged.status_code == 200, merged.text

    lines = [
        json.loads(line)
        for line in container.logs().decode().splitlines()
        if line.startswith("{")
    ]
    assert any(line["message"].startswith("merged 0 layers") for line in lines)
    assert any("listening on port" in line["message"] for line in lines)
    assert [line for line in lines if line["session"] != session_id] == []


def wait_for_record(caplog, start: str) -> logging.LogRecord:
    """The archive's line is written as the stream ends, which may follow the body."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in caplog.records if r.getMessage().startswith(start)]
        if found:
            assert len(found) == 1
            return found[0]
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        time.sleep(0.1)


def test_streamed_archive_logged(server, cleanup, fixture_images, caplog):
    caplog.set_level(logging.INFO)
    template = fixture_template(fixture_images)
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    response = server.post(
        f"/executor/{session_id}", standard_build(template, merger_id, "logged")
    )
    assert response.status_code == 200, response.text
    record = wait_for_record(caplog, f"streamed the archive of session {session_id}: ")
    assert record.levelno == logging.INFO
    assert record.session == session_id
    assert f": {len(response.content)} bytes in " in record.getMessage()


def test_archive_failing_midway_logged(
    server, cleanup, fixture_images, docker_client, caplog
):
    template = make_template(fixture_images, {"cyan/render": "processor"}, {})
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    # 100 MiB that barely compress: far more than the servers buffer on the way.
    bulk = {"count": 100, "size": 1024 * 1024}
    processor = {"name": "cyan/render", "config": {"bulk": bulk}, "files": []}
    body = build_body(template.body, merger_id, [processor], [])
    merger = names.session_container("merger", merger_id, session_id)
    with requests.post(
        f"{server.url}/executor/{session_id}", json=body, stream=True, timeout=300
    ) as response:
        assert response.status_code == 200, response.text
        chunks = response.iter_content(64 * 1024)
        received = len(next(chunks))
        docker_client.containers.get(merger).kill()
        with pytest.raises(requests.RequestException):
            for chunk in chunks:
                received += len(chunk)
    assert received < 100 * 1024 * 1024
    record = wait_for_record(
        caplog, f"streaming the archive of session {session_id} failed after "
    )
    assert record.levelno == logging.ERROR
    assert record.session == session_id


def test_merger_stops_on_sigterm(docker_resources, executor_image, test_network):
    container = docker_resources.run(
        executor_image,
        "merger",
        command=["cyanprint-executor", "merger"],
        network=test_network,
    )
    wait_until_ready(container, test_network)

    started = time.monotonic()
    container.stop(timeout=10)
    container.reload()

    # Without a handler the engine would wait the whole 10 s, then kill it.
    assert time.monotonic() - started < 5
    assert container.attrs["State"]["ExitCode"] == 0
    assert "received SIGTERM, stopping" in container.logs().decode()
