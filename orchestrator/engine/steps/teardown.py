"""`teardown`: remove containers and volumes chosen by name or by labels."""

from __future__ import annotations

import logging

import docker.errors

from ...errors import StepFailed
from ..context import Context
from ..dockerapi import explain, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)


class Teardown(Step):
    kind = "teardown"

    def resource(self) -> str:
        selector = self.args.get("selector") or {}
        return ",".join(f"{key}={value}" for key, value in selector.items())

    def describe(self) -> str:
        parts = []
        if self.args.get("selector"):
            what = (
                "containers and volumes"
                if self.args.get("remove_volumes")
                else "containers"
            )
            parts.append(f"remove {what} labelled {self.resource()}")
        if self.args.get("containers"):
            parts.append("remove containers " + ", ".join(self.args["containers"]))
        if self.args.get("volumes"):
            parts.append("remove volumes " + ", ".join(self.args["volumes"]))
        return "; ".join(parts)

    def check(self, context: Context) -> Change:
        containers, volumes = self._targets(context)
        found = [c for c in containers if self._exists(context, "container", c)]
        found += [v for v in volumes if self._exists(context, "volume", v)]
        if not found:
            return Change("nothing", "nothing to remove")
        return Change("remove", "would remove " + ", ".join(found))

    def _exists(self, context: Context, kind: str, name: str) -> bool:
        collection = (
            context.client.containers if kind == "container" else context.client.volumes
        )
        with translated(f"inspect {kind}", name):
            try:
                collection.get(name)
                return True
            except docker.errors.NotFound:
                return False

    def _targets(self, context: Context) -> tuple[list[str], list[str]]:
        """List the container and volume names the step would remove."""
        client = context.client
        filters = [
            f"{key}={value}" for key, value in (self.args.get("selector") or {}).items()
        ]
        containers = set(self.args.get("containers", []))
        volumes = set(self.args.get("volumes", []))
        with translated("list resources labelled", self.resource() or "by name"):
            if filters:
                for found in client.containers.list(
                    all=True, filters={"label": filters}
                ):
                    containers.add(found.name)
                if self.args.get("remove_volumes"):
                    for volume in client.volumes.list(filters={"label": filters}):
                        volumes.add(volume.name)
        return sorted(containers), sorted(volumes)

    def apply(self, context: Context) -> Outcome:
        containers, volumes = self._targets(context)
        errors: list[str] = []
        removed_containers = self._remove(context, "container", containers, errors)
        removed_volumes = self._remove(context, "volume", volumes, errors)
        if errors:
            raise StepFailed("; ".join(errors), resource=self.resource())
        removed = removed_containers + removed_volumes
        output = {"containers": removed_containers, "volumes": removed_volumes}
        if not removed:
            return Outcome(False, "nothing to remove", output)
        return Outcome(True, "removed " + ", ".join(removed), output)

    def _remove(
        self, context: Context, kind: str, names: list[str], errors: list[str]
    ) -> list[str]:
        collection = (
            context.client.containers if kind == "container" else context.client.volumes
        )
        removed = []
        for name in names:
            try:
                collection.get(name).remove(force=True)
            except docker.errors.NotFound:
                continue
            except docker.errors.APIError as error:
                errors.append(f"removing {kind} {name} failed: {explain(error)}")
                log.error("removing %s %s failed: %s", kind, name, explain(error))
                continue
            log.info("removed %s %s", kind, name, extra={kind: name})
            removed.append(name)
        return removed
