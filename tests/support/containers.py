"""Docker resources for one test, named under a unique prefix and removed together."""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from pathlib import PurePosixPath

import docker
import docker.errors
import requests
from docker.models.containers import Container

PREFIX_LABEL = "cyanprint.test.prefix"


class DockerResources:
    """Creates networks, volumes and containers and removes them in cleanup().

    Every name starts with the prefix ("cyanprint-test-<random>" by default)
    and every resource carries the label cyanprint.test.prefix=<prefix>.
    cleanup() removes what matches either, so resources that the code under
    test creates with the same name prefix are removed too.
    """

    def __init__(self, client: docker.DockerClient, prefix: str | None = None) -> None:
        self.client = client
        self.prefix = prefix or f"cyanprint-test-{uuid.uuid4().hex[:8]}"
        self.labels = {PREFIX_LABEL: self.prefix}

    def name(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def network(self, suffix: str = "net", **kwargs):
        return self.client.networks.create(
            self.name(suffix), driver="bridge", labels=self.labels, **kwargs
        )

    def volume(self, suffix: str, **kwargs):
        return self.client.volumes.create(
            self.name(suffix), labels=self.labels, **kwargs
        )

    def run(self, image: str, suffix: str, **kwargs) -> Container:
        """Start a detached container named PREFIX-suffix."""
        return self.client.containers.run(
            image, name=self.name(suffix), labels=self.labels, detach=True, **kwargs
        )

    def cleanup(self) -> None:
        """Remove containers, then networks, then volumes. Raise if any remain."""
        failures = []
        label_filter = {"label": f"{PREFIX_LABEL}={self.prefix}"}
        collections = (
            (self.client.containers, {"all": True}, {"force": True}),
            (self.client.networks, {}, {}),
            (self.client.volumes, {}, {"force": True}),
        )
        for collection, list_args, remove_args in collections:
            found = {}
            for filters in (label_filter, {"name": self.prefix}):
                for item in collection.list(filters=filters, **list_args):
                    # The name filter matches substrings, so it is checked again.
                    if item.name.startswith(self.prefix):
                        found[item.id] = item
            for item in found.values():
                try:
                    item.remove(**remove_args)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as error:
                    failures.append(f"{item.name}: {error}")
        if failures:
            raise RuntimeError(
                "could not remove test resources: " + "; ".join(failures)
            )


def command_output(
    client: docker.DockerClient, image: str, command: list[str], **kwargs
) -> str:
    """Run a command to its end in a new container and return what it printed.

    The output is read after the container has exited and before it is
    removed. (containers.run(remove=True) removes the container before it
    reads the log stream, which can come back empty.)
    """
    container = client.containers.create(image, command=command, **kwargs)
    try:
        container.start()
        status = container.wait(timeout=60)["StatusCode"]
        output = container.logs(stdout=True, stderr=False).decode()
        if status != 0:
            errors = container.logs(stdout=False, stderr=True).decode(errors="replace")
            raise RuntimeError(
                f"{command} in {image} exited with status {status}: {errors}"
            )
        return output
    finally:
        container.remove(force=True)


def container_ip(container: Container, network: str) -> str:
    """Return the container's IP address on a network."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    if network not in networks:
        raise RuntimeError(
            f"container {container.name} is not on network {network}; "
            f"it is on {sorted(networks)}"
        )
    return networks[network]["IPAddress"]


def http_session() -> requests.Session:
    """Return a session that ignores proxy settings, for talking to containers."""
    session = requests.Session()
    session.trust_env = False
    return session


def wait_for_http(
    url: str,
    container: Container | None = None,
    timeout: float = 30.0,
    session: requests.Session | None = None,
) -> None:
    """Poll url until it returns HTTP 200. Fail early if the container exits."""
    session = session or http_session()
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if container is not None:
            container.reload()
            if container.status == "exited":
                logs = container.logs().decode(errors="replace")
                raise RuntimeError(
                    f"container {container.name} exited before {url} was ready:\n{logs}"
                )
        try:
            response = session.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            last = str(error)
        time.sleep(0.2)
    raise TimeoutError(
        f"{url} did not answer 200 within {timeout} s; last result: {last}"
    )


def read_files(container: Container, path: str) -> dict[str, tuple[int, bytes]]:
    """Read the regular files under path in a container.

    Returns a dict from the path relative to path to (permission bits, content).
    """
    stream, _ = container.get_archive(path)
    buffer = io.BytesIO(b"".join(stream))
    files = {}
    with tarfile.open(fileobj=buffer) as archive:
        for member in archive.getmembers():
            if not member.isfile():
                continue
            # Members are named after the folder itself: "output/a/b.txt".
            relative = PurePosixPath(*PurePosixPath(member.name).parts[1:]).as_posix()
            files[relative] = (member.mode & 0o7777, archive.extractfile(member).read())
    return files
