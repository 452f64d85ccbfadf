"""Stopping the service while it applies a plan: the plan cleans up first."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests

from orchestrator import names
from orchestrator.planning import check

from .conftest import make_template
from .helpers import TEMPLATE_GLOBS, build_body, wait_for_container
from .test_failures import start_fault

pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(server, executor_image, *options: str) -> tuple:
    """Run server.py on a free port beside the test server; return (process, url)."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "server.py",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--registry={server.catalog.path}",
            f"--merger-image={executor_image}",
            f"--network={server.network}",
            "--log-format=text",
            *options,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=1)
            return process, url
        except requests.RequestException:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"server.py did not respond on {url} within 30 s")


def send_sigterm(process: subprocess.Popen, signals: int = 1) -> tuple[str, float]:
    """Send SIGTERM, further ones 50 ms apart, and wait for the process to end.

    Returns its standard error and the seconds it took to end.
    """
    stopping = time.monotonic()
    for number in range(signals):
        if number:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    return stderr, time.monotonic() - stopping


def post_in_background(url: str, body: dict, results: list) -> threading.Thread:
    """POST body to url from a thread, and append the response or error to `results`."""

    def post() -> None:
        try:
            results.append(requests.post(url, json=body, timeout=120))
        except requests.RequestException as error:
            results.append(error)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_sigterm_interrupts_plan_and_cleans_up(
    server, cleanup, executor_image, fixture_images, docker_client
):
    images = dict(fixture_images)
    images["template"] = fixture_images["fault-never-ready"]
    template = make_template(images, {}, {})
    cleanup.templates.append(template.id)
    process, url = start_service(server, executor_image, "--ready-timeout=120")
    results: list = []
    try:
        client = post_in_background(url + "/template/warm", template.body, results)
        container = names.template_container(template.id)
        # The template container runs and never becomes ready.
        wait_for_container(docker_client, container)

        # A second signal must not cut the clean-up short.
        stderr, stopped_after = send_sigterm(process, signals=2)
        client.join(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    # The readiness wait stops at its next poll, not at its 120 s deadline.
    assert stopped_after < 30, stderr
    assert "interrupted 1 running plans" in stderr
    assert "executor stopped" in stderr
    assert results
    result = results[0]
    # The service may end before its response is sent.
    if isinstance(result, requests.Response):
        assert result.status_code == 503, result.text
        assert result.json()["title"] == "Service stopping"
    exact = {"name": f"^{container}$"}
    assert docker_client.containers.list(all=True, filters=exact) == []


def test_stopped_engine_starts_no_step(engine, docker_client, caplog):
    network = "cyanprint-test-stopped-" + uuid.uuid4().hex[:8]
    plan = {
        "name": "after-stop",
        "steps": [
            {"name": "network", "kind": "network", "network": network},
            {"name": "again", "kind": "network", "network": network},
        ],
    }
    check(plan)
    assert engine.stop() == 0
    caplog.set_level(logging.INFO, logger="orchestrator.engine.engine")

    report = engine.apply(plan)

    assert report.interrupted
    assert [result.status for result in report.results] == ["skipped", "skipped"]
    assert docker_client.networks.list(names=[network]) == []
    logged = [record.getMessage() for record in caplog.records]
    assert "network skipped: the executor is stopping" in logged
    assert "again skipped: the executor is stopping" in logged


def test_stop_waits_no_longer_than_its_grace(
    server, cleanup, executor_image, fixture_images
):
    # The slow processor responds to each call after 30 s.
    template, session_id, merger_id, started = start_fault(
        server, cleanup, fixture_images, "fault-slow"
    )
    assert started.status_code == 200, started.text
    process, url = start_service(server, executor_image, "--stop-grace=1")
    body = build_body(
        template.body, merger_id, [{"name": "cyan/fault", "files": TEMPLATE_GLOBS}], []
    )
    results: list = []
    try:
        client = post_in_background(f"{url}/executor/{session_id}", body, results)
        time.sleep(2)
        stderr, stopped_after = send_sigterm(process)
        client.join(timeout=60)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    assert "plans still running after 1s" in stderr
    assert "executor stopped" in stderr
    # 5 s for waitress's threads and 1 s of grace, well before the call ends.
    assert stopped_after < 20, stderr
