"""DELETE /cleanup and the setup and cleanup commands.

These tests remove every container, volume and image on the engine that is
labelled cyanprint.dev=true, so they run after all other tests.
"""

from __future__ import annotations

import io
import uuid

import docker.errors
import pytest

from .conftest import make_template, new_id, new_session
from .test_flow import warm_and_start
from .test_plans import cli

pytestmark = [pytest.mark.docker, pytest.mark.removes_everything]


def labelled(client) -> dict[str, list[str]]:
    selector = {"label": "cyanprint.dev=true"}
    return {
        "containers": [
            c.name for c in client.containers.list(all=True, filters=selector)
        ],
        "volumes": [v.name for v in client.volumes.list(filters=selector)],
        "images": [i.id for i in client.images.list(filters=selector)],
    }


def labelled_image(client, base: str) -> str:
    """Build a tiny image labelled cyanprint.dev=true on top of `base`."""
    tag = f"cyanprint-test/labelled:{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {base}\nLABEL cyanprint.dev=true\n".encode()
    client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True)
    return tag


def test_cleanup_removes_everything(
    server, cleanup, fixture_images, local_fixture_images, docker_client
):
    template = make_template(fixture_images, {"cyan/processor": "processor"}, {})
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    image = labelled_image(docker_client, local_fixture_images["blob"])
    # An image with two tags must go entirely, not only lose its first tag.
    second_tag = image + "-second"
    repository, tag = second_tag.rsplit(":", 1)
    docker_client.images.get(image).tag(repository, tag)
    before = labelled(docker_client)
    assert before["containers"]
    assert before["volumes"]

    response = server.delete("/cleanup")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "OK"
    assert sorted(body["containers_removed"]) == sorted(before["containers"])
    assert sorted(body["volumes_removed"]) == sorted(before["volumes"])
    assert image in body["images_removed"]
    assert second_tag in body["images_removed"]
    assert body["containers_count"] == len(body["containers_removed"])
    assert body["volumes_count"] == len(body["volumes_removed"])
    assert body["images_count"] == len(body["images_removed"])
    assert labelled(docker_client) == {"containers": [], "volumes": [], "images": []}

    again = server.delete("/cleanup")
    assert again.json()["containers_count"] == 0


def test_partial_cleanup_is_207(server, local_fixture_images, docker_client):
    image = labelled_image(docker_client, local_fixture_images["blob"])
    volume = docker_client.volumes.create(
        "cyanprint-test-" + uuid.uuid4().hex[:8], labels={"cyanprint.dev": "true"}
    )
    # A running container without the label keeps the labelled volume in use.
    holder = docker_client.containers.run(
        local_fixture_images["blob"],
        command=["/bin/busybox", "sleep", "120"],
        volumes={volume.name: {"bind": "/data", "mode": "rw"}},
        detach=True,
    )
    try:
        response = server.delete("/cleanup")
        assert response.status_code == 207, response.text
        body = response.json()
        assert body["status"] == "PARTIAL"
        assert image in body["images_removed"]
        assert body["volumes_removed"] == []
        assert any(volume.name in error for error in body["errors"])
    finally:
        holder.remove(force=True)
    final = server.delete("/cleanup")
    assert final.status_code == 200, final.text
    assert volume.name in final.json()["volumes_removed"]
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)


def test_cleanup_dry_run_keeps_everything(server, docker_client):
    volume = docker_client.volumes.create(
        "cyanprint-test-" + uuid.uuid4().hex[:8], labels={"cyanprint.dev": "true"}
    )
    try:
        response = server.delete("/cleanup?dry_run=true")
        assert response.status_code == 200
        assert "remove_images: true" in response.text
        checked = server.delete("/cleanup?check=true").json()
        assert volume.name in checked["steps"][0]["detail"]
        docker_client.volumes.get(volume.name)
    finally:
        volume.remove(force=True)


def test_setup_and_cleanup_commands(docker_client):
    network = "cyanprint-test-" + uuid.uuid4().hex[:8]
    try:
        created = cli("setup", "--network", network)
        assert created.returncode == 0, created.stdout + created.stderr
        assert f"created network {network}" in created.stdout
        assert docker_client.networks.list(names=[network])
        again = cli("setup", "--network", network)
        assert f"network {network} already exists" in again.stdout
    finally:
        for found in docker_client.networks.list(names=[network]):
            found.remove()
    volume = docker_client.volumes.create(
        "cyanprint-test-" + uuid.uuid4().hex[:8], labels={"cyanprint.dev": "true"}
    )
    removed = cli("cleanup")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert volume.name in removed.stdout
    assert "recap" not in removed.stdout
