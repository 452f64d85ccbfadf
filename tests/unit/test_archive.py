import io
import os
import tarfile

from orchestrator.archive import stream_tar_gz


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
