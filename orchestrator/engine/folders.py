"""Pack a local folder into a tar archive without following symbolic links.

A folder that must stay inside an allowed root is checked once when a request
arrives, but a symbolic link swapped in after that check would let a copy read
from anywhere. Here every path component is opened relative to the one above
it with O_NOFOLLOW, so what is read is what lies inside the root at the moment
it is read, whatever changes in between.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tarfile
import tempfile
from typing import IO

from ..errors import StepFailed

log = logging.getLogger(__name__)

# Archives up to this size stay in memory; larger ones spill to a temporary file.
SPOOL_BYTES = 32 * 1024 * 1024
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def open_inside(source: str, within: str) -> int:
    """Open folder `source` as a descriptor, every component inside `within`.

    `within` itself is trusted, since it comes from the executor's own
    configuration. Below it, no component may be a symbolic link when opened.
    """
    root = os.path.realpath(within)
    real = os.path.realpath(source)
    if os.path.commonpath([root, real]) != root:
        raise StepFailed(
            f"folder {source} resolves to {real}, which is outside {root}; "
            f"give a folder inside {root}",
            resource=source,
        )
    try:
        descriptor = os.open(root, DIRECTORY_FLAGS)
    except OSError as error:
        raise StepFailed(
            f"cannot open folder {root}: {error.strerror}", resource=source
        ) from error
    for part in os.path.relpath(real, root).split(os.sep):
        if part == ".":
            continue
        try:
            child = os.open(part, DIRECTORY_FLAGS, dir_fd=descriptor)
        except OSError as error:
            os.close(descriptor)
            raise StepFailed(
                f"cannot open folder {real}: {part!r} is {describe_error(error)}; "
                f"give an existing folder inside {root}",
                resource=source,
            ) from error
        os.close(descriptor)
        descriptor = child
    return descriptor


def describe_error(error: OSError) -> str:
    """Describe why a path component could not be opened as a folder."""
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return "not a folder (or a symbolic link, which is not followed)"
    if error.errno == errno.ENOENT:
        return "missing"
    return f"unreadable ({error.strerror})"


def pack(source: str, within: str) -> IO[bytes]:
    """Return a rewound tar of the contents of `source`, read inside `within`.

    Files keep their mode, owner and modification time. Symbolic links are
    stored as links and never followed. Sockets, pipes and devices are left
    out with a warning.
    """
    descriptor = open_inside(source, within)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    try:
        with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add_folder(tar, descriptor, "", source)
    except OSError as error:
        spool.close()
        raise StepFailed(
            f"reading folder {source} failed: {error}", resource=source
        ) from error
    except BaseException:
        spool.close()
        raise
    finally:
        os.close(descriptor)
    spool.seek(0)
    return spool


def _info(name: str, status: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(status.st_mode)
    info.uid, info.gid = status.st_uid, status.st_gid
    info.mtime = int(status.st_mtime)
    return info


def _add_folder(tar: tarfile.TarFile, folder: int, prefix: str, source: str) -> None:
    for entry in sorted(os.listdir(folder)):
        name = prefix + entry
        status = os.stat(entry, dir_fd=folder, follow_symlinks=False)
        if stat.S_ISDIR(status.st_mode):
            child = os.open(entry, DIRECTORY_FLAGS, dir_fd=folder)
            try:
                info = _info(name, os.fstat(child))
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                _add_folder(tar, child, name + "/", source)
            finally:
                os.close(child)
        elif stat.S_ISLNK(status.st_mode):
            info = _info(name, status)
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(entry, dir_fd=folder)
            tar.addfile(info)
        elif stat.S_ISREG(status.st_mode):
            _add_file(tar, folder, entry, name)
        else:
            log.warning(
                "left %s out of the copy of %s: not a file, folder or link",
                name,
                source,
            )


def _add_file(tar: tarfile.TarFile, folder: int, entry: str, name: str) -> None:
    handle = os.open(entry, FILE_FLAGS, dir_fd=folder)
    with os.fdopen(handle, "rb") as file:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise OSError(f"{name} changed into something other than a file")
        info = _info(name, status)
        info.size = status.st_size
        tar.addfile(info, file)
