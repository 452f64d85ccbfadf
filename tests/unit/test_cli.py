"""Starting the server: an address it cannot listen on is one clear line."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.commands import ArchiveSink
from orchestrator.config import MAX_TIMEOUT
from orchestrator.engine.report import StepResult
from orchestrator.validation import validator

ROOT = Path(__file__).parents[2]


def serve(*options: str) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CYANPRINT_")
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "server.py"), *options],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=ROOT,
    )


@pytest.mark.parametrize("style", ["json", "text"])
def test_port_in_use_is_one_line(style):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = serve(
            "--host", "127.0.0.1", "--port", str(port), "--log-format", style
        )
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    errors = [line for line in finished.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1
    line = errors[0]
    if style == "json":
        line = json.loads(line)["message"]
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line
    assert "choose another port with --port or CYANPRINT_PORT" in line


def plan_with_call_timeout(value: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            "plan",
            "setup",
            "--call-timeout",
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["nan", "inf", "1e999", "0", "-1", "86400.5"])
def test_timeout_option_out_of_range(value):
    result = plan_with_call_timeout(value)

    assert result.returncode == 2
    assert f"--call-timeout {float(value)} is out of range" in result.stderr
    assert "above 0 and at most 86400 (a day)" in result.stderr
    assert "Traceback" not in result.stderr


def test_timeout_option_of_a_day():
    result = plan_with_call_timeout("86400")

    assert result.returncode == 0, result.stderr


def test_timeout_limit_matches_plan_schema():
    schema = validator("plan").schema

    assert schema["$defs"]["timeout"]["maximum"] == MAX_TIMEOUT


class BrokenResponse:
    closed = False

    def close(self) -> None:
        self.closed = True


def archive_result(chunks) -> StepResult:
    response = BrokenResponse()
    return StepResult(
        "archive",
        "archive",
        "ok",
        0.1,
        "streaming",
        {"stream": chunks, "response": response},
    )


def test_sink_broken_archive_fails_step(tmp_path, capsys):
    def broken():
        yield b"abc"
        raise ConnectionError("merger went away")

    output = tmp_path / "out.tgz"
    output.write_bytes(b"previous")
    sink = ArchiveSink(str(output))
    result = archive_result(broken())

    sink.listen(result)
    sink.finish(keep=True)

    assert result.status == "failed"
    assert "broke off after 3 bytes" in result.message
    assert result.output["response"].closed
    assert output.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [output]


def test_sink_without_archive_keeps_output(tmp_path):
    output = tmp_path / "out.tgz"
    output.write_bytes(b"previous")
    sink = ArchiveSink(str(output))
    sink.finish(keep=True)
    assert output.read_bytes() == b"previous"
    assert list(tmp_path.iterdir()) == [output]


def test_sink_output_follows_umask(tmp_path):
    output = tmp_path / "out.tgz"
    sink = ArchiveSink(str(output))
    sink.listen(archive_result(iter([b"abc", b"de"])))
    previous = os.umask(0o022)
    try:
        sink.finish(keep=True)
    finally:
        os.umask(previous)
    assert output.read_bytes() == b"abcde"
    assert output.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("variable", "expected"),
    [("CYANPRINT_READY_TIMEOUT", "a number"), ("CYANPRINT_PORT", "a whole number")],
)
def test_unparsable_environment_setting(variable, expected):
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "plan", "setup"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, variable: "abc"},
    )

    assert result.returncode == 2
    assert f"error: {variable}='abc' is not {expected}" in result.stderr
    assert "Traceback" not in result.stderr
