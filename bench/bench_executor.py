#!/usr/bin/env python3
"""Benchmark the CyanPrint executor on a real Docker engine.

The executor's HTTP API runs in this process on a loopback port, as in the
integration tests. For each repetition a fresh template and session go
through warm, start, build and delete, and each figure is printed beside a
baseline that does the same work without the executor:

  start      executor's POST /executor against plain Docker SDK calls that
             create and start the same containers and poll GET / every 5 ms.
  readiness  how long after a container first responds to GET / with 200
             the executor's `run` step finishes, against a poller at 2 ms.
  stream     time to stream the build's archive against `tar czf` of the
             same merged folder inside the merger container.

Every container, volume and network the run creates has the run id
(`bench-<hex>`) in its name or belongs to one of the run's templates or
sessions, and all of them are removed at the end, on failure and on Ctrl-C.
Images are kept, because rebuilding them takes minutes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# The image build helpers live in tests/support; the repository root makes
# them importable as `tests.support` without installing anything.
sys.path.insert(0, str(REPO_ROOT))

import docker  # noqa: E402
import docker.errors  # noqa: E402
import requests  # noqa: E402
from executor_bench import (  # noqa: E402
    CALL_TIMEOUT,
    DOCKER_TIMEOUT,
    MIB,
    READY_TIMEOUT,
    BenchError,
)
from executor_bench.baselines import measure_readiness  # noqa: E402
from executor_bench.harness import (  # noqa: E402
    DEFAULT_EXECUTOR_TAG,
    BenchContext,
    Repetition,
    Server,
    Workload,
    file_counts,
    make_template,
    prepare_images,
    run_repetition,
    start_server,
    write_catalog,
)
from executor_bench.report import print_report  # noqa: E402
from executor_bench.resources import BenchResources  # noqa: E402

from orchestrator.config import Settings  # noqa: E402

# ---------------------------------------------------------------- options


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected an integer of 1 or more, got {text}"
        )
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected an integer of 0 or more, got {text}"
        )
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time the CyanPrint executor's warm, start, build and delete on the "
            "local Docker engine, and compare start, readiness and archive "
            "streaming with plain Docker and tar baselines. Prints a table of "
            "figures and exits 0 whether or not the targets are met."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    parser.add_argument(
        "--processors",
        type=positive_int,
        metavar="N",
        default=8,
        help="processors in the template; each runs as its own container",
    )

    parser.add_argument(
        "--plugins",
        type=non_negative_int,
        metavar="M",
        default=2,
        help="plugins in the template; each runs as its own container and "
        "writes one small text file into the build's output",
    )

    parser.add_argument(
        "--files",
        type=positive_int,
        metavar="F",
        default=2000,
        help="files the build writes in total, split evenly over the processors",
    )

    parser.add_argument(
        "--megabytes",
        type=positive_float,
        metavar="MIB",
        default=50.0,
        help="total size of those files in MiB (1 MiB = 1,048,576 bytes); the "
        "bytes are pseudo-random, so gzip barely shrinks them",
    )

    parser.add_argument(
        "--repeat",
        type=positive_int,
        metavar="R",
        default=3,
        help="repetitions of warm, start, build and delete, each with a new "
        "template and session; medians and minimums are taken over them",
    )

    parser.add_argument(
        "--readiness-containers",
        type=non_negative_int,
        metavar="K",
        default=5,
        help="containers started one at a time to measure readiness latency; "
        "0 skips that measurement",
    )

    parser.add_argument(
        "--parallelism",
        type=positive_int,
        metavar="P",
        default=Settings.parallelism,
        help="the executor's parallelism setting: containers started at once; "
        "the start baseline uses as many threads",
    )

    parser.add_argument(
        "--baseline-poll-ms",
        type=positive_float,
        metavar="MS",
        default=5.0,
        help="milliseconds between two GET / polls of each container in the "
        "start baseline",
    )

    parser.add_argument(
        "--executor-image",
        default="",
        metavar="TAG",
        help="existing executor image to run as the merger; empty builds "
        f"{DEFAULT_EXECUTOR_TAG} from this working tree with "
        "scripts/build-image.sh",
    )

    args = parser.parse_args(argv)
    if args.files < args.processors:
        parser.error(
            f"--files {args.files} is less than --processors {args.processors}; "
            "give every processor at least one file"
        )
    return args


# ---------------------------------------------------------------- machine


def memory_total() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / MIB:.1f} GiB"
    return "unknown"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe_machine(client: docker.DockerClient, run_id: str) -> list[str]:
    version = client.version()
    info = client.info()
    return [
        f"machine: {len(os.sched_getaffinity(0))} CPUs usable (nproc), "
        f"{os.cpu_count()} online, {cpu_model()}; memory {memory_total()}",
        f"docker: engine {version.get('Version')} (API {version.get('ApiVersion')}), "
        f"storage driver {info.get('Driver')}, kernel {version.get('KernelVersion')}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"other running containers on this engine: {other_running(client, run_id)} "
        "(they share the CPUs and the engine with this run, so they add noise)",
    ]


# ---------------------------------------------------------------- main


def raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold off Ctrl-C and SIGTERM, so a clean-up runs to its end."""

    def note(signum: int, frame: Any) -> None:
        print("clean-up is running and stops by itself; please wait", flush=True)

    previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def clean_up(
    resources: BenchResources, server: Server | None, settings: Settings | None
) -> bool:
    """Remove everything the run created; return True when nothing is left."""
    if server is not None:
        server.close()

        # A request cut off by Ctrl-C goes on in the server's thread; its
        # containers must exist before they can be removed.
        limit = settings.call_timeout if settings else CALL_TIMEOUT
        if not server.executor.recorder.wait_idle(1.0):
            print(f"waiting up to {limit:g} s for the executor's running plan to end")
            server.executor.recorder.wait_idle(limit)
    # A request to Docker cut off by Ctrl-C can leave a half-written request
    # on a pooled connection, and the next request on it then fails, so the
    # clean-up opens connections of its own.
    with contextlib.suppress(docker.errors.DockerException):
        resources.client = docker.from_env(timeout=DOCKER_TIMEOUT)

    removed, errors = resources.remove_all()
    left = resources.leftovers(errors)
    if left:
        # Something was still being created during the first pass.
        more, errors = resources.remove_all()
        removed += more
        left = resources.leftovers(errors)

    kinds = {
        kind: sum(1 for item in removed if item.startswith(kind))
        for kind in ("container", "volume", "network")
    }
    print(
        f"\nclean-up of {resources.run_id}: removed containers: {kinds['container']}, "
        f"volumes: {kinds['volume']}, networks: {kinds['network']}"
    )
    for error in errors:
        print(f"  removal failed: {error}")
    if left:
        print(
            "  still present, remove by hand with `docker rm -f`, `docker volume rm` "
            "or `docker network rm`: " + ", ".join(left)
        )
        return False
    print("  nothing of this run is left")
    return True


def configure_logging(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def other_running(client: docker.DockerClient, run_id: str) -> int:
    """Count running containers that are not this run's, a source of noise."""
    with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
        return sum(
            1
            for item in client.api.containers()
            if not any(run_id in name for name in item.get("Names", []))
        )
    return -1


@dataclass
class State:
    """Server, settings and figures of a run so far, for the clean-up and report."""

    server: Server | None = None
    settings: Settings | None = None
    repetitions: list[Repetition] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def describe_workload(args: argparse.Namespace, workload: Workload) -> str:
    low, high = min(workload.counts), max(workload.counts)
    each = f"{low}" if low == high else f"{low} to {high}"
    return (
        f"workload: {args.processors} processors, {args.plugins} plugins, "
        f"{workload.files} files of {workload.file_size} bytes "
        f"({workload.total_bytes / MIB:.1f} MiB) split evenly over the "
        f"processors ({each} each), plus one small file per plugin; "
        f"{args.repeat} repetitions; parallelism {args.parallelism}; start "
        f"baseline polls every {args.baseline_poll_ms:g} ms"
    )


def run_benchmark(
    args: argparse.Namespace,
    client: docker.DockerClient,
    resources: BenchResources,
    workdir: Path,
    log_path: Path,
    state: State,
) -> None:
    print("preparing images (built once, then reused by tag)...", flush=True)
    images = prepare_images(client, args.executor_image)
    counts = file_counts(args.files, args.processors)
    file_size = max(1, int(args.megabytes * MIB) // args.files)
    workload = Workload(args.processors, args.plugins, counts, file_size)
    executor_id = client.images.get(images.executor).short_id
    print(
        f"images: processor {images.processor}, plugin {images.plugin}, "
        f"blob {images.blob}, executor {images.executor} ({executor_id})"
    )
    print(describe_workload(args, workload))
    print(f"run id {resources.run_id}; executor log {log_path}", flush=True)

    templates = [
        make_template(images, args.processors, args.plugins) for _ in range(args.repeat)
    ]
    resources.template_ids.extend(t.id for t in templates)
    catalog = workdir / "catalog.yaml"
    write_catalog(catalog, templates)
    settings = state.settings = Settings(
        host="127.0.0.1",
        port=0,
        registry=str(catalog),
        merger_image=images.executor,
        network=resources.network,
        ready_timeout=READY_TIMEOUT,
        call_timeout=CALL_TIMEOUT,
        parallelism=args.parallelism,
    )
    state.server = start_server(settings, client)
    context = BenchContext(
        client,
        state.server,
        resources,
        settings,
        workload,
        log_path,
        args.baseline_poll_ms / 1000,
    )

    for index, template in enumerate(templates):
        repetition = Repetition(index, f"{resources.run_id}-s{index}")
        resources.sessions.append(repetition.session_id)
        state.repetitions.append(repetition)
        run_repetition(context, repetition, template)
        base = repetition.baseline.total if repetition.baseline else math.nan
        print(
            f"repetition {index + 1}/{args.repeat}: warm {repetition.warm:.3f} s, "
            f"start {repetition.start:.3f} s (baseline {base:.3f} s), "
            f"build {repetition.build:.3f} s (stream {repetition.stream:.3f} s, "
            f"tar {repetition.tar:.3f} s, archive "
            f"{repetition.archive_bytes / MIB:.1f} MiB, {repetition.archive_files} "
            f"files), delete {repetition.delete:.3f} s",
            flush=True,
        )

    if args.readiness_containers:
        count = args.readiness_containers
        print(f"readiness: {count} containers, one at a time", flush=True)
        state.latencies = measure_readiness(
            client, settings, resources, images.processor, count
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as error:
        print(
            f"error: no Docker engine answered ({error}); start one and check that "
            "`docker info` works",
            file=sys.stderr,
        )
        return 2

    run_id = f"bench-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{run_id}-"))
    log_path = workdir / "executor.log"
    configure_logging(log_path)
    signal.signal(signal.SIGTERM, raise_interrupt)

    print("CyanPrint executor benchmark")
    for line in describe_machine(client, run_id):
        print(line)

    resources = BenchResources(client, run_id)
    state = State()
    status = 0
    try:
        run_benchmark(args, client, resources, workdir, log_path, state)
    except KeyboardInterrupt:
        print("\ninterrupted; the figures below cover only the finished parts")
        status = 130
    except (
        BenchError,
        RuntimeError,
        docker.errors.DockerException,
        requests.RequestException,
    ) as error:
        print(f"\nerror: {error}", file=sys.stderr)
        status = 1
    finally:
        with uninterrupted():
            clean = clean_up(resources, state.server, state.settings)
    if state.repetitions or state.latencies:
        print_report(state.repetitions, state.latencies)
    print(
        f"\nother running containers on this engine at the end: "
        f"{other_running(client, run_id)}"
    )
    print(f"executor log: {log_path}")
    if status == 0 and not clean:
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
