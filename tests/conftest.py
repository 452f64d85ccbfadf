"""Shared fixtures for tests that need a Docker engine, images and a registry.

Every fixture here is built only when a test requests it, so tests that do
not use them never touch Docker. Tests that use docker_client, directly or
through another fixture, get the "docker" marker, so `pytest -m "not docker"`
runs only the tests that need no engine.

Session fixtures:
  docker_client          docker.DockerClient for the local engine.
  base_image             tag of the Debian Python image (built once, then reused).
  executor_image         tag of the executor's image, rebuilt from the current code.
  registry               a Registry on 127.0.0.1, stopped and emptied at the end.
  local_fixture_images   fixture name -> local tag.
  fixture_images         fixture name -> (reference, tag) in the registry.
                         The images are not tagged locally under that
                         reference, so running one means pulling it.
Per-test fixture:
  docker_resources       DockerResources with a unique prefix, cleaned up after.
"""

from __future__ import annotations

import pytest
from support.containers import DockerResources
from support.images import (
    FIXTURE_IMAGES,
    build_executor_image,
    build_fixture_images,
    ensure_base_image,
)
from support.registry import Registry

# Socket timeout for engine calls. A build step can run for minutes without
# sending output, and docker-py's default of 60 s would end it.
DOCKER_TIMEOUT_SECONDS = 900

START_DOCKER_HELP = (
    "Start it with 'sudo systemctl start docker', or as root run "
    "'nohup dockerd > /tmp/dockerd.log 2>&1 &', then check that 'docker info' works. "
    "If the engine runs elsewhere, set DOCKER_HOST."
)


def pytest_collection_modifyitems(items):
    for item in items:
        if "docker_client" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.docker)


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT_SECONDS)
        client.ping()
    except Exception as error:
        pytest.fail(
            f"These tests need a Docker engine, and none answered ({error}). "
            + START_DOCKER_HELP,
            pytrace=False,
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    return ensure_base_image(docker_client)


@pytest.fixture(scope="session")
def executor_image(base_image) -> str:
    return build_executor_image(base_image)


@pytest.fixture(scope="session")
def registry(docker_client):
    with Registry(docker_client) as running:
        yield running


@pytest.fixture(scope="session")
def local_fixture_images(docker_client, base_image) -> dict[str, str]:
    return build_fixture_images(docker_client, base_image)


@pytest.fixture(scope="session")
def fixture_images(local_fixture_images, registry) -> dict[str, tuple[str, str]]:
    repositories = {fixture.name: fixture.repository for fixture in FIXTURE_IMAGES}
    return {
        name: registry.push(tag, repositories[name])
        for name, tag in local_fixture_images.items()
    }


@pytest.fixture
def docker_resources(docker_client):
    resources = DockerResources(docker_client)
    yield resources
    resources.cleanup()
