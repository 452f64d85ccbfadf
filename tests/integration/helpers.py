"""Request bodies, archive readers and command runs shared by the integration tests."""

from __future__ import annotations

import io
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BLOB_FILES = Path(__file__).parents[1] / "fixtures" / "images" / "blob" / "template"

# Globs that select the blob's Markdown files for rendering and its shell
# scripts for copying; the SDK needs a non-empty exclude list.
TEMPLATE_GLOBS = [
    {"root": None, "glob": "**/*.md", "exclude": ["**/*.tmp"], "type": "template"},
    {"root": None, "glob": "**/*.sh", "exclude": ["**/*.tmp"], "type": "copy"},
]


def expected_blob_output(variables: dict[str, str]) -> dict[str, tuple[bytes, int]]:
    """Return path -> (content, mode) that the processor fixture makes of the blob."""
    expected: dict[str, tuple[bytes, int]] = {}
    for path in sorted(BLOB_FILES.rglob("*")):
        if not path.is_file():
            continue
        relative = path.relative_to(BLOB_FILES).as_posix()
        if relative.endswith(".md"):
            text = path.read_text()
            for key, value in variables.items():
                text = text.replace("{{" + key + "}}", value)
            expected[relative] = (text.encode(), 0o644)
        elif relative.endswith(".sh"):
            expected[relative] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return expected


def read_archive(data: bytes) -> tuple[dict[str, tuple[bytes, int]], set[str]]:
    """Return the files (content, mode) and the folder names of a tar.gz."""
    files: dict[str, tuple[bytes, int]] = {}
    folders: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            assert not member.name.startswith(("/", "./")), member.name
            if member.isdir():
                folders.add(member.name)
            elif member.isfile():
                content = tar.extractfile(member).read()
                files[member.name] = (content, member.mode & 0o777)
    return files, folders


def build_body(
    template: dict, merger_id: str, processors: list[dict], plugins: list[dict]
):
    return {
        "template": template,
        "cyan": {"processors": processors, "plugins": plugins},
        "merger_id": merger_id,
    }


def start_body(template: dict, session_id: str, merger_id: str) -> dict:
    return {
        "session_id": session_id,
        "template": template,
        "write_vol_reference": {
            "cyan_id": template["principal"]["id"],
            "session_id": session_id,
        },
        "merger": {"merger_id": merger_id},
    }


@dataclass
class Interrupted:
    """The outcome of an `apply` sent Ctrl-C, and the seconds it ran on after it."""

    code: int
    stdout: str
    stderr: str
    seconds: float


def apply_and_interrupt(
    plan: Path,
    ready: Callable[[], None],
    signals: int = 1,
    gap: float = 0.01,
    timeout: float = 60,
) -> Interrupted:
    """Run `apply` on `plan`, then send Ctrl-C once `ready` returns.

    With `signals` above 1, the further Ctrl-C follow `gap` seconds apart.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "apply", str(plan)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready()
        interrupted_at = time.monotonic()
        for _ in range(signals):
            process.send_signal(signal.SIGINT)
            time.sleep(gap)
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        process.kill()
    seconds = time.monotonic() - interrupted_at
    return Interrupted(process.returncode, stdout, stderr, seconds)


def wait_for_container(client, name: str, seconds: float = 60) -> None:
    """Wait until the container named exactly `name` runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.containers.list(filters={"name": f"^{name}$"}):
            return
        time.sleep(0.1)
    raise AssertionError(f"container {name} did not start within {seconds} s")
