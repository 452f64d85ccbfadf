"""Build the Docker images that the integration tests run, reusing them by tag.

Fixture images are tagged with a hash of everything that goes into them (their
folder under tests/fixtures/images, the shared SDK requirements, the busybox
binary, build arguments and the base image's id). A tag that already exists
is reused, so only the first run after a change builds anything.

Tags of earlier versions are left in place, because a test session in
another checkout may still use them. They share all but their last layers,
so they cost little disk; `docker images 'cyanprint-test/*'` lists them.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from .containers import command_output

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO_ROOT / "tests" / "fixtures" / "images"
SDK_REQUIREMENTS = IMAGES_DIR / "requirements-sdk.txt"
WHEEL_CACHE = REPO_ROOT / ".cache" / "wheels"

BASE_IMAGE = "cyanprint-test/python-base:bookworm"
EXECUTOR_TEST_TAG = "cyanprint-executor:test"
FIXTURE_REPOSITORY_PREFIX = "cyanprint-test/"
FIXTURE_LABEL = "cyanprint.test.fixture"

# Part of every fixture hash. Bump it when the way contexts are assembled
# changes, so images built the old way are not reused.
CONTEXT_FORMAT = "1"
BUILD_TIMEOUT_SECONDS = 900
OUTPUT_TAIL_LINES = 60


@dataclass(frozen=True)
class FixtureImage:
    """One image built from a folder under tests/fixtures/images."""

    name: str
    folder: str
    uses_sdk: bool = False
    uses_busybox: bool = False
    from_python_base: bool = True
    build_args: dict[str, str] = field(default_factory=dict)

    @property
    def repository(self) -> str:
        return FIXTURE_REPOSITORY_PREFIX + self.name


FIXTURE_IMAGES = (
    FixtureImage("processor", "processor", uses_sdk=True),
    FixtureImage("plugin", "plugin", uses_sdk=True),
    FixtureImage("resolver", "resolver", uses_sdk=True),
    FixtureImage("template", "template", uses_sdk=True),
    FixtureImage("blob", "blob", uses_busybox=True, from_python_base=False),
    FixtureImage("fault-500", "fault", build_args={"MODE": "500"}),
    FixtureImage("fault-never-ready", "fault", build_args={"MODE": "never-ready"}),
    FixtureImage("fault-exit", "fault", build_args={"MODE": "exit"}),
    FixtureImage("fault-bad-json", "fault", build_args={"MODE": "bad-json"}),
    FixtureImage("fault-wrong-path", "fault", build_args={"MODE": "wrong-path"}),
    FixtureImage("fault-slow", "fault", build_args={"MODE": "slow"}),
    FixtureImage("fault-big", "fault", build_args={"MODE": "big"}),
    FixtureImage("fault-trickle", "fault", build_args={"MODE": "trickle"}),
)
FIXTURE_NAMES = tuple(fixture.name for fixture in FIXTURE_IMAGES)


def ensure_base_image(client: docker.DockerClient, tag: str = BASE_IMAGE) -> str:
    """Build the Debian Python base image unless it exists, and return its tag."""
    if not _image_exists(client, tag):
        _run_script(["scripts/build-base-image.sh", "--tag", tag])
    return tag


def build_executor_image(base: str, tag: str = EXECUTOR_TEST_TAG) -> str:
    """Build the executor's image on top of base, and return its tag.

    It is rebuilt on every call because the code under test changes, but
    Docker's layer cache skips the dependency layer when only code changed.
    """
    client = docker.from_env()
    try:
        previous = client.images.get(tag)
    except docker.errors.ImageNotFound:
        previous = None
    # The wheels must be built by an interpreter that has pip and the base's
    # Python version. The interpreter running the tests is known to have pip.
    _run_script(
        ["scripts/build-image.sh", "--base", base, "--tag", tag],
        env={"PYTHON": sys.executable},
    )
    if previous is not None:
        _remove_if_untagged(client, previous.id)
    return tag


def _remove_if_untagged(client: docker.DockerClient, image_id: str) -> None:
    """Remove an image that a rebuild left without tags, unless it is in use."""
    try:
        if not client.images.get(image_id).tags:
            client.images.remove(image_id)
    except (docker.errors.ImageNotFound, docker.errors.APIError):
        pass


def build_fixture_images(
    client: docker.DockerClient, base: str, names: tuple[str, ...] = FIXTURE_NAMES
) -> dict[str, str]:
    """Build the named fixture images if missing, and return name -> local tag."""
    unknown = sorted(set(names) - set(FIXTURE_NAMES))
    if unknown:
        raise ValueError(f"unknown fixture images {unknown}; known: {FIXTURE_NAMES}")

    base_id = client.images.get(base).id
    tags = {}
    for fixture in FIXTURE_IMAGES:
        if fixture.name not in names:
            continue
        tag = f"{fixture.repository}:{_fixture_digest(fixture, base_id)}"
        if not _image_exists(client, tag):
            _build_fixture(client, fixture, base, tag)
        tags[fixture.name] = tag
    return tags


def _image_exists(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _run_script(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-OUTPUT_TAIL_LINES:])
        raise RuntimeError(
            f"{' '.join(command)} failed with exit code {result.returncode}; "
            f"last lines of its output:\n{tail}"
        )


def _context_sources(fixture: FixtureImage) -> list[tuple[str, Path]]:
    """List (path in build context, file on disk) for everything but wheels."""
    folder = IMAGES_DIR / fixture.folder
    sources = [
        (path.relative_to(folder).as_posix(), path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    if fixture.uses_sdk:
        sources.append(("requirements.txt", SDK_REQUIREMENTS))
    if fixture.uses_busybox:
        sources.append(("busybox", _static_busybox()))
    return sources


def _fixture_digest(fixture: FixtureImage, base_id: str) -> str:
    # The wheels are left out: requirements-sdk.txt pins every version, and
    # the base id fixes the Python they are downloaded for.
    digest = hashlib.sha256()
    digest.update(f"format={CONTEXT_FORMAT}\n".encode())
    if fixture.from_python_base:
        digest.update(f"base={base_id}\n".encode())
    for key, value in sorted(fixture.build_args.items()):
        digest.update(f"arg {key}={value}\n".encode())
    for name, path in _context_sources(fixture):
        # Only the executable bit is hashed because checkouts differ in umask.
        executable = os.access(path, os.X_OK)
        digest.update(f"file {name} {executable} {path.stat().st_size}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _build_fixture(
    client: docker.DockerClient, fixture: FixtureImage, base: str, tag: str
) -> None:
    build_args = dict(fixture.build_args)
    if fixture.from_python_base:
        build_args["BASE_IMAGE"] = base

    with tempfile.TemporaryDirectory(prefix="cyanprint-test-context-") as context:
        for name, path in _context_sources(fixture):
            target = Path(context, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if fixture.uses_sdk:
            shutil.copytree(_sdk_wheels(client, base), Path(context, "wheels"))

        try:
            client.images.build(
                path=context,
                tag=tag,
                buildargs=build_args,
                labels={FIXTURE_LABEL: fixture.name},
                rm=True,
                forcerm=True,
                timeout=BUILD_TIMEOUT_SECONDS,
            )
        except docker.errors.BuildError as error:
            lines = [
                entry.get("stream", entry.get("error", "")) for entry in error.build_log
            ]
            tail = "".join(lines).splitlines()[-OUTPUT_TAIL_LINES:]
            raise RuntimeError(
                f"building fixture image {tag} from {IMAGES_DIR / fixture.folder} "
                f"failed: {error.msg}\n" + "\n".join(tail)
            ) from error


def _image_python_version(client: docker.DockerClient, image: str) -> str:
    output = command_output(
        client,
        image,
        ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        name=f"cyanprint-test-pyversion-{uuid.uuid4().hex[:8]}",
    )
    return output.strip()


@functools.cache
def _sdk_wheels(client: docker.DockerClient, base: str) -> Path:
    """Download the SDK's wheels for the base image's Python and CPU, once."""
    python_version = _image_python_version(client, base)
    abi = "cp" + python_version.replace(".", "")
    machine = client.info()["Architecture"]
    destination = WHEEL_CACHE / f"sdk-{abi}-{machine}"
    destination.mkdir(parents=True, exist_ok=True)

    # Wheels are picked by the image's Python and platform, not the host's.
    target = [
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--abi",
        abi,
    ]
    for platform in ("manylinux_2_28", "manylinux_2_17", "manylinux2014", "manylinux1"):
        target += ["--platform", f"{platform}_{machine}"]
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(destination),
        "--find-links",
        str(destination),
        "--requirement",
        str(SDK_REQUIREMENTS),
        *target,
    ]
    # Only wheel locations given here count, not a find-links from the environment.
    env = {key: value for key, value in os.environ.items() if key != "PIP_FIND_LINKS"}
    # The cache is tried alone first, so a warm run needs no package index.
    offline = subprocess.run(
        [*command, "--no-index"], env=env, capture_output=True, text=True
    )
    if offline.returncode != 0:
        online = subprocess.run(command, env=env, capture_output=True, text=True)
        if online.returncode != 0:
            raise RuntimeError(
                f"downloading the SDK wheels for Python {python_version} on {machine} "
                f"into {destination} failed; check that PyPI is reachable.\n"
                f"{online.stderr}"
            )
    return destination


def _static_busybox() -> Path:
    """Find a statically linked busybox, which the FROM-scratch blob image needs."""
    found = shutil.which("busybox")
    path = Path(found) if found else Path("/bin/busybox")
    if not path.is_file() or not _is_static_elf(path):
        raise RuntimeError(
            f"no statically linked busybox at {path}; install one with "
            "'apt-get install -y busybox-static'"
        )
    return path


def _is_static_elf(path: Path) -> bool:
    """Tell whether an ELF file has no program interpreter (PT_INTERP)."""
    with open(path, "rb") as file:
        header = file.read(64)
        if header[:4] != b"\x7fELF":
            return False
        order = "<" if header[5] == 1 else ">"
        if header[4] == 2:  # 64-bit
            (table_offset,) = struct.unpack_from(order + "Q", header, 0x20)
            entry_size, entry_count = struct.unpack_from(order + "HH", header, 0x36)
        else:
            (table_offset,) = struct.unpack_from(order + "I", header, 0x1C)
            entry_size, entry_count = struct.unpack_from(order + "HH", header, 0x2A)
        file.seek(table_offset)
        for _ in range(entry_count):
            (segment_type,) = struct.unpack_from(order + "I", file.read(entry_size))
            if segment_type == 3:  # PT_INTERP: needs a dynamic loader
                return False
    return True
