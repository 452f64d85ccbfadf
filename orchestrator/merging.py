"""Merge processor outputs: folders overlaid in order, conflicts sent to resolvers.

A path written by one layer is copied as it is. A regular file written by
several layers is a conflict: when exactly one resolver's globs match its path,
that resolver decides the content and the file keeps the mode of the last
version; with no match the last layer wins; with several matches the merge
fails, naming the path and the resolvers.

A conflict in which any version is not UTF-8 text, or is a symbolic link, is
never sent to a resolver, because resolvers exchange file contents as JSON
text and would corrupt it: the last layer's version is kept byte for byte and
the merge reports a warning naming the path.

Files that only one layer wrote are moved, not copied, so a merge consumes
its layers: they are scratch folders of a single build.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wcmatch import glob as wcglob

from .errors import ExecutorError
from .threads import worker_pool

GLOB_FLAGS = wcglob.GLOBSTAR | wcglob.DOTGLOB


@dataclass(frozen=True)
class Layer:
    directory: Path
    # Processor reference or id, passed to resolvers as the version's origin.
    origin: str = ""


@dataclass(frozen=True)
class ResolverSpec:
    id: str
    files: list[str]
    config: dict[str, Any] | None = None
    host: str = ""
    port: int = 5553

    def matches(self, path: str) -> bool:
        return any(
            wcglob.globmatch(path, pattern, flags=GLOB_FLAGS) for pattern in self.files
        )


@dataclass
class MergeResult:
    directory: Path
    files: int = 0
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "files": self.files,
            "conflicts": self.conflicts,
            "warnings": self.warnings,
        }


class MergeConflict(ExecutorError):
    """Conflicts that cannot be decided: several resolvers match one path."""


# Sends (resolver, request body) to a resolver and returns its JSON answer.
ResolveFunction = Callable[[ResolverSpec, dict[str, Any]], dict[str, Any]]


def scan(root: Path) -> tuple[list[str], list[str]]:
    """List the folders and the files (symbolic links included) below `root`."""
    folders: list[str] = []
    files: list[str] = []
    for current, dirnames, filenames in os.walk(root):
        relative = Path(current).relative_to(root)
        for name in dirnames:
            full = Path(current, name)
            target = files if full.is_symlink() else folders
            target.append((relative / name).as_posix())
        files.extend((relative / name).as_posix() for name in filenames)
    return folders, files


def _is_text(path: Path) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _place(source: Path, target: Path, move: bool) -> None:
    """Put one file or link over whatever the target path holds.

    With `move`, the file is renamed into place, which is far cheaper than a
    copy when both folders are on one volume; across file systems it is copied.
    """
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if move:
        try:
            os.rename(source, target)
            return
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
    if source.is_symlink():
        target.symlink_to(os.readlink(source))
    else:
        shutil.copy2(source, target)


def _make_folder(source: Path, target: Path) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    target.mkdir(parents=True, exist_ok=True)
    shutil.copystat(source, target)


class Merger:
    """Merges layers into an output folder; `resolve` reaches resolver containers."""

    def __init__(self, resolve: ResolveFunction, parallelism: int = 4) -> None:
        self.resolve = resolve
        self.parallelism = parallelism

    def merge(
        self, layers: list[Layer], output: Path, resolvers: list[ResolverSpec]
    ) -> MergeResult:
        scans = [scan(layer.directory) for layer in layers]
        writers: dict[str, list[int]] = {}
        for index, (_, files) in enumerate(scans):
            for path in files:
                writers.setdefault(path, []).append(index)
        conflicts = {
            path: owners for path, owners in writers.items() if len(owners) > 1
        }
        decisions = self._decide(conflicts, resolvers)
        if output.exists():
            shutil.rmtree(output)
        output.mkdir(parents=True)
        for layer, (folders, files) in zip(layers, scans, strict=True):
            for folder in folders:
                _make_folder(layer.directory / folder, output / folder)
            for path in files:
                # A file only one layer wrote is moved; conflicting versions are
                # copied, because resolvers read every version afterwards.
                single = len(writers[path]) == 1
                _place(layer.directory / path, output / path, move=single)
        result = MergeResult(output, files=sum(1 for _ in _files_below(output)))
        self._resolve_all(layers, output, conflicts, decisions, result)
        return result

    def _decide(
        self, conflicts: dict[str, list[int]], resolvers: list[ResolverSpec]
    ) -> dict[str, ResolverSpec | None]:
        decisions: dict[str, ResolverSpec | None] = {}
        ambiguous: list[str] = []
        for path in sorted(conflicts):
            matching = [resolver for resolver in resolvers if resolver.matches(path)]
            if len(matching) > 1:
                ids = ", ".join(resolver.id for resolver in matching)
                ambiguous.append(
                    f"{path}: several resolvers match ({ids}); "
                    f"change the resolvers' file globs so that at most one matches"
                )
            decisions[path] = matching[0] if len(matching) == 1 else None
        if ambiguous:
            raise MergeConflict(f"cannot merge {ambiguous[0]}", errors=ambiguous)
        return decisions

    def _resolve_all(
        self,
        layers: list[Layer],
        output: Path,
        conflicts: dict[str, list[int]],
        decisions: dict[str, ResolverSpec | None],
        result: MergeResult,
    ) -> None:
        jobs = []
        for path, owners in sorted(conflicts.items()):
            resolver = decisions[path]
            record = {
                "path": path,
                "layers": owners,
                "resolver": resolver.id if resolver else None,
            }
            result.conflicts.append(record)
            if resolver is None:
                continue
            versions = [layers[index].directory / path for index in owners]
            if not all(_is_text(version) for version in versions):
                record["resolver"] = None
                reason = "not UTF-8 text in every version"
                if any(version.is_symlink() for version in versions):
                    reason = "a symbolic link in some version"
                result.warnings.append(
                    f"{path}: {reason}, so resolver {resolver.id} was skipped "
                    f"and the last version was kept"
                )
                continue
            jobs.append((path, owners, resolver))
        if not jobs:
            return
        errors: list[str] = []
        with worker_pool(max(1, min(self.parallelism, len(jobs))), "resolve") as pool:
            futures = [
                (
                    path,
                    pool.submit(
                        self._resolve_one, layers, output, path, owners, resolver
                    ),
                )
                for path, owners, resolver in jobs
            ]
            for path, future in futures:
                error = future.exception()
                if error is not None:
                    errors.append(f"{path}: {error}")
        if errors:
            raise ExecutorError(f"resolving {errors[0]}", errors=errors)

    def _resolve_one(
        self,
        layers: list[Layer],
        output: Path,
        path: str,
        owners: list[int],
        resolver: ResolverSpec,
    ) -> None:
        files = [
            {
                "path": path,
                "content": (layers[index].directory / path).read_text(encoding="utf-8"),
                "origin": {"template": layers[index].origin, "layer": index},
            }
            for index in owners
        ]
        answer = self.resolve(
            resolver, {"config": resolver.config or {}, "files": files}
        )
        if answer.get("path") != path:
            raise ExecutorError(
                f"resolver {resolver.id} responded with path {answer.get('path')!r} "
                f"instead of {path!r}"
            )
        content = answer.get("content")
        if not isinstance(content, str):
            raise ExecutorError(
                f"resolver {resolver.id} responded without text content"
            )
        target = output / path
        mode = stat.S_IMODE(target.stat().st_mode)
        target.write_text(content, encoding="utf-8")
        target.chmod(mode)


def _files_below(root: Path):
    for _, _, filenames in os.walk(root):
        yield from filenames
