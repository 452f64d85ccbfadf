"""Find and remove the Docker resources of one benchmark run."""

from __future__ import annotations

import docker
import docker.errors
import requests

from orchestrator import names

from . import RUN_LABEL


class BenchResources:
    """Find and remove the containers, volumes and network of one run.

    A resource belongs to the run in three cases. Its name contains the run
    id, which starts every session id, and session containers and volumes
    end with their session id. Or it carries the run label or a run
    session's label. Or its name starts with the Docker name of one of the
    run's templates, whose ids are fresh UUIDs. Nothing else is removed.
    """

    def __init__(self, client: docker.DockerClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.network = f"{run_id}-net"
        self.sessions: list[str] = []
        self.template_ids: list[str] = []
        self.labels = {RUN_LABEL: run_id}

    def _template_prefixes(self) -> list[str]:
        return [names.template_volume(t) for t in self.template_ids]

    def _owns(self, name: str, labels: dict[str, str] | None) -> bool:
        labels = labels or {}
        if self.run_id in name or labels.get(RUN_LABEL) == self.run_id:
            return True
        if labels.get(names.LABEL_SESSION) in self.sessions:
            return True
        return any(name.startswith(p) for p in self._template_prefixes())

    def _container_queries(self) -> list[dict[str, str]]:
        queries = [{"name": self.run_id}, {"label": f"{RUN_LABEL}={self.run_id}"}]
        queries += [{"label": f"{names.LABEL_SESSION}={s}"} for s in self.sessions]
        queries += [{"name": p} for p in self._template_prefixes()]
        return queries

    def _volume_queries(self) -> list[dict[str, str]]:
        queries = [{"name": self.run_id}, {"label": f"{RUN_LABEL}={self.run_id}"}]
        queries += [{"name": p} for p in self._template_prefixes()]
        return queries

    def find(self, errors: list[str]) -> list[tuple[str, str, str]]:
        """List (kind, id, name) of the run's resources, containers first.

        The low-level API is used because the high-level list inspects each
        container and fails when one disappears in between. A failed query
        is added to `errors` and the others still run.
        """
        api = self.client.api
        containers: dict[str, str] = {}
        volumes: dict[str, str] = {}
        networks: dict[str, str] = {}
        for filters in self._container_queries():
            try:
                for item in api.containers(all=True, filters=filters):
                    name = item["Names"][0].lstrip("/") if item.get("Names") else ""
                    # Docker's name filter matches anywhere in the name, so
                    # every hit is checked again before it counts as ours.
                    if self._owns(name, item.get("Labels")):
                        containers[item["Id"]] = name
            except (docker.errors.DockerException, requests.RequestException) as error:
                errors.append(f"listing containers with {filters} failed: {error}")
        for filters in self._volume_queries():
            try:
                for item in api.volumes(filters=filters).get("Volumes") or []:
                    if self._owns(item["Name"], item.get("Labels")):
                        volumes[item["Name"]] = item["Name"]
            except (docker.errors.DockerException, requests.RequestException) as error:
                errors.append(f"listing volumes with {filters} failed: {error}")
        try:
            for item in api.networks(names=[self.network]):
                if item["Name"] == self.network:
                    networks[item["Id"]] = item["Name"]
        except (docker.errors.DockerException, requests.RequestException) as error:
            errors.append(f"listing network {self.network} failed: {error}")
        return (
            [("container", i, n) for i, n in containers.items()]
            + [("volume", i, n) for i, n in volumes.items()]
            + [("network", i, n) for i, n in networks.items()]
        )

    def remove_all(self) -> tuple[list[str], list[str]]:
        """Remove containers, volumes, then the network; return (removed, errors)."""
        api = self.client.api
        removers = {
            "container": lambda key: api.remove_container(key, force=True),
            "volume": lambda key: api.remove_volume(key, force=True),
            "network": api.remove_network,
        }
        removed: list[str] = []
        errors: list[str] = []
        for kind, key, name in self.find(errors):
            try:
                removers[kind](key)
                removed.append(f"{kind} {name}")
            except docker.errors.NotFound:
                pass
            except (docker.errors.DockerException, requests.RequestException) as error:
                errors.append(f"removing {kind} {name} failed: {error}")
        return removed, errors

    def leftovers(self, errors: list[str]) -> list[str]:
        return [f"{kind} {name}" for kind, _, name in self.find(errors)]
