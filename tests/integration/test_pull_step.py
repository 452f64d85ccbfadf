"""The pull step on a real engine and registry: digests and time limits."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import select
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import docker.errors
import pytest
import requests

from orchestrator.engine.steps import pull as pull_step
from orchestrator.planning import check

from .helpers import apply_and_interrupt

pytestmark = pytest.mark.docker


def pull_plan(image: str, **extra) -> dict:
    plan = {
        "name": "pull",
        "steps": [{"name": "pull", "kind": "pull", "image": image, **extra}],
    }
    check(plan)
    return plan


@pytest.fixture(scope="module", autouse=True)
def no_marked_images_left(docker_client):
    """Remove every image these tests built or pulled, once they have all run.

    The engine may store the image of a pull cut short, untagged, after the
    test that cut it has ended, so the images are removed at the very end.
    """
    yield
    for image in docker_client.images.list(filters={"label": "test.marker"}):
        try:
            docker_client.images.remove(image.id, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.fixture
def pushed_only(docker_client, registry, local_fixture_images):
    """An image that exists in the registry and not on the engine: (name, digest)."""
    marker = uuid.uuid4().hex[:12]
    dockerfile = f"FROM {local_fixture_images['blob']}\nLABEL test.marker={marker}\n"
    local = f"cyanprint-test/pull-only:{marker}"
    # Without rm and forcerm, the SDK keeps the build's intermediate
    # containers.
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=local, rm=True, forcerm=True
    )
    reference, tag = registry.push(local, "cyanprint-test/pull-only")
    # The registry names the manifest's digest, which is what a pull by digest uses.
    manifest = requests.head(
        f"http://{registry.host}/v2/cyanprint-test/pull-only/manifests/{tag}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=30,
    )
    manifest.raise_for_status()
    digest = manifest.headers["Docker-Content-Digest"]
    docker_client.images.remove(local)
    yield reference, tag, digest
    # Found by label, the image goes whatever names a test's pulls gave it.
    for image in docker_client.images.list(filters={"label": f"test.marker={marker}"}):
        try:
            docker_client.images.remove(image.id, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.mark.parametrize("with_tag", [False, True])
def test_pull_by_digest(engine, docker_client, pushed_only, with_tag):
    reference, tag, digest = pushed_only
    image = f"{reference}:{tag}@{digest}" if with_tag else f"{reference}@{digest}"
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(f"{reference}@{digest}")

    report = engine.apply(pull_plan(image))

    assert report.results[0].status == "changed", report.results[0].message
    docker_client.images.get(f"{reference}@{digest}")
    again = engine.apply(pull_plan(image))
    assert again.results[0].status == "ok"


def test_pull_times_out(engine, docker_client, pushed_only):
    reference, tag, _ = pushed_only
    report = engine.apply(pull_plan(f"{reference}:{tag}", timeout=0.001))

    assert report.failed
    assert "timed out after 0.001s" in report.results[0].message


# A manifest whose config and layer the stalling registry never sends.
STALLED_MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 1000,
            "digest": "sha256:" + "c" * 64,
        },
        "layers": [
            {
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": 1000,
                "digest": "sha256:" + "d" * 64,
            }
        ],
    }
).encode()


class StallingRegistry(ThreadingHTTPServer):
    """A loopback registry that responds up to a point and then sends nothing.

    With `stall_at` "manifest" it never sends the manifest, so the engine
    never starts its response to the pull. With "blob" it sends the manifest
    and stalls on the image's blobs, after the engine has started streaming
    progress. `stalled` is set once a request is held.
    """

    daemon_threads = True

    def __init__(self, stall_at: str) -> None:
        super().__init__(("127.0.0.1", 0), StallingHandler)
        self.stall_at = stall_at
        self.stalled = threading.Event()
        self.closing = threading.Event()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class StallingHandler(BaseHTTPRequestHandler):
    server: StallingRegistry

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self._answer(b"{}", "application/json")
        elif "/manifests/" in self.path and self.server.stall_at == "blob":
            self._answer(
                STALLED_MANIFEST,
                "application/vnd.docker.distribution.manifest.v2+json",
            )
        else:
            self.server.stalled.set()
            # Held until the test ends or the engine hangs up.
            while not self.server.closing.is_set():
                readable, _, _ = select.select([self.connection], [], [], 0.1)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return

    do_HEAD = do_GET

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(
            "Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest()
        )
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass


@pytest.fixture(params=["manifest", "blob"])
def stalling_registry(request) -> Iterator[StallingRegistry]:
    server = StallingRegistry(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.closing.set()
    server.shutdown()
    server.server_close()


def test_stalled_pull_is_cut_at_its_deadline(engine, docker_client, stalling_registry):
    image = f"{stalling_registry.host}/cyanprint-test/stalled:{uuid.uuid4().hex[:8]}"
    outcome = []
    worker = threading.Thread(
        target=lambda: outcome.append(engine.apply(pull_plan(image, timeout=2)))
    )
    worker.start()
    worker.join(timeout=30)

    assert outcome, "the pull went on past its 2 s deadline"
    assert stalling_registry.stalled.is_set()
    assert outcome[0].failed
    assert "timed out after 2s" in outcome[0].results[0].message
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)


def test_silent_pull_logs_progress(engine, stalling_registry, caplog, monkeypatch):
    monkeypatch.setattr(pull_step, "PROGRESS_INTERVAL", 0.3)
    image = f"{stalling_registry.host}/cyanprint-test/stalled:{uuid.uuid4().hex[:8]}"
    caplog.set_level(logging.INFO, logger="orchestrator.engine.steps.pull")

    report = engine.apply(pull_plan(image, timeout=2))

    assert report.failed
    silent = [
        record
        for record in caplog.records
        if "no progress from the engine for" in record.getMessage()
    ]
    # Two seconds of silence, noted every 0.3 s.
    assert len(silent) >= 3
    assert all(image in record.getMessage() for record in silent)


def interrupt_stalled_pulls(
    tmp_path, registry: StallingRegistry, pulls: int, signals: int
) -> tuple[int, str, str]:
    """Apply a group of pulls from the stalling registry, then send Ctrl-C.

    Returns the exit status, standard output and standard error.
    """
    repository = f"{registry.host}/cyanprint-test/stalled"
    members = "".join(
        f"      - name: stalled-{number}\n"
        f"        kind: pull\n"
        f"        image: {repository}:{uuid.uuid4().hex[:8]}\n"
        f"        timeout: 300\n"
        for number in range(pulls)
    )
    plan = tmp_path / "pull.yaml"
    plan.write_text(
        f"name: stalled-pull\nsteps:\n  - name: pulls\n    parallel: 2\n"
        f"    steps:\n{members}"
    )

    def stalled() -> None:
        assert registry.stalled.wait(30), "the pull never reached the registry"

    outcome = apply_and_interrupt(plan, stalled, signals, gap=0.02, timeout=30)
    return outcome.code, outcome.stdout, outcome.stderr


def test_interrupted_pull_is_given_up(tmp_path, stalling_registry):
    # A pull in a parallel group runs in a worker thread, which Ctrl-C does
    # not reach. The step has to see the interrupt itself.
    code, stdout, stderr = interrupt_stalled_pulls(tmp_path, stalling_registry, 1, 1)

    assert code == 130, stdout + stderr
    assert "failed   stalled-0" in stdout
    assert "interrupted" in stdout


def test_second_interrupt_still_stops_group(tmp_path, stalling_registry):
    code, stdout, stderr = interrupt_stalled_pulls(tmp_path, stalling_registry, 5, 2)

    assert code == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "failed   stalled-0" in stdout
    assert "skipped  stalled-4" in stdout
    assert "interrupted before it started" in stdout
