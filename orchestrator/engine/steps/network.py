"""`network`: ensure a bridge network exists."""

from __future__ import annotations

import logging

import docker.errors

from ..context import Context
from ..dockerapi import translated
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
            if client.networks.list(names=[name]):
                return Outcome(False, f"network {name} already exists")
            try:
                client.networks.create(
                    name, driver="bridge", labels=self.args.get("labels") or {}
                )
            except docker.errors.APIError as error:
                # Another executor process created it between the two calls.
                if error.status_code == 409 and client.networks.list(names=[name]):
                    return Outcome(False, f"network {name} already exists")
                raise
        log.info("created network %s", name, extra={"step": self.name, "network": name})
        return Outcome(True, f"created network {name}")

    def check(self, context: Context) -> Change:
        name = self.resource()
        with translated("inspect network", name):
            if context.client.networks.list(names=[name]):
                return Change("nothing", f"network {name} exists")
        return Change("create", f"would create bridge network {name}")
