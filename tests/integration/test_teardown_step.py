"""The teardown step on a real engine: images with several tags."""

from __future__ import annotations

import io
import uuid

import docker.errors
import pytest

from orchestrator.planning import check

pytestmark = pytest.mark.docker

IMAGES = 6
TAGS_PER_IMAGE = 4


@pytest.fixture
def tagged_images(docker_client, local_fixture_images):
    """Build images that share a unique label, each with several tags."""
    marker = uuid.uuid4().hex[:12]
    repository = "cyanprint-test/teardown"
    images = {}
    for number in range(IMAGES):
        dockerfile = (
            f"FROM {local_fixture_images['blob']}\n"
            f"LABEL test.teardown={marker} test.number={number}\n"
        )
        first = f"{repository}:{marker}-{number}-0"
        image, _ = docker_client.images.build(
            fileobj=io.BytesIO(dockerfile.encode()), tag=first, rm=True, forcerm=True
        )
        tags = [first]
        for extra in range(1, TAGS_PER_IMAGE):
            image.tag(repository, f"{marker}-{number}-{extra}")
            tags.append(f"{repository}:{marker}-{number}-{extra}")
        images[image.id] = tags
    yield marker, images
    label = f"test.teardown={marker}"
    for image in docker_client.images.list(filters={"label": label}):
        try:
            docker_client.images.remove(image.id, force=True)
        except docker.errors.ImageNotFound:
            pass


def test_teardown_removes_every_tag(engine, docker_client, tagged_images):
    marker, images = tagged_images
    plan = {
        "name": "teardown",
        "steps": [
            {
                "name": "remove-images",
                "kind": "teardown",
                "selector": {"test.teardown": marker},
                "remove_images": True,
            }
        ],
    }
    check(plan)

    report = engine.apply(plan)

    result = report.results[0]
    assert not report.failed, result.message
    every_tag = sorted(tag for tags in images.values() for tag in tags)
    assert result.output["images"] == every_tag
    assert result.output["errors"] == []
    left = docker_client.images.list(filters={"label": f"test.teardown={marker}"})
    assert left == []
