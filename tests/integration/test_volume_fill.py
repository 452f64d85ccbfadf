"""Volume fills on a real engine: from an image, from a folder, and when they fail."""

from __future__ import annotations

import uuid

import pytest
from support.containers import command_output

from orchestrator.planning import check

pytestmark = pytest.mark.docker

TARGET = "/workspace/cyanprint"


@pytest.fixture
def volume_name(docker_client):
    name = "cyanprint-fill-" + uuid.uuid4().hex[:10]
    yield name
    for container in docker_client.containers.list(
        all=True, filters={"name": name + "-"}
    ):
        container.remove(force=True)
    for volume in docker_client.volumes.list(filters={"name": name}):
        volume.remove(force=True)


def fill_plan(volume: str, fill: dict) -> dict:
    plan = {
        "name": "fill",
        "steps": [{"name": "volume", "kind": "volume", "volume": volume, "fill": fill}],
    }
    check(plan)
    return plan


def leftovers(client, volume: str) -> list[str]:
    found = [v.name for v in client.volumes.list(filters={"name": volume})]
    found += [
        c.name for c in client.containers.list(all=True, filters={"name": volume + "-"})
    ]
    return found


def read_volume(client, image: str, volume: str, *command: str) -> str:
    return command_output(
        client,
        image,
        ["/bin/busybox", *command],
        volumes={volume: {"bind": "/data", "mode": "ro"}},
    )


def test_fill_command_that_cannot_start(
    engine, docker_client, local_fixture_images, volume_name
):
    plan = fill_plan(
        volume_name,
        {
            "image": local_fixture_images["blob"],
            "command": ["/no/such/program"],
            "target": TARGET,
        },
    )
    report = engine.apply(plan)

    assert report.failed
    assert "/no/such/program" in report.results[0].message
    assert leftovers(docker_client, volume_name) == []


def test_fill_image_missing_is_not_pulled(engine, docker_client, volume_name):
    image = "cyanprint-test/never-built:" + uuid.uuid4().hex[:8]
    report = engine.apply(fill_plan(volume_name, {"image": image, "target": TARGET}))

    assert report.failed
    message = report.results[0].message
    assert f"image {image} not found on the engine" in message
    assert "pull it first" in message
    assert leftovers(docker_client, volume_name) == []


def test_fill_from_folder_copies_it(
    engine, docker_client, local_fixture_images, volume_name, tmp_path
):
    folder = tmp_path / "template"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "hello.txt").write_text("hello")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    (folder / "run.sh").chmod(0o754)
    (folder / "link").symlink_to("nested/hello.txt")
    plan = fill_plan(
        volume_name,
        {
            "image": local_fixture_images["blob"],
            "source": str(folder),
            "within": str(tmp_path),
            "target": TARGET,
        },
    )
    report = engine.apply(plan)

    assert not report.failed, report.results[0].message
    blob = local_fixture_images["blob"]
    assert read_volume(docker_client, blob, volume_name, "cat", "/data/link") == (
        "hello"
    )
    modes = read_volume(
        docker_client,
        blob,
        volume_name,
        "stat",
        "-c",
        "%a %F",
        "/data/run.sh",
        "/data/link",
    )
    assert modes.splitlines() == ["754 regular file", "777 symbolic link"]
    # Only the volume is left: the helper container is gone.
    assert leftovers(docker_client, volume_name) == [volume_name]


def test_fill_from_missing_folder_creates_nothing(
    engine, docker_client, local_fixture_images, volume_name, tmp_path
):
    missing = tmp_path / "absent"
    plan = fill_plan(
        volume_name,
        {
            "image": local_fixture_images["blob"],
            "source": str(missing),
            "within": str(tmp_path),
            "target": TARGET,
        },
    )
    report = engine.apply(plan)

    assert report.failed
    assert "'absent' is missing" in report.results[0].message
    assert not missing.exists()
    assert leftovers(docker_client, volume_name) == []


def test_fill_waits_across_slices(
    engine, docker_client, local_fixture_images, volume_name
):
    plan = fill_plan(
        volume_name,
        {
            "image": local_fixture_images["blob"],
            "command": ["/bin/busybox", "sh", "-c", "sleep 2.5; echo done > /data/x"],
            "target": "/data",
            "timeout": 30,
        },
    )
    report = engine.apply(plan)

    assert not report.failed, report.results[0].message
    assert (
        read_volume(
            docker_client, local_fixture_images["blob"], volume_name, "cat", "/data/x"
        )
        == "done\n"
    )


def test_fill_timeout_removes_volume(
    engine, docker_client, local_fixture_images, volume_name
):
    plan = fill_plan(
        volume_name,
        {
            "image": local_fixture_images["blob"],
            "command": ["/bin/busybox", "sleep", "30"],
            "target": "/data",
            "timeout": 1.5,
        },
    )
    report = engine.apply(plan)

    assert report.failed
    assert "timed out after 1.5s" in report.results[0].message
    assert leftovers(docker_client, volume_name) == []
