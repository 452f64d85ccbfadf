"""`network`: ensure a bridge network exists."""

from __future__ import annotations

import logging

import docker.errors
from docker.models.networks import Network as DockerNetwork

from ...errors import StepFailed
from ..context import Context
from ..dockerapi import find_network, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)


class Network(Step):
    kind = "network"

    def resource(self) -> str:
        return self.args["network"]

    def describe(self) -> str:
        return f"ensure bridge network {self.resource()} exists"

    def apply(self, context: Context) -> Outcome:
        name = self.resource()
        client = context.client
        with context.locks("network:" + name), translated("create network", name):
            if self._existing(context) is not None:
                return Outcome(False, f"network {name} already exists")
            try:
                client.networks.create(
                    name, driver="bridge", labels=self.args.get("labels") or {}
                )
            except docker.errors.APIError as error:
                # Another executor process created it between the two calls.
                if error.status_code == 409 and self._existing(context) is not None:
                    return Outcome(False, f"network {name} already exists")
                raise
        log.info("created network %s", name, extra={"step": self.name, "network": name})
        return Outcome(True, f"created network {name}")

    def _existing(self, context: Context) -> DockerNetwork | None:
        """Return the network of exactly this name; fail unless it is a bridge."""
        name = self.resource()
        found = find_network(context.client, name)
        if found is None:
            return None
        driver = found.attrs.get("Driver")
        if driver != "bridge":
            raise StepFailed(
                f"network {name} exists with driver {driver!r}, but containers need a "
                f"bridge network; choose another network name",
                resource=name,
            )
        return found

    def check(self, context: Context) -> Change:
        name = self.resource()
        if context.expectations.known("network", name):
            return Change("nothing", f"network {name} would exist")
        with translated("inspect network", name):
            if self._existing(context) is not None:
                return Change("nothing", f"network {name} exists")
        context.expectations.create("network", name, self.args.get("labels"))
        return Change("create", f"would create bridge network {name}")
