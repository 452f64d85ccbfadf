"""Stopping the service while it applies a plan: the plan cleans up first."""

from __future__ import annotations

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

pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_container(client, name: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.containers.list(filters={"name": f"^{name}$"}):
            return
        time.sleep(0.1)
    raise AssertionError(f"container {name} did not start within {seconds} s")


def test_sigterm_interrupts_plan_and_cleans_up(
    server, cleanup, executor_image, fixture_images, docker_client
):
    images = dict(fixture_images)
    images["template"] = fixture_images["fault-never-ready"]
    template = make_template(images, {}, {})
    cleanup.templates.append(template.id)
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
            "--ready-timeout=120",
            "--log-format=text",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    answers = []

    def warm() -> None:
        try:
            answers.append(
                requests.post(
                    f"http://127.0.0.1:{port}/template/warm",
                    json=template.body,
                    timeout=120,
                )
            )
        except requests.RequestException as error:
            answers.append(error)

    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        client = threading.Thread(target=warm)
        client.start()
        container = names.template_container(template.id)
        # The template container runs and never becomes ready.
        wait_for_container(docker_client, container)

        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        stopped_after = time.monotonic() - stopping
        client.join(timeout=30)
    finally:
        process.kill()

    assert process.returncode == 0, stderr
    # The readiness wait stops at its next poll, not at its 120 s deadline.
    assert stopped_after < 30, stderr
    assert "interrupted 1 running plans" in stderr
    assert "executor stopped" in stderr
    assert answers
    exact = {"name": f"^{container}$"}
    assert docker_client.containers.list(all=True, filters=exact) == []


def test_stopped_engine_starts_no_step(engine, docker_client):
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

    report = engine.apply(plan)

    assert report.interrupted
    assert [result.status for result in report.results] == ["failed", "skipped"]
    assert docker_client.networks.list(names=[network]) == []
