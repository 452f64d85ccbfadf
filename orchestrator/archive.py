"""Stream a folder as tar.gz without holding the archive in memory."""

from __future__ import annotations

import gzip
import os
import queue
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

from .threads import start_thread

CHUNK_SIZE = 256 * 1024
# At most this many chunks wait for the reader, which bounds memory use.
QUEUE_CHUNKS = 16
# The level `gzip` and `tar czf` use by default.
COMPRESS_LEVEL = 6

_END = object()


class _QueueWriter:
    """A file-like sink that hands fixed-size chunks to a bounded queue."""

    def __init__(self, chunks: queue.Queue, cancelled: threading.Event) -> None:
        self.chunks = chunks
        self.cancelled = cancelled
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) >= CHUNK_SIZE:
            self._put(bytes(self.buffer[:CHUNK_SIZE]))
            del self.buffer[:CHUNK_SIZE]
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()

    def _put(self, chunk: object) -> None:
        while not self.cancelled.is_set():
            try:
                self.chunks.put(chunk, timeout=0.5)
                return
            except queue.Full:
                continue
        raise BrokenPipeError("the reader of the archive stopped")


def entries(root: Path) -> Iterator[tuple[Path, str]]:
    """List every folder, file and link below `root` with its archive name, sorted."""
    for current, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(current)
        for name in sorted(dirnames + filenames):
            full = base / name
            yield full, full.relative_to(root).as_posix()


def write_tar_gz(root: Path, sink) -> None:
    with gzip.GzipFile(
        fileobj=sink, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0
    ) as zipped:
        with tarfile.open(fileobj=zipped, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for full, name in entries(root):
                tar.add(full, arcname=name, recursive=False)


def stream_tar_gz(root: Path) -> Iterator[bytes]:
    """Yield the tar.gz of `root` chunk by chunk; paths are relative, modes kept."""
    chunks: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    cancelled = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        writer = _QueueWriter(chunks, cancelled)
        try:
            write_tar_gz(root, writer)
            writer.flush()
        except BaseException as error:  # handed to the reader below
            failure.append(error)
        finally:
            try:
                writer._put(_END)
            except BrokenPipeError:
                pass

    producer = start_thread(produce, "tar-gz")
    try:
        while True:
            chunk = chunks.get()
            if chunk is _END:
                break
            yield chunk
        if failure:
            raise failure[0]
    finally:
        cancelled.set()
        producer.join(timeout=5)
