import io
import logging
import os
import re
import tarfile
import threading

import pytest

from orchestrator.archive import stream_tar_gz
from orchestrator.service import archive_chunks


def test_archive_relative_paths_modes_and_folders(tmp_path):
    (tmp_path / "d/e").mkdir(parents=True)
    (tmp_path / "d/e/f.txt").write_text("deep")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "run.sh", 0o755)
    (tmp_path / "empty").mkdir()
    data = b"".join(stream_tar_gz(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = {member.name: member for member in tar.getmembers()}
        assert sorted(members) == ["d", "d/e", "d/e/f.txt", "empty", "run.sh"]
        assert members["run.sh"].mode & 0o777 == 0o755
        assert members["d"].isdir()
        assert members["empty"].isdir()
        assert tar.extractfile("d/e/f.txt").read() == b"deep"
    for name in members:
        assert not name.startswith(("/", "./"))


def test_archive_streams_in_chunks(tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    chunks = list(stream_tar_gz(tmp_path))
    assert len(chunks) > 4
    assert max(len(chunk) for chunk in chunks) <= 256 * 1024


def test_archive_reader_can_stop_early(tmp_path):
    (tmp_path / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024))
    stream = stream_tar_gz(tmp_path)
    next(stream)
    stream.close()


def test_empty_folder_gives_valid_archive(tmp_path):
    data = b"".join(stream_tar_gz(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert tar.getmembers() == []


class StreamedBuild:
    """The archive step's output, as a build's report contains it."""

    def __init__(self, chunks) -> None:
        self.chunks = chunks
        self.closed = False
        self.released = 0

    def output(self, step: str) -> dict:
        assert step == "archive"
        return {"stream": self.chunks, "response": self}

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self.released += 1


def broken_stream():
    yield b"a" * 10
    raise ConnectionError("merger went away")


def archive_records(caplog):
    return [r for r in caplog.records if "archive of session" in r.getMessage()]


def test_streamed_archive_logs_bytes_and_time(caplog):
    caplog.set_level(logging.INFO)
    build = StreamedBuild(iter([b"abc", b"de"]))
    stream = archive_chunks(build, "Qx7Lm2Pa9Z")
    assert b"".join(stream) == b"abcde"
    stream.pump.join()
    assert build.closed
    (record,) = archive_records(caplog)
    assert record.levelno == logging.INFO
    assert record.session == "Qx7Lm2Pa9Z"
    assert re.fullmatch(
        r"streamed the archive of session Qx7Lm2Pa9Z: 5 bytes in \d+\.\d{3}s",
        record.getMessage(),
    )


def test_failed_archive_stream_logged_as_error(caplog):
    build = StreamedBuild(broken_stream())
    stream = archive_chunks(build, "Qx7Lm2Pa9Z")
    with pytest.raises(ConnectionError):
        b"".join(stream)
    stream.pump.join()
    assert build.closed
    (record,) = archive_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.session == "Qx7Lm2Pa9Z"
    message = record.getMessage()
    assert "of session Qx7Lm2Pa9Z failed after 10 bytes" in message
    assert message.endswith("ConnectionError: merger went away")


def test_client_leaving_archive_logged(caplog):
    gate = threading.Event()

    def gated():
        yield b"abc"
        gate.wait(timeout=5)
        yield b"de"

    build = StreamedBuild(gated())
    stream = archive_chunks(build, "Qx7Lm2Pa9Z")
    assert next(iter(stream)) == b"abc"
    # The server closes the body when the client goes away.
    stream.close()
    gate.set()
    stream.pump.join()
    assert build.closed
    assert build.released == 1
    (record,) = archive_records(caplog)
    assert record.levelno == logging.ERROR
    assert "failed after 3 bytes" in record.getMessage()
    assert record.getMessage().endswith("the client closed the connection")


def test_archive_closed_unread_releases_session(caplog):
    build = StreamedBuild(iter([b"abc"]))
    stream = archive_chunks(build, "Qx7Lm2Pa9Z")
    stream.close()
    stream.close()
    stream.pump.join()
    assert build.closed
    assert build.released == 1
    (record,) = archive_records(caplog)
    assert "failed after 0 bytes" in record.getMessage()


def test_archive_read_to_end_releases_once():
    build = StreamedBuild(iter([b"abc", b"de"]))
    stream = archive_chunks(build, "Qx7Lm2Pa9Z")
    assert b"".join(stream) == b"abcde"
    stream.close()
    stream.pump.join()
    assert build.released == 1


def test_stalled_client_does_not_keep_session():
    """The session is released once the merger's stream ends, read or not."""
    build = StreamedBuild(iter([b"x" * 1000] * 50))
    stream = archive_chunks(build, "Qx7Lm2Pa9Z")
    chunks = iter(stream)
    first = next(chunks)
    stream.pump.join(timeout=5)

    assert not stream.pump.is_alive()
    assert build.released == 1
    assert len(first + b"".join(chunks)) == 50_000
