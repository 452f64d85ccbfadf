"""`volume`: create a volume unless it exists, and fill a new one from an image."""

from __future__ import annotations

import logging
import os
import time
import uuid

import docker.errors
import requests

from ...errors import StepFailed
from ...names import LABEL_DEV, LABEL_KIND
from .. import folders
from ..context import Context
from ..dockerapi import exists, explain, find_container, log_tail, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)

DEFAULT_FILL_TIMEOUT = 300.0
# Seconds of one wait for the fill container to exit, between interrupt checks.
WAIT_SLICE = 1.0


class Volume(Step):
    kind = "volume"

    def resource(self) -> str:
        return self.args["volume"]

    def describe(self) -> str:
        if self.args.get("must_exist"):
            return f"check that volume {self.resource()} exists"
        return f"ensure volume {self.resource()} exists{self._fill_suffix()}"

    def _fill_suffix(self) -> str:
        fill = self.args.get("fill")
        if not fill:
            return ""
        if fill.get("source"):
            return f", filled with a copy of folder {fill['source']}"
        return f", filled by running {fill['image']} once"

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
                return Outcome(True, f"created volume {name}{self._fill_suffix()}")
        return Outcome(True, f"created volume {name}")

    def _fill(self, context: Context, volume: str, fill: dict) -> None:
        """Fill the new volume; on any failure, interruption included, remove it."""
        client = context.client
        helper = fill.get("container") or f"{volume}-fill-{uuid.uuid4().hex[:8]}"
        labels = {
            **(self.args.get("labels") or {}),
            LABEL_DEV: "true",
            LABEL_KIND: "fill",
            **fill.get("labels", {}),
        }
        container = None
        try:
            with translated("create fill container for volume", volume):
                # A helper left by a crashed earlier fill would block the name;
                # a container of that name that is no fill helper is not ours.
                stale = find_container(client, helper)
                if stale is not None:
                    if stale.labels.get(LABEL_KIND) != "fill":
                        raise StepFailed(
                            f"filling volume {volume}: container {helper} already "
                            f"exists and is not a fill helper; remove it or name "
                            f"another fill.container",
                            resource=volume,
                        )
                    stale.remove(force=True)
                try:
                    container = client.containers.create(
                        fill["image"],
                        command=fill.get("command"),
                        name=helper,
                        labels=labels,
                        volumes={volume: {"bind": fill["target"], "mode": "rw"}},
                        network_disabled=True,
                    )
                except docker.errors.ImageNotFound as error:
                    raise StepFailed(
                        f"filling volume {volume}: image {fill['image']} not found "
                        f"on the engine; pull it first (a pull step before this one)",
                        resource=volume,
                    ) from error
            if fill.get("source"):
                self._copy_folder(container, volume, fill)
            else:
                self._run_once(context, container, volume, fill)
        except BaseException:
            self._discard(context, container, volume)
            raise
        self._discard(context, container, None)

    def _copy_folder(self, container, volume: str, fill: dict) -> None:
        """Copy `fill.source` into the volume through the stopped helper."""
        source = fill["source"]
        archive = folders.pack(source, fill.get("within") or "/")
        with archive, translated("copy folder into volume", volume):
            container.put_archive(fill["target"], archive)

    def _run_once(self, context: Context, container, volume: str, fill: dict) -> None:
        """Start the helper and fail unless it exits with code 0 in time."""
        timeout = fill.get("timeout", DEFAULT_FILL_TIMEOUT)
        deadline = time.monotonic() + timeout
        with translated("run fill container for volume", volume):
            container.start()
            while True:
                # Waiting in slices lets an interrupt stop the fill.
                context.stop_if_cancelled(volume)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StepFailed(
                        f"filling volume {volume} from {fill['image']} timed out "
                        f"after {timeout:g}s",
                        resource=volume,
                    )
                try:
                    status = container.wait(timeout=min(WAIT_SLICE, remaining))
                    break
                except (
                    requests.exceptions.ConnectionError,
                    requests.exceptions.Timeout,
                ):
                    continue
        code = status.get("StatusCode", -1)
        if code != 0:
            raise StepFailed(
                f"filling volume {volume}: {fill['image']} exited with code "
                f"{code}; last log lines:\n{log_tail(container)}",
                resource=volume,
            )

    def _discard(self, context: Context, container, volume: str | None) -> None:
        try:
            if container is not None:
                container.remove(force=True)
            if volume is not None:
                context.client.volumes.get(volume).remove(force=True)
                log.info(
                    "removed volume %s after its fill failed",
                    volume,
                    extra={"step": self.name, "volume": volume},
                )
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
        if exists(context, "volume", name):
            return Change("nothing", f"volume {name} exists")
        if self.args.get("must_exist"):
            return Change("fail", f"would fail: {self._missing_message()}")
        fill = self.args.get("fill")
        if fill and not exists(context, "image", fill["image"]):
            return Change(
                "fail",
                f"would fail: image {fill['image']} to fill volume {name} not found "
                f"on the engine, and no earlier step pulls it",
            )
        if fill and fill.get("source"):
            # Opening the folder checks it as the copy would, and reads nothing.
            os.close(folders.open_inside(fill["source"], fill.get("within") or "/"))
        context.expectations.create("volume", name, self.args.get("labels"))
        return Change("create", f"would create volume {name}{self._fill_suffix()}")
