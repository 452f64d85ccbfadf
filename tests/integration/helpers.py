"""Request bodies and archive readers shared by the integration tests."""

from __future__ import annotations

import io
import stat
import tarfile
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
