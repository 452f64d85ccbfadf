"""Fixtures for tests that drive the executor's API against a real Docker engine."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import pytest
import requests
import waitress
import yaml

from orchestrator import names
from orchestrator.api.app import create_app, server_options
from orchestrator.config import Settings
from orchestrator.engine import Engine
from orchestrator.service import Executor


def new_id() -> str:
    return str(uuid.uuid4())


def new_session() -> str:
    return "t" + uuid.uuid4().hex[:9]


@dataclass
class Template:
    """A template version whose dependencies are fixture images, with fresh ids."""

    body: dict
    # user/name reference -> id, for the catalog the executor resolves against.
    processors: dict[str, str] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.body["principal"]["id"]


def make_template(
    images: dict[str, tuple[str, str]],
    processors: dict[str, str],
    plugins: dict[str, str],
    resolvers: list[dict] | None = None,
) -> Template:
    """Build a template version; `processors` maps user/name to a fixture image name."""
    blob, template = images["blob"], images["template"]
    body = {
        "principal": {
            "id": new_id(),
            "version": 1,
            "createdAt": "2026-01-01T00:00:00Z",
            "description": "integration test template",
            "properties": {
                "blobDockerReference": blob[0],
                "blobDockerTag": blob[1],
                "templateDockerReference": template[0],
                "templateDockerTag": template[1],
            },
        },
        "template": {"id": new_id(), "name": "test", "unknownKey": True},
        "processors": [],
        "plugins": [],
        "templates": [],
        "resolvers": resolvers or [],
        "commands": [],
    }
    result = Template(body)
    for section, wanted, ids in (
        ("processors", processors, result.processors),
        ("plugins", plugins, result.plugins),
    ):
        for reference, image in wanted.items():
            identifier = new_id()
            ids[reference] = identifier
            body[section].append(
                {
                    "id": identifier,
                    "version": 1,
                    "createdAt": "2026-01-01T00:00:00Z",
                    "description": reference,
                    "dockerReference": images[image][0],
                    "dockerTag": images[image][1],
                }
            )
    return result


class Catalog:
    """A catalog file that grows as tests register their templates' references."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict = {"processors": {}, "plugins": {}}
        self.lock = threading.Lock()
        self.save()

    def add(self, template: Template) -> None:
        with self.lock:
            for section, ids in (
                ("processors", template.processors),
                ("plugins", template.plugins),
            ):
                for reference, identifier in ids.items():
                    self.entries[section].setdefault(reference, {})
                    # Each test's template gets its own version number of the reference.
                    number = len(self.entries[section][reference]) + 1
                    self.entries[section][reference][number] = identifier
            self.save()

    def save(self) -> None:
        self.path.write_text(yaml.safe_dump(self.entries))


@dataclass
class Server:
    url: str
    executor: Executor
    catalog: Catalog
    network: str

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        return requests.post(self.url + path, json=body, timeout=300, **kwargs)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(self.url + path, timeout=300)


@pytest.fixture(scope="session")
def test_network(docker_client) -> Iterator[str]:
    name = "cyanprint-test-" + uuid.uuid4().hex[:8]
    docker_client.networks.create(
        name, driver="bridge", labels={"cyanprint.test": "true"}
    )
    yield name
    for network in docker_client.networks.list(names=[name]):
        for container in network.containers:
            network.disconnect(container, force=True)
        network.remove()


@pytest.fixture(scope="session")
def server(
    docker_client, executor_image, test_network, tmp_path_factory
) -> Iterator[Server]:
    """The executor's API on a loopback port, in this process, on a test network."""
    catalog = Catalog(tmp_path_factory.mktemp("catalog") / "catalog.yaml")
    settings = Settings(
        host="127.0.0.1",
        port=0,
        registry=str(catalog.path),
        merger_image=executor_image,
        network=test_network,
        ready_timeout=30.0,
        call_timeout=60.0,
        parallelism=4,
        try_root=str(tmp_path_factory.getbasetemp()),
    )
    executor = Executor(settings, docker_client)
    # The service's own waitress options, so the tests serve as it does.
    wsgi = waitress.create_server(
        create_app(executor), host="127.0.0.1", port=0, **server_options(settings)
    )
    thread = threading.Thread(target=wsgi.run, daemon=True)
    thread.start()
    yield Server(
        f"http://127.0.0.1:{wsgi.effective_port}", executor, catalog, test_network
    )
    wsgi.close()


@pytest.fixture
def engine(server, docker_client) -> Engine:
    """A step engine with the test server's settings, for hand-written plans."""
    return Engine(docker_client, server.executor.settings)


def session_leftovers(client: docker.DockerClient, session_id: str) -> list[str]:
    """Name every container and volume of a session that still exists."""
    label = f"cyanprint.session={session_id}"
    found = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    found += [v.name for v in client.volumes.list(filters={"label": label})]
    found += [
        c.name for c in client.containers.list(all=True) if c.name.endswith(session_id)
    ]
    found += [v.name for v in client.volumes.list() if v.name.endswith(session_id)]
    return sorted(set(found))


@dataclass
class Cleanup:
    sessions: list[str] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)
    resolvers: list[str] = field(default_factory=list)


@pytest.fixture
def cleanup(docker_client, server) -> Iterator[Cleanup]:
    """Sessions and templates to remove after the test, whatever its outcome."""
    pending = Cleanup()
    yield pending
    for session_id in pending.sessions:
        server.delete(f"/executor/{session_id}")
    for template_id in pending.templates:
        remove_template(docker_client, template_id)
    for resolver_id in pending.resolvers:
        remove_container(docker_client, names.resolver_container(resolver_id))


def remove_container(client: docker.DockerClient, name: str) -> None:
    for container in client.containers.list(all=True, filters={"name": f"^{name}$"}):
        container.remove(force=True)


def remove_template(client: docker.DockerClient, template_id: str) -> None:
    """Remove a template's shared container and volume."""
    remove_container(client, names.template_container(template_id))
    for volume in client.volumes.list(
        filters={"name": names.template_volume(template_id)}
    ):
        if volume.name == names.template_volume(template_id):
            volume.remove(force=True)


def pytest_collection_modifyitems(items):
    """Run the tests that remove every labelled resource after all others."""
    items.sort(
        key=lambda item: item.get_closest_marker("removes_everything") is not None
    )
