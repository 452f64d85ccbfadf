"""Translation of Docker SDK errors, and container look-ups shared by the steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.networks import Network

from ..errors import StepFailed
from .context import Context


def explain(error: Exception) -> str:
    if isinstance(error, docker.errors.APIError):
        return str(error.explanation or error)
    return str(error) or type(error).__name__


@contextmanager
def translated(action: str, resource: str) -> Iterator[None]:
    """Turn any Docker error raised inside into a StepFailed naming the resource."""
    try:
        yield
    except StepFailed:
        raise
    except docker.errors.ImageNotFound as error:
        raise StepFailed(
            f"{action} {resource}: image not found ({explain(error)})",
            resource=resource,
        ) from error
    except docker.errors.NotFound as error:
        raise StepFailed(
            f"{action} {resource}: not found ({explain(error)})", resource=resource
        ) from error
    except docker.errors.DockerException as error:
        raise StepFailed(
            f"{action} {resource} failed: {explain(error)}", resource=resource
        ) from error
    except OSError as error:
        # A refused or broken connection to the Docker socket.
        raise StepFailed(
            f"{action} {resource} failed: cannot reach the Docker engine ({error})",
            resource=resource,
        ) from error


def find_container(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def container_address(container: Container, network: str) -> str:
    """Return the container's IP address on `network`, read from Docker."""
    networks = container.attrs.get("NetworkSettings", {}).get("Networks") or {}
    address = (networks.get(network) or {}).get("IPAddress")
    if not address:
        raise StepFailed(
            f"container {container.name} has no address on network {network}; "
            f"it is attached to: {', '.join(networks) or 'no network'}",
            resource=container.name,
        )
    return address


def log_tail(container: Container, lines: int = 20) -> str:
    try:
        raw = container.logs(tail=lines)
    except docker.errors.DockerException:
        return "(logs unavailable)"
    return raw.decode("utf-8", errors="replace").strip() or "(no output)"


def find_network(client: docker.DockerClient, name: str) -> Network | None:
    """Return the network of exactly this name, or None."""
    # The engine's name filter also matches other names that contain this one.
    for network in client.networks.list(names=[name]):
        if network.name == name:
            return network
    return None


def on_engine(
    client: docker.DockerClient, kind: str, name: str, running: bool = False
) -> bool:
    """Tell whether a container, volume, image or network exists on the engine.

    With `running`, a container counts only while it runs.
    """
    with translated(f"inspect {kind}", name):
        try:
            if kind == "container":
                container = client.containers.get(name)
                return container.status == "running" or not running
            if kind == "volume":
                client.volumes.get(name)
            elif kind == "image":
                client.images.get(name)
            elif kind == "network":
                return find_network(client, name) is not None
            return True
        except docker.errors.NotFound:
            return False


def exists(context: Context, kind: str, name: str) -> bool:
    """Tell whether a resource would exist at this point of a plan in check mode.

    What an earlier step would create or remove counts first, then the engine.
    A container counts only while it runs.
    """
    expected = context.expectations.known(kind, name)
    if expected is not None:
        return expected
    return on_engine(context.client, kind, name, running=True)
