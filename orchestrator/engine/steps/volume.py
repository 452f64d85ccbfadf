"""`volume`: create a volume unless it exists, and fill a new one from an image."""

from __future__ import annotations

import logging
import uuid

import docker.errors
import requests

from ...errors import StepFailed
from ...names import LABEL_DEV, LABEL_KIND
from ..context import Context
from ..dockerapi import explain, find_container, log_tail, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)

DEFAULT_FILL_TIMEOUT = 300.0
# Mount point of a fill's host folder (`fill.source`), read-only.
SOURCE_MOUNT = "/source"


class Volume(Step):
    kind = "volume"

    def resource(self) -> str:
        return self.args["volume"]

    def describe(self) -> str:
        if self.args.get("must_exist"):
            return f"check that volume {self.resource()} exists"
        fill = self.args.get("fill")
        suffix = f", filled by running {fill['image']} once" if fill else ""
        return f"ensure volume {self.resource()} exists{suffix}"

    def apply(self, context: Context) -> Outcome:
        name = self.resource()
        client = context.client
        with context.locks("volume:" + name):
            with translated("inspect volume", name):
                try:
                    client.volumes.get(name)
                    return Outcome(False, f"volume {name} already exists")
                except docker.errors.NotFound:
                    pass
            if self.args.get("must_exist"):
                raise StepFailed(self._missing_message(), resource=name)
            with translated("create volume", name):
                client.volumes.create(name, labels=self.args.get("labels") or {})
            log.info(
                "created volume %s", name, extra={"step": self.name, "volume": name}
            )
            fill = self.args.get("fill")
            if fill:
                self._fill(context, name, fill)
                return Outcome(
                    True, f"created volume {name}, filled from {fill['image']}"
                )
        return Outcome(True, f"created volume {name}")

    def _fill(self, context: Context, volume: str, fill: dict) -> None:
        """Run the fill image once; on any failure remove the half-filled volume."""
        client = context.client
        helper = fill.get("container") or f"{volume}-fill-{uuid.uuid4().hex[:8]}"
        labels = {LABEL_DEV: "true", LABEL_KIND: "fill", **fill.get("labels", {})}
        mounts = {volume: {"bind": fill["target"], "mode": "rw"}}
        if fill.get("source"):
            mounts[fill["source"]] = {"bind": SOURCE_MOUNT, "mode": "ro"}
        container = None
        try:
            with translated("run fill container for volume", volume):
                # A helper left by a crashed earlier fill would block the name.
                stale = find_container(client, helper)
                if stale is not None:
                    stale.remove(force=True)
                container = client.containers.run(
                    fill["image"],
                    command=fill.get("command"),
                    name=helper,
                    detach=True,
                    labels=labels,
                    volumes=mounts,
                    network_disabled=True,
                )
                timeout = fill.get("timeout", DEFAULT_FILL_TIMEOUT)
                try:
                    status = container.wait(timeout=timeout)
                except requests.exceptions.ConnectionError as error:
                    raise StepFailed(
                        f"filling volume {volume} from {fill['image']} timed out "
                        f"after {timeout}s",
                        resource=volume,
                    ) from error
            code = status.get("StatusCode", -1)
            if code != 0:
                raise StepFailed(
                    f"filling volume {volume}: {fill['image']} exited with code "
                    f"{code}; last log lines:\n{log_tail(container)}",
                    resource=volume,
                )
        except StepFailed:
            self._discard(context, container, volume)
            raise
        self._discard(context, container, None)

    def _discard(self, context: Context, container, volume: str | None) -> None:
        try:
            if container is not None:
                container.remove(force=True)
            if volume is not None:
                context.client.volumes.get(volume).remove(force=True)
        except docker.errors.DockerException as error:
            log.error(
                "clean-up after a failed fill of %s failed: %s",
                volume or "a volume",
                explain(error),
                extra={"step": self.name},
            )

    def _missing_message(self) -> str:
        hint = self.args.get("hint") or "create it first"
        return f"volume {self.resource()} not found; {hint}"

    def check(self, context: Context) -> Change:
        name = self.resource()
        with translated("inspect volume", name):
            try:
                context.client.volumes.get(name)
                return Change("nothing", f"volume {name} exists")
            except docker.errors.NotFound:
                pass
        if self.args.get("must_exist"):
            return Change("nothing", f"would fail: {self._missing_message()}")
        fill = self.args.get("fill")
        suffix = f" and fill it from {fill['image']}" if fill else ""
        return Change("create", f"would create volume {name}{suffix}")
