"""Starting the server: an address it cannot listen on is one clear line."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-1"])
def test_timeout_option_must_be_finite(value):
    result = subprocess.run(
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
    assert result.returncode == 2
    assert f"--call-timeout {float(value)} must be a number above 0" in result.stderr
    assert "Traceback" not in result.stderr
