"""The run step on a real engine: what makes it keep or replace a container."""

from __future__ import annotations

import io
import uuid

import pytest

from orchestrator.planning import check

pytestmark = pytest.mark.docker


@pytest.fixture
def prefix(docker_client):
    prefix = "cyanprint-run-" + uuid.uuid4().hex[:10]
    yield prefix
    for container in docker_client.containers.list(all=True, filters={"name": prefix}):
        container.remove(force=True)
    for volume in docker_client.volumes.list(filters={"name": prefix}):
        volume.remove(force=True)


def run_plan(server, image: str, container: str, **extra) -> dict:
    plan = {
        "name": "run",
        "steps": [
            {
                "name": "processor",
                "kind": "run",
                "container": container,
                "image": image,
                "network": server.network,
                "port": 5551,
                **extra,
            }
        ],
    }
    check(plan)
    return plan


def test_run_mount_of_missing_volume(
    server, engine, docker_client, local_fixture_images, prefix
):
    missing = prefix + "-typo"
    plan = run_plan(
        server,
        local_fixture_images["processor"],
        prefix + "-c",
        mounts=[{"volume": missing, "target": "/data"}],
    )
    report = engine.apply(plan)

    assert report.failed
    assert f"volume {missing} to mount at /data" in report.results[0].message
    assert docker_client.volumes.list(filters={"name": missing}) == []
    assert docker_client.containers.list(all=True, filters={"name": prefix}) == []


def test_run_keeps_same_container(server, engine, local_fixture_images, prefix):
    plan = run_plan(
        server,
        local_fixture_images["processor"],
        prefix + "-c",
        labels={"cyanprint.test": "one"},
    )
    first = engine.apply(plan)
    second = engine.apply(plan)

    assert first.results[0].status == "changed"
    assert second.results[0].status == "ok"
    assert second.results[0].output["id"] == first.results[0].output["id"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"labels": {"cyanprint.test": "two"}}, "label cyanprint.test"),
        ({"environment": {"MODE": "other"}}, "environment variable MODE"),
        ("mount", "volume mounts differ"),
        ({"labels": {}}, "created from other arguments"),
    ],
)
def test_run_replaces_changed_container(
    server, engine, docker_client, local_fixture_images, prefix, change, reason
):
    image = local_fixture_images["processor"]
    name = prefix + "-c"
    first = engine.apply(
        run_plan(server, image, name, labels={"cyanprint.test": "one"})
    )
    if change == "mount":
        docker_client.volumes.create(prefix + "-v")
        change = {"mounts": [{"volume": prefix + "-v", "target": "/data"}]}
    changed = run_plan(
        server, image, name, **{"labels": {"cyanprint.test": "one"}, **change}
    )

    assert reason in engine.check(changed)[0]["detail"]
    second = engine.apply(changed)

    assert second.results[0].status == "changed"
    assert second.results[0].output["id"] != first.results[0].output["id"]


def test_run_same_volume_twice(
    server, engine, docker_client, local_fixture_images, prefix
):
    volume = prefix + "-v"
    docker_client.volumes.create(volume)
    mounts = [
        {"volume": volume, "target": "/data", "read_only": True},
        {"volume": volume, "target": "/copy"},
    ]
    plan = run_plan(
        server, local_fixture_images["processor"], prefix + "-c", mounts=mounts
    )

    first = engine.apply(plan)
    second = engine.apply(plan)

    assert first.results[0].status == "changed", first.results[0].message
    assert second.results[0].status == "ok", second.results[0].message
    container = docker_client.containers.get(prefix + "-c")
    targets = {m["Destination"]: m["RW"] for m in container.attrs["Mounts"]}
    assert targets == {"/data": False, "/copy": True}


def test_run_missing_volume_keeps_running_container(
    server, engine, docker_client, local_fixture_images, prefix
):
    image = local_fixture_images["processor"]
    first = engine.apply(run_plan(server, image, prefix + "-c"))
    broken = run_plan(
        server,
        image,
        prefix + "-c",
        mounts=[{"volume": prefix + "-none", "target": "/d"}],
    )

    report = engine.apply(broken)

    assert report.failed
    container = docker_client.containers.get(prefix + "-c")
    assert container.id == first.results[0].output["id"]
    assert container.status == "running"


def test_run_replaces_when_tag_moves(
    server, engine, docker_client, local_fixture_images, prefix
):
    tag = f"cyanprint-test/moving-tag:{prefix}"
    processor = docker_client.images.get(local_fixture_images["processor"])
    processor.tag(tag)
    plan = run_plan(server, tag, prefix + "-c")
    try:
        first = engine.apply(plan)
        dockerfile = f"FROM {local_fixture_images['processor']}\nLABEL moved={prefix}\n"
        # Without rm and forcerm, the SDK keeps the build's intermediate
        # containers.
        rebuilt, _ = docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True
        )

        second = engine.apply(plan)

        assert second.results[0].status == "changed", second.results[0].message
        container = docker_client.containers.get(prefix + "-c")
        assert container.id != first.results[0].output["id"]
        assert container.attrs["Image"] == rebuilt.id
    finally:
        docker_client.containers.get(prefix + "-c").remove(force=True)
        docker_client.images.remove(tag, force=True)
