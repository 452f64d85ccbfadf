"""The pull step on a real engine and registry: digests and time limits."""

from __future__ import annotations

import io
import uuid

import docker.errors
import pytest
import requests

from orchestrator.planning import check

pytestmark = pytest.mark.docker


def pull_plan(image: str, **extra) -> dict:
    plan = {
        "name": "pull",
        "steps": [{"name": "pull", "kind": "pull", "image": image, **extra}],
    }
    check(plan)
    return plan


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
    for name in (f"{reference}:{tag}", f"{reference}@{digest}"):
        try:
            docker_client.images.remove(name, force=True)
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
