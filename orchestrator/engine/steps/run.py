"""`run`: create and start a container, then wait until it answers GET / with 200."""

from __future__ import annotations

import hashlib
import json
import logging
import time

import docker.errors
import requests
from docker.models.containers import Container
from docker.types import Mount

from ...errors import StepFailed
from ..context import Context, http
from ..dockerapi import (
    container_address,
    exists,
    find_container,
    log_tail,
    translated,
)
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)

# Label holding a digest of the arguments a container was created from.
LABEL_SPEC = "cyanprint.spec"

DEFAULT_READY_TIMEOUT = 60.0
# Readiness polling starts fast and backs off to this interval (seconds), so a
# container that starts answering is noticed within about 50 ms.
MAX_POLL_INTERVAL = 0.05
# How often (seconds) the container's state is read while it is not ready yet.
STATE_CHECK_INTERVAL = 0.25


def anonymous(volume: str) -> bool:
    """Tell whether `volume` is anonymous: Docker names those with 64 hex digits."""
    return len(volume) == 64 and all(c in "0123456789abcdef" for c in volume)


def image_id(context: Context, image: str) -> str:
    """Return the id of the image `image` names now, or '' when it is missing."""
    with translated("inspect image", image):
        try:
            return context.client.images.get(image).id
        except docker.errors.ImageNotFound:
            return ""


class Run(Step):
    kind = "run"
    outputs = ("container", "id", "address")

    def resource(self) -> str:
        return self.args["container"]

    def describe(self) -> str:
        mounts = ", ".join(
            f"{m['volume']}:{m['target']}{':ro' if m.get('read_only') else ''}"
            for m in self.args.get("mounts", [])
        )
        return (
            f"run container {self.resource()} from {self.args['image']} on network "
            f"{self.args['network']}"
            + (f" with {mounts}" if mounts else "")
            + f", wait for GET / on port {self.args['port']}"
        )

    def apply(self, context: Context) -> Outcome:
        name = self.resource()
        with context.locks("container:" + name):
            # Checked first, so a step bound to fail never removes a container.
            self._require_volumes(context)
            existing = self._reusable(context)
            if existing is not None:
                elapsed = self._wait_ready(context, existing)
                return Outcome(
                    False,
                    f"container {name} already running, ready after {elapsed:.2f}s",
                    self._output(existing),
                )
            container = self._create(context)
            try:
                with translated("start container", name):
                    container.start()
                elapsed = self._wait_ready(context, container)
            except BaseException:
                # A failure quotes the container's last log lines already, and a
                # container that never became ready (or whose start was
                # interrupted) must not linger.
                self._discard(container)
                raise
        return Outcome(
            True, f"started {name}, ready after {elapsed:.2f}s", self._output(container)
        )

    def check(self, context: Context) -> Change:
        name = self.resource()
        missing = self._missing_dependency(context)
        if missing:
            return Change("fail", f"would fail: {missing}")
        known = context.expectations.known("container", name)
        if known:
            return Change("nothing", f"container {name} would be running")
        existing = None
        if known is None:
            with translated("inspect container", name):
                existing = find_container(context.client, name)
        context.expectations.create("container", name, self.args.get("labels"))
        if existing is None:
            return Change("start", f"would create and start {name}")
        problem = self._stale_reason(context, existing)
        if problem:
            return Change(
                "remove", f"would remove {name} ({problem}) and start it anew"
            )
        return Change("nothing", f"container {name} is running")

    def _missing_dependency(self, context: Context) -> str:
        """Name a network, image or volume the container needs that would be missing."""
        network, image = self.args["network"], self.args["image"]
        if not exists(context, "network", network):
            return f"network {network} not found, and no earlier step creates it"
        if not exists(context, "image", image):
            return f"image {image} not found, and no earlier step pulls it"
        for mount in self.args.get("mounts", []):
            if not exists(context, "volume", mount["volume"]):
                return (
                    f"volume {mount['volume']} to mount at {mount['target']} not "
                    f"found, and no earlier step creates it"
                )
        return ""

    def _stale_reason(self, context: Context, existing: Container) -> str:
        """Say why an existing container cannot be kept, or return ''."""
        config = existing.attrs.get("Config") or {}
        image = config.get("Image")
        networks = existing.attrs["NetworkSettings"].get("Networks") or {}

        if existing.status != "running":
            return f"status {existing.status}"
        if image != self.args["image"]:
            return f"image {image}"
        if existing.attrs.get("Image") != image_id(context, image):
            # The tag was moved to another image, by a rebuild for example.
            return f"image {image} now names another image"
        if self.args["network"] not in networks:
            return f"not on network {self.args['network']}"

        # The step's own values first, so the reason names the one that differs.
        labels = config.get("Labels") or {}
        for key, value in (self.args.get("labels") or {}).items():
            if key != LABEL_SPEC and labels.get(key) != value:
                return f"label {key} is {labels.get(key)!r}, not {value!r}"
        environment = set(config.get("Env") or [])
        for key, value in (self.args.get("environment") or {}).items():
            if f"{key}={value}" not in environment:
                return f"environment variable {key} differs"
        if self.args.get("command") and config.get("Cmd") != self.args["command"]:
            return f"command {config.get('Cmd')}"
        mounted = {
            (mount.get("Name"), mount.get("Destination"), bool(mount.get("RW")))
            for mount in existing.attrs.get("Mounts") or []
            if mount.get("Type") == "volume" and not anonymous(mount.get("Name", ""))
        }
        if mounted != self._expected_mounts():
            return "its volume mounts differ"

        if labels.get(LABEL_SPEC) != self._spec():
            # Labels, variables or a command the step no longer lists.
            return "it was created from other arguments"
        return ""

    def _expected_mounts(self) -> set[tuple[str, str, bool]]:
        return {
            (mount["volume"], mount["target"], not mount.get("read_only"))
            for mount in self.args.get("mounts", [])
        }

    def _output(self, container: Container) -> dict:
        return {
            "container": container.name,
            "id": container.id,
            "address": container_address(container, self.args["network"]),
        }

    def _reusable(self, context: Context) -> Container | None:
        """Return a running container of the same image, removing a stale one."""
        name = self.resource()
        with translated("inspect container", name):
            existing = find_container(context.client, name)
            if existing is None:
                return None
            problem = self._stale_reason(context, existing)
            if not problem:
                return existing
            log.info(
                "replacing container %s (%s)",
                name,
                problem,
                extra={"step": self.name, "container": name},
            )
            existing.remove(force=True)
        return None

    def _require_volumes(self, context: Context) -> None:
        for mount in self.args.get("mounts", []):
            # Docker would create a missing volume, empty and unlabelled, that
            # no teardown by label ever finds.
            with translated("inspect volume", mount["volume"]):
                try:
                    context.client.volumes.get(mount["volume"])
                except docker.errors.NotFound:
                    raise StepFailed(
                        f"volume {mount['volume']} to mount at {mount['target']} "
                        f"in container {self.resource()} not found; create it first "
                        f"(a volume step before this one)",
                        resource=self.resource(),
                    ) from None

    def _spec(self) -> str:
        """Return a digest of everything the step creates its container from."""
        args = self.args
        described = {
            "image": args["image"],
            "command": args.get("command"),
            "environment": args.get("environment") or {},
            "labels": args.get("labels") or {},
            "mounts": sorted(self._expected_mounts()),
        }
        text = json.dumps(described, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def _create(self, context: Context) -> Container:
        args = self.args
        mounts = [
            Mount(
                mount["target"],
                mount["volume"],
                type="volume",
                read_only=bool(mount.get("read_only")),
            )
            for mount in args.get("mounts", [])
        ]
        with translated("create container", self.resource()):
            container = context.client.containers.create(
                args["image"],
                name=self.resource(),
                command=args.get("command"),
                environment=args.get("environment") or {},
                labels={**(args.get("labels") or {}), LABEL_SPEC: self._spec()},
                network=args["network"],
                mounts=mounts,
                detach=True,
            )
        log.info(
            "created container %s from %s",
            self.resource(),
            args["image"],
            extra={"step": self.name, "container": self.resource()},
        )
        return container

    def _wait_ready(self, context: Context, container: Container) -> float:
        """Poll GET / until it returns 200; return how long that took in seconds."""
        timeout = self.args.get("ready_timeout", context.settings.ready_timeout)
        started = time.monotonic()
        deadline = started + timeout
        with translated("inspect container", container.name):
            container.reload()
        self._fail_if_stopped(container)

        address = container_address(container, self.args["network"])
        url = f"http://{address}:{self.args['port']}/"
        interval = 0.01
        last_answer = "no response"
        last_state_check = started
        while True:
            context.stop_if_cancelled(container.name)
            remaining = deadline - time.monotonic()
            try:
                response = http().get(url, timeout=max(0.05, min(1.0, remaining)))
                if response.status_code == 200:
                    return time.monotonic() - started
                last_answer = f"HTTP {response.status_code}"
            except requests.RequestException as error:
                last_answer = type(error).__name__

            now = time.monotonic()
            if now - last_state_check >= STATE_CHECK_INTERVAL:
                last_state_check = now
                with translated("inspect container", container.name):
                    container.reload()
                self._fail_if_stopped(container)
            if now >= deadline:
                raise StepFailed(
                    f"container {container.name} did not respond to GET / with 200 "
                    f"on port {self.args['port']} within {timeout:g}s (last response: "
                    f"{last_answer}); last log lines:\n{log_tail(container)}",
                    resource=container.name,
                )

            time.sleep(interval)
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)

    def _discard(self, container: Container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.DockerException as error:
            log.error(
                "removing container %s after it failed failed too: %s",
                container.name,
                error,
                extra={"step": self.name, "container": container.name},
            )
            return
        log.info(
            "removed container %s, which did not become ready",
            container.name,
            extra={"step": self.name, "container": container.name},
        )

    def _fail_if_stopped(self, container: Container) -> None:
        if container.status in ("running", "created", "restarting"):
            return
        code = container.attrs.get("State", {}).get("ExitCode")
        raise StepFailed(
            f"container {container.name} stopped before it was ready "
            f"(status {container.status}, exit code {code}); last log lines:\n"
            f"{log_tail(container)}",
            resource=container.name,
        )
