"""The teardown step on a real engine: images with several tags, children, digests."""

from __future__ import annotations

import io
import uuid

import docker.errors
import pytest

from orchestrator.planning import check

pytestmark = pytest.mark.docker

IMAGES = 6
TAGS_PER_IMAGE = 4
# Parent and child pairs in the chain test.
CHAINS = 3


def build(client, dockerfile: str, tag: str):
    image, _ = client.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True
    )
    return image


def teardown_plan(marker: str) -> dict:
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
    return plan


def marked(client, marker: str) -> list:
    return client.images.list(filters={"label": f"test.teardown={marker}"})


@pytest.fixture
def marker(docker_client):
    """A unique label value; every image that carries it is removed afterwards."""
    value = uuid.uuid4().hex[:12]
    yield value
    for image in marked(docker_client, value):
        try:
            docker_client.images.remove(image.id, force=True)
        except docker.errors.ImageNotFound:
            pass


def pulled_by_tag(client, registry, base: str, marker: str) -> tuple[str, str, str]:
    """Push a marked image to the registry and pull it back by tag.

    Returns the repository reference, the tag and the digest reference.
    """
    local = f"cyanprint-test/teardown-pushed:{marker}"
    build(client, f"FROM {base}\nLABEL test.teardown={marker}\n", local)
    reference, tag = registry.push(local, "cyanprint-test/teardown-pushed")
    client.images.remove(local)
    pulled = client.images.pull(reference, tag=tag)
    return reference, tag, pulled.attrs["RepoDigests"][0]


@pytest.fixture
def tagged_images(docker_client, local_fixture_images, marker):
    """Build images that carry the marker, each with several tags: id -> tags."""
    repository = "cyanprint-test/teardown"
    images = {}
    for number in range(IMAGES):
        dockerfile = (
            f"FROM {local_fixture_images['blob']}\n"
            f"LABEL test.teardown={marker} test.number={number}\n"
        )
        first = f"{repository}:{marker}-{number}-0"
        image = build(docker_client, dockerfile, first)
        tags = [first]
        for extra in range(1, TAGS_PER_IMAGE):
            image.tag(repository, f"{marker}-{number}-{extra}")
            tags.append(f"{repository}:{marker}-{number}-{extra}")
        images[image.id] = tags
    return images


def test_teardown_removes_every_tag(engine, docker_client, marker, tagged_images):
    report = engine.apply(teardown_plan(marker))

    result = report.results[0]
    assert not report.failed, result.message
    every_tag = sorted(tag for tags in tagged_images.values() for tag in tags)
    assert result.output["images"] == every_tag
    assert result.output["errors"] == []
    assert marked(docker_client, marker) == []


def test_teardown_removes_child_before_parent(
    engine, docker_client, local_fixture_images, marker
):
    repository = "cyanprint-test/teardown"
    for family in range(CHAINS):
        parent = f"{repository}:{marker}-{family}-parent"
        build(
            docker_client,
            f"FROM {local_fixture_images['blob']}\n"
            f"LABEL test.teardown={marker} test.family={family}\n",
            parent,
        )
        docker_client.images.get(parent).tag(repository, f"{marker}-{family}-parent-2")
        # The child inherits the label, and its second instruction puts an
        # unlabelled image between it and its parent.
        child = f"{repository}:{marker}-{family}-child"
        build(docker_client, f"FROM {parent}\nENV LAYER=1\nLABEL child=1\n", child)
        docker_client.images.get(child).tag(repository, f"{marker}-{family}-child-2")

    report = engine.apply(teardown_plan(marker))

    result = report.results[0]
    assert not report.failed, result.message
    assert result.output["errors"] == []
    assert len(result.output["images"]) == 4 * CHAINS
    assert marked(docker_client, marker) == []


def test_teardown_removes_digest_reference(
    engine, docker_client, registry, local_fixture_images, marker
):
    reference, tag, digest_reference = pulled_by_tag(
        docker_client, registry, local_fixture_images["blob"], marker
    )
    # Pulled again by digest, then tagged twice, the image is kept by its
    # digest reference once both tags are gone.
    docker_client.images.remove(f"{reference}:{tag}")
    image = docker_client.images.pull(digest_reference)
    image.tag("cyanprint-test/teardown-pushed", f"{marker}-a")
    image.tag("cyanprint-test/teardown-pushed", f"{marker}-b")

    report = engine.apply(teardown_plan(marker))

    result = report.results[0]
    assert not report.failed, result.message
    assert digest_reference in result.output["images"]
    assert marked(docker_client, marker) == []


def test_teardown_reports_digest_removed_with_tag(
    engine, docker_client, registry, local_fixture_images, marker
):
    reference, tag, digest_reference = pulled_by_tag(
        docker_client, registry, local_fixture_images["blob"], marker
    )
    # The image has the tag and the digest reference of the same repository,
    # and removing the tag removes both.

    report = engine.apply(teardown_plan(marker))

    result = report.results[0]
    assert not report.failed, result.message
    assert sorted(result.output["images"]) == sorted(
        [f"{reference}:{tag}", digest_reference]
    )
    assert marked(docker_client, marker) == []
