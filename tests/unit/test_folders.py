"""Packing a local folder for a volume fill: contents kept, links never followed."""

import os
import tarfile

import pytest

from orchestrator.engine.folders import pack
from orchestrator.errors import StepFailed


def members(archive) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=archive) as tar:
        return {member.name: member for member in tar.getmembers()}


def read(archive, name: str) -> bytes:
    archive.seek(0)
    with tarfile.open(fileobj=archive) as tar:
        return tar.extractfile(name).read()


@pytest.fixture
def root(tmp_path):
    template = tmp_path / "root" / "template"
    (template / "src").mkdir(parents=True)
    (template / "src" / "main.py").write_text("print('hi')\n")
    (template / "run.sh").write_text("#!/bin/sh\n")
    (template / "run.sh").chmod(0o750)
    (template / "link").symlink_to("src/main.py")
    return tmp_path / "root"


def test_pack_keeps_files_modes_and_links(root):
    archive = pack(str(root / "template"), str(root))
    found = members(archive)

    assert sorted(found) == ["link", "run.sh", "src", "src/main.py"]
    assert found["run.sh"].mode == 0o750
    assert found["src"].isdir()
    assert found["link"].issym()
    assert found["link"].linkname == "src/main.py"
    assert read(archive, "src/main.py") == b"print('hi')\n"


def test_pack_rejects_folder_outside_root(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(StepFailed, match="outside"):
        pack(str(outside), str(root))


def test_pack_rejects_swapped_symlink_component(root, tmp_path):
    """A path that leads outside the root through a link is rejected."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    swapped = root / "swapped"
    swapped.symlink_to(outside)
    with pytest.raises(StepFailed, match="outside"):
        pack(str(swapped), str(root))


def test_pack_never_follows_links_below_root(root, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "inner").symlink_to(outside)
    # realpath would resolve the link, so pretend it was checked before the swap.
    monkeypatch.setattr(
        os.path, "realpath", lambda path: os.path.normpath(os.path.abspath(path))
    )
    with pytest.raises(StepFailed, match="symbolic link"):
        pack(str(root / "inner"), str(root))


def test_pack_missing_folder_names_it(root):
    with pytest.raises(StepFailed, match="'absent' is missing"):
        pack(str(root / "absent"), str(root))


def test_pack_leaves_out_pipes(root):
    os.mkfifo(root / "template" / "pipe")
    archive = pack(str(root / "template"), str(root))
    assert "pipe" not in members(archive)
