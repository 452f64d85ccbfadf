"""Baselines without the executor: plain Docker start, a fast poller and tar."""

from __future__ import annotations

import contextlib
import functools
import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from orchestrator import names, planning
from orchestrator.config import Settings
from orchestrator.engine import Engine, StepResult

from . import READY_TIMEOUT, BenchError
from .cpu import CpuUse, measure_cpu
from .resources import BenchResources

READINESS_POLL_INTERVAL = 0.002
# How often the readiness poller inspects the new container for its address.
ADDRESS_POLL_INTERVAL = 0.005


# ---------------------------------------------------------------- polling


def get_status(host: str, port: int, timeout: float = 1.0) -> int | None:
    """Send GET / on a new connection; return the status, or None on no response."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def wait_first_ok(
    host: str, port: int, interval: float, deadline: float, stop: threading.Event
) -> float | None:
    """Poll GET / every `interval` seconds; return the time of the first 200."""
    while not stop.is_set() and time.monotonic() < deadline:
        if get_status(host, port) == 200:
            return time.monotonic()
        time.sleep(interval)
    return None


def container_address(container: Any, network: str) -> str:
    networks = container.attrs["NetworkSettings"].get("Networks") or {}
    address = (networks.get(network) or {}).get("IPAddress")
    if not address:
        raise BenchError(
            f"container {container.name} has no address on network {network}; "
            f"it is attached to {sorted(networks) or 'no network'}"
        )
    return address


# ---------------------------------------------------------------- start baseline


@dataclass
class ContainerTiming:
    name: str
    create: float
    start: float
    ready: float


@dataclass
class BaselineStart:
    total: float
    containers: list[ContainerTiming]
    cpu: CpuUse


def baseline_specs(
    document: dict[str, Any], session_volume: str, area_volume: str, prefix: str
) -> tuple[int, list[dict[str, Any]]]:
    """Return the group's parallelism and the run steps of a start plan, renamed.

    The session volume is swapped for the baseline's own volume, so the
    baseline never writes into a session the executor owns.
    """
    groups = [item for item in document["steps"] if "parallel" in item]
    specs = []
    parallel = 1
    for group in groups:
        for step in group["steps"]:
            if step["kind"] != "run":
                continue
            parallel = group["parallel"]
            mounts = [
                {
                    **mount,
                    "volume": area_volume
                    if mount["volume"] == session_volume
                    else mount["volume"],
                }
                for mount in step.get("mounts", [])
            ]
            specs.append(
                {**step, "container": f"{prefix}-{step['name']}", "mounts": mounts}
            )
    if not specs:
        raise BenchError("the start plan has no run steps to compare with")
    return parallel, specs


def start_one(
    client: docker.DockerClient,
    spec: dict[str, Any],
    labels: dict[str, str],
    poll_interval: float,
    stop: threading.Event,
) -> ContainerTiming:
    """Create and start a container as the run step does, then poll GET /."""
    volumes = {
        mount["volume"]: {
            "bind": mount["target"],
            "mode": "ro" if mount.get("read_only") else "rw",
        }
        for mount in spec.get("mounts", [])
    }
    began = time.monotonic()
    container = client.containers.create(
        spec["image"],
        name=spec["container"],
        command=spec.get("command"),
        environment={},
        labels=labels,
        network=spec["network"],
        volumes=volumes,
        detach=True,
    )
    created = time.monotonic()
    container.start()
    started = time.monotonic()

    container.reload()
    address = container_address(container, spec["network"])
    ready = wait_first_ok(
        address,
        spec["port"],
        poll_interval,
        started + READY_TIMEOUT,
        stop,
    )
    if ready is None:
        if stop.is_set():
            raise BenchError(
                f"baseline container {container.name} stopped polling because "
                "another baseline container failed or the run was interrupted"
            )
        raise BenchError(
            f"baseline container {container.name} did not respond to GET / with 200 on "
            f"port {spec['port']} within {READY_TIMEOUT:g}s; its last log lines:\n"
            + container.logs(tail=20).decode(errors="replace")
        )
    return ContainerTiming(
        container.name, created - began, started - created, ready - started
    )


def run_baseline_start(
    client: docker.DockerClient,
    resources: BenchResources,
    document: dict[str, Any],
    session_volume: str,
    repetition: int,
    parallelism: int,
    poll_interval: float,
) -> BaselineStart:
    """Time a start of the plan's containers with plain SDK calls, then remove them."""
    prefix = f"{resources.run_id}-base{repetition}"
    area = f"{prefix}-area"
    # The executor's volumes are made by warm, outside the timed start, so
    # this volume is made before the clock starts too.
    client.volumes.create(area, labels=resources.labels)

    group_parallel, specs = baseline_specs(document, session_volume, area, prefix)
    workers = max(1, min(group_parallel, parallelism, len(specs)))
    stop = threading.Event()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="baseline")
    try:
        with measure_cpu() as cpu:
            began = time.monotonic()
            futures = [
                pool.submit(
                    start_one, client, spec, resources.labels, poll_interval, stop
                )
                for spec in specs
            ]
            timings = [future.result() for future in futures]
            total = time.monotonic() - began
    finally:
        # On an error or Ctrl-C the other threads stop polling at once.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for spec in specs:
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(spec["container"]).remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(area).remove(force=True)
    return BaselineStart(total, timings, cpu)


# ---------------------------------------------------------------- readiness


class ReadinessPoller(threading.Thread):
    """Poll a container's GET / every 2 ms from the moment it has an address."""

    def __init__(
        self, client: docker.DockerClient, name: str, network: str, port: int
    ) -> None:
        super().__init__(name=f"poll-{name}", daemon=True)
        self.client = client
        self.container = name
        self.network = network
        self.port = port
        self.stop = threading.Event()
        self.first_ok: float | None = None
        self.error: str = ""

    def _address(self, deadline: float) -> str | None:
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                attrs = self.client.api.inspect_container(self.container)
            except docker.errors.NotFound:
                attrs = None
            if attrs is not None:
                networks = attrs["NetworkSettings"].get("Networks") or {}
                address = (networks.get(self.network) or {}).get("IPAddress")
                if address:
                    return address
            time.sleep(ADDRESS_POLL_INTERVAL)
        return None

    def run(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            address = self._address(deadline)
            if address is None:
                self.error = "the container got no address on the network"
                return
            self.first_ok = wait_first_ok(
                address, self.port, READINESS_POLL_INTERVAL, deadline, self.stop
            )
        except Exception as error:  # reported by the caller, which has no thread
            self.error = f"{type(error).__name__}: {error}"


def note_finish(finished: dict[str, float], result: StepResult) -> None:
    finished.setdefault(result.name, time.monotonic())


def measure_readiness(
    client: docker.DockerClient,
    settings: Settings,
    resources: BenchResources,
    image: str,
    count: int,
) -> list[float]:
    """Return per container the run step's finish time minus the first 200 seen."""
    engine = Engine(client, settings)
    latencies = []
    for index in range(count):
        name = f"{resources.run_id}-ready-{index}"
        plan = {
            "name": "readiness",
            "steps": [
                {
                    "name": "run",
                    "kind": "run",
                    "container": name,
                    "image": image,
                    "network": settings.network,
                    "port": names.PORTS["processor"],
                    "labels": resources.labels,
                    "ready_timeout": READY_TIMEOUT,
                }
            ],
        }
        planning.check(plan, "<readiness plan>")
        poller = ReadinessPoller(
            client, name, settings.network, names.PORTS["processor"]
        )
        finished: dict[str, float] = {}
        poller.start()
        try:
            report = engine.apply(plan, functools.partial(note_finish, finished))
            poller.join(timeout=READY_TIMEOUT)
        finally:
            poller.stop.set()
            with contextlib.suppress(docker.errors.NotFound):
                client.containers.get(name).remove(force=True)
        if report.failed:
            raise BenchError(
                f"readiness run of {name} failed: {report.failures[0].message}"
            )
        if poller.first_ok is None:
            raise BenchError(
                f"the poller never got a 200 response to GET / from {name}: "
                f"{poller.error or 'timed out'}"
            )
        latencies.append(finished["run"] - poller.first_ok)
        print(
            f"  readiness {index + 1}/{count}: {latencies[-1] * 1000:.1f} ms "
            f"after the first 200",
            flush=True,
        )
    return latencies


# ---------------------------------------------------------------- tar


def time_tar(client: docker.DockerClient, container: str, directory: str) -> float:
    """Run `tar czf` of `directory` inside `container`; return tar's own seconds."""
    # The clock is read inside the container, so `docker exec` start-up is
    # not counted against tar.
    script = (
        'began=$(date +%s%N); tar czf - -C "$1" . > /dev/null || exit 1; '
        "ended=$(date +%s%N); echo $((ended - began))"
    )
    result = client.containers.get(container).exec_run(
        ["sh", "-c", script, "sh", directory]
    )
    output = result.output.decode(errors="replace").strip()
    if result.exit_code != 0:
        raise BenchError(
            f"tar czf of {directory} in {container} failed with exit code "
            f"{result.exit_code}: {output[-2000:]}"
        )
    return int(output.splitlines()[-1]) / 1e9
