"""Images, templates, the in-process executor and one timed repetition."""

from __future__ import annotations

import io
import math
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests
import waitress
import yaml

from orchestrator import names
from orchestrator.api.app import create_app, server_options
from orchestrator.config import Settings
from orchestrator.engine import Engine, Report, StepResult
from orchestrator.service import Executor
from tests.support.images import (
    build_executor_image,
    build_fixture_images,
    ensure_base_image,
)

from . import CALL_TIMEOUT, MIB, BenchError
from .baselines import BaselineStart, run_baseline_start, time_tar
from .cpu import CpuUse, measure_cpu
from .resources import BenchResources

DEFAULT_EXECUTOR_TAG = "cyanprint-executor:bench"
FIXTURES = ("processor", "plugin", "blob", "template")


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class Images:
    processor: str
    plugin: str
    blob: str
    template: str
    executor: str


def prepare_images(client: docker.DockerClient, executor_image: str) -> Images:
    """Build or reuse the fixture images and the executor's image."""
    base = ensure_base_image(client)
    fixtures = build_fixture_images(client, base, FIXTURES)
    if executor_image:
        try:
            client.images.get(executor_image)
        except docker.errors.ImageNotFound:
            raise BenchError(
                f"executor image {executor_image} not found; build it with "
                f"scripts/build-image.sh or leave out --executor-image"
            ) from None
    else:
        executor_image = build_executor_image(base, DEFAULT_EXECUTOR_TAG)
    return Images(
        processor=fixtures["processor"],
        plugin=fixtures["plugin"],
        blob=fixtures["blob"],
        template=fixtures["template"],
        executor=executor_image,
    )


def split_tag(tag: str) -> tuple[str, str]:
    repository, _, version = tag.rpartition(":")
    return repository, version


# ---------------------------------------------------------------- templates


@dataclass
class Template:
    """A template version whose processors and plugins all run fixture images."""

    body: dict[str, Any]
    # user/name reference -> id, in the order of the build request.
    processors: dict[str, str]
    plugins: dict[str, str]

    @property
    def id(self) -> str:
        return self.body["principal"]["id"]


def dependency(identifier: str, reference: str, image: str) -> dict[str, Any]:
    repository, tag = split_tag(image)
    return {
        "id": identifier,
        "version": 1,
        "createdAt": "2026-01-01T00:00:00Z",
        "description": reference,
        "dockerReference": repository,
        "dockerTag": tag,
    }


def make_template(images: Images, processors: int, plugins: int) -> Template:
    blob_repository, blob_tag = split_tag(images.blob)
    template_repository, template_tag = split_tag(images.template)
    processor_ids = {
        f"bench/processor-{i + 1}": str(uuid.uuid4()) for i in range(processors)
    }
    plugin_ids = {f"bench/plugin-{i + 1}": str(uuid.uuid4()) for i in range(plugins)}
    body = {
        "principal": {
            "id": str(uuid.uuid4()),
            "version": 1,
            "createdAt": "2026-01-01T00:00:00Z",
            "description": "executor benchmark template",
            "properties": {
                "blobDockerReference": blob_repository,
                "blobDockerTag": blob_tag,
                "templateDockerReference": template_repository,
                "templateDockerTag": template_tag,
            },
        },
        "template": {"id": str(uuid.uuid4()), "name": "bench"},
        "processors": [
            dependency(i, r, images.processor) for r, i in processor_ids.items()
        ],
        "plugins": [dependency(i, r, images.plugin) for r, i in plugin_ids.items()],
        "templates": [],
        "resolvers": [],
        "commands": [],
    }
    return Template(body, processor_ids, plugin_ids)


def write_catalog(path: Path, templates: list[Template]) -> None:
    """Write a catalog where version N of each reference is template N's id."""
    entries: dict[str, dict[str, dict[int, str]]] = {"processors": {}, "plugins": {}}
    for number, template in enumerate(templates, start=1):
        for section, ids in (
            ("processors", template.processors),
            ("plugins", template.plugins),
        ):
            for reference, identifier in ids.items():
                entries[section].setdefault(reference, {})[number] = identifier
    path.write_text(yaml.safe_dump(entries))


def file_counts(files: int, processors: int) -> list[int]:
    """Split `files` over the processors; the first ones take the remainder."""
    share, extra = divmod(files, processors)
    return [share + (1 if i < extra else 0) for i in range(processors)]


def build_body(
    template: Template, merger_id: str, counts: list[int], file_size: int
) -> dict[str, Any]:
    processors = [
        {
            "name": reference,
            "config": {
                "bulk": {
                    "count": count,
                    "size": file_size,
                    # Separate folders, so the merge has no conflicts to resolve.
                    "dir": f"bulk/processor-{number}",
                }
            },
            "files": [],
        }
        for number, (reference, count) in enumerate(
            zip(template.processors, counts, strict=True), start=1
        )
    ]
    plugins = [
        {
            "name": reference,
            "config": {
                "files": {f"plugins/plugin-{number}.txt": f"written by {reference}\n"}
            },
        }
        for number, reference in enumerate(template.plugins, start=1)
    ]
    return {
        "template": template.body,
        "cyan": {"processors": processors, "plugins": plugins},
        "merger_id": merger_id,
    }


def start_body(template: Template, session_id: str, merger_id: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "template": template.body,
        "write_vol_reference": {"cyan_id": template.id, "session_id": session_id},
        "merger": {"merger_id": merger_id},
    }


# ---------------------------------------------------------------- executor


@dataclass
class PlanRecord:
    """One applied plan: its document, report and when each step finished."""

    document: dict[str, Any]
    report: Report
    started: float
    finished: float
    step_finished: dict[str, float]

    @property
    def session(self) -> str:
        return self.document.get("session", "")

    @property
    def name(self) -> str:
        return self.document["name"]


class RecordingEngine(Engine):
    """An engine that keeps every applied plan, for the profile and the clean-up."""

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        super().__init__(client, settings)
        self.records: list[PlanRecord] = []
        self._active = 0
        self._idle = threading.Condition()

    def apply(self, plan: dict[str, Any], listener=None) -> Report:
        step_finished: dict[str, float] = {}

        def note(result: StepResult) -> None:
            step_finished[result.name] = time.monotonic()
            if listener is not None:
                listener(result)

        with self._idle:
            self._active += 1
        started = time.monotonic()
        try:
            report = super().apply(plan, note)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()
        self.records.append(
            PlanRecord(plan, report, started, time.monotonic(), step_finished)
        )
        return report

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no plan is being applied; return False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    def find(self, name: str, session: str) -> PlanRecord:
        for record in reversed(self.records):
            if record.name == name and record.session == session:
                return record
        raise BenchError(f"no {name} plan was recorded for session {session}")


class BenchExecutor(Executor):
    def __init__(self, settings: Settings, client: docker.DockerClient) -> None:
        super().__init__(settings, client)
        self.recorder = RecordingEngine(client, settings)
        # Executor creates its engine lazily; setting it here keeps every
        # other part of the service unchanged.
        self._engine = self.recorder


@dataclass
class Server:
    url: str
    executor: BenchExecutor
    wsgi: Any
    thread: threading.Thread

    def close(self) -> None:
        self.wsgi.close()


def start_server(settings: Settings, client: docker.DockerClient) -> Server:
    executor = BenchExecutor(settings, client)
    # The same waitress options as `cyanprint-executor serve`, on loopback.
    wsgi = waitress.create_server(
        create_app(executor), host="127.0.0.1", port=0, **server_options(settings)
    )
    thread = threading.Thread(target=wsgi.run, name="executor-api", daemon=True)
    thread.start()
    return Server(f"http://127.0.0.1:{wsgi.effective_port}", executor, wsgi, thread)


def http_session() -> requests.Session:
    session = requests.Session()
    # The executor is on loopback, so a proxy from the environment must not apply.
    session.trust_env = False
    return session


def expect_ok(response: requests.Response, request: str, log_path: Path) -> None:
    if response.status_code != 200:
        raise BenchError(
            f"{request} failed with HTTP {response.status_code}: "
            f"{response.text[:2000]}\nThe executor's log is {log_path}."
        )


# ---------------------------------------------------------------- repetitions


@dataclass
class Repetition:
    """Timings of one repetition in seconds; NaN marks a phase that did not run."""

    index: int
    session_id: str
    warm: float = math.nan
    start: float = math.nan
    build: float = math.nan
    headers: float = math.nan
    stream: float = math.nan
    archive_bytes: int = 0
    archive_files: int = 0
    tar: float = math.nan
    delete: float = math.nan
    baseline: BaselineStart | None = None
    start_cpu: CpuUse = field(default_factory=CpuUse)
    start_record: PlanRecord | None = None
    build_record: PlanRecord | None = None


def timed(action: Callable[[], requests.Response]) -> tuple[requests.Response, float]:
    began = time.monotonic()
    response = action()
    return response, time.monotonic() - began


def count_archive_files(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        return sum(1 for member in archive if member.isfile())


@dataclass
class Workload:
    processors: int
    plugins: int
    counts: list[int]
    file_size: int

    @property
    def files(self) -> int:
        return sum(self.counts)

    @property
    def total_bytes(self) -> int:
        return self.files * self.file_size


def stream_build(
    repetition: Repetition,
    http: requests.Session,
    url: str,
    body: dict[str, Any],
    log_path: Path,
) -> bytes:
    """Send the build request, time it and its archive stream; return the archive."""
    session_id = repetition.session_id
    began = time.monotonic()
    response = http.post(
        f"{url}/executor/{session_id}",
        json=body,
        stream=True,
        timeout=(10, CALL_TIMEOUT),
    )
    headers_arrived = time.monotonic()
    expect_ok(response, f"build of session {session_id}", log_path)
    archive = bytearray()
    # The archive is held in memory so that reading it costs no disk writes
    # inside the timed stream; it is checked after the clock stops.
    for chunk in response.raw.stream(MIB, decode_content=False):
        archive += chunk
    ended = time.monotonic()
    response.close()
    repetition.headers = headers_arrived - began
    repetition.stream = ended - headers_arrived
    repetition.build = ended - began
    repetition.archive_bytes = len(archive)
    return bytes(archive)


@dataclass
class BenchContext:
    """State shared by all repetitions: the Docker client, server and workload."""

    client: docker.DockerClient
    server: Server
    resources: BenchResources
    settings: Settings
    workload: Workload
    log_path: Path
    # Seconds between two GET / polls of each container in the start baseline.
    baseline_poll_interval: float


def run_repetition(
    context: BenchContext, repetition: Repetition, template: Template
) -> None:
    """Warm, start, build and delete one session, with the baselines beside them."""
    session_id = repetition.session_id
    merger_id = str(uuid.uuid4())
    http = http_session()
    server, client, log_path = context.server, context.client, context.log_path
    workload = context.workload
    recorder = server.executor.recorder

    response, repetition.warm = timed(
        lambda: http.post(
            f"{server.url}/executor/{session_id}/warm",
            json=template.body,
            timeout=CALL_TIMEOUT,
        )
    )
    expect_ok(response, f"warm of session {session_id}", log_path)

    start_request = start_body(template, session_id, merger_id)
    start_plan = server.executor.plan_start(start_request).document
    session_volume = names.session_volume(template.id, session_id)

    def baseline() -> None:
        repetition.baseline = run_baseline_start(
            client,
            context.resources,
            start_plan,
            session_volume,
            repetition.index,
            context.settings.parallelism,
            context.baseline_poll_interval,
        )

    # The order alternates, so neither side always runs on the caches the
    # other one just warmed.
    if repetition.index % 2 == 1:
        baseline()

    with measure_cpu() as repetition.start_cpu:
        response, repetition.start = timed(
            lambda: http.post(
                f"{server.url}/executor", json=start_request, timeout=CALL_TIMEOUT
            )
        )
    expect_ok(response, f"start of session {session_id}", log_path)
    repetition.start_record = recorder.find("start", session_id)

    body = build_body(template, merger_id, workload.counts, workload.file_size)
    archive = stream_build(repetition, http, server.url, body, log_path)
    repetition.build_record = recorder.find("build", session_id)

    expected = workload.files + workload.plugins
    repetition.archive_files = count_archive_files(archive)
    if repetition.archive_files != expected:
        raise BenchError(
            f"the archive of session {session_id} has {repetition.archive_files} "
            f"files, expected {expected}; the executor's log is {log_path}"
        )

    # The archive step streams the merge output after the plugins changed it
    # in place, so this is the folder whose bytes were just streamed.
    merged = repetition.build_record.report.output("merge")["directory"]
    merger = names.session_container("merger", merger_id, session_id)
    repetition.tar = time_tar(client, merger, merged)

    response, repetition.delete = timed(
        lambda: http.delete(f"{server.url}/executor/{session_id}", timeout=CALL_TIMEOUT)
    )
    expect_ok(response, f"delete of session {session_id}", log_path)

    if repetition.index % 2 == 0:
        baseline()
