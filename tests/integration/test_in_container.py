"""The executor as a container on the network, driving Docker through its socket."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from orchestrator import names

from .conftest import Server, make_template, new_id, new_session, session_leftovers
from .helpers import read_archive, start_body
from .test_flow import check_archive, standard_build

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def contained(docker_client, executor_image, test_network, server):
    """The executor image serving on the test network; the catalog is bind-mounted."""
    catalog_dir = server.catalog.path.parent
    container = docker_client.containers.create(
        executor_image,
        command=[
            "cyanprint-executor",
            "serve",
            "--network",
            test_network,
            "--merger-image",
            executor_image,
            "--registry",
            f"/catalog/{server.catalog.path.name}",
            "--ready-timeout",
            "30",
        ],
        name="cyan-test-executor-" + uuid.uuid4().hex[:8],
        network=test_network,
        volumes={
            "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
            str(catalog_dir): {"bind": "/catalog", "mode": "ro"},
        },
        labels={"cyanprint.test": "executor"},
    )
    # Created first and started inside try, so a failed start is removed too.
    try:
        container.start()
        container.reload()
        address = container.attrs["NetworkSettings"]["Networks"][test_network][
            "IPAddress"
        ]
        url = f"http://{address}:9000"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            container.reload()
            assert container.status == "running", container.logs().decode()
            assert time.monotonic() < deadline, container.logs().decode()
            time.sleep(0.1)
        yield Server(url, server.executor, server.catalog, test_network), container
    finally:
        container.remove(force=True)


def test_flow_through_contained_executor(
    contained, cleanup, fixture_images, docker_client
):
    remote, container = contained
    template = make_template(
        fixture_images,
        processors={"cyan/render": "processor", "cyan/extra": "processor"},
        plugins={"cyan/append": "plugin"},
    )
    remote.catalog.add(template)
    session_id, merger_id = new_session(), new_id()
    cleanup.sessions.append(session_id)
    cleanup.templates.append(template.id)

    assert remote.post(f"/executor/{session_id}/warm", template.body).status_code == 200
    started = remote.post("/executor", start_body(template.body, session_id, merger_id))
    assert started.status_code == 200, started.text
    response = remote.post(
        f"/executor/{session_id}", standard_build(template, merger_id, "boxed")
    )
    check_archive(response, "boxed")
    files, _ = read_archive(response.content)
    assert "README.md" in files
    assert remote.delete(f"/executor/{session_id}").status_code == 200
    assert session_leftovers(docker_client, session_id) == []

    logs = container.logs().decode()
    assert session_id in logs
    assert names.session_container("merger", merger_id, session_id) in logs
