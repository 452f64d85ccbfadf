"""scripts/serve.sh: which merger image it uses, and which it builds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parents[2]
# Images that exist nowhere: the script must pass them on and never build them.
OPTION_IMAGE = "cyanprint-test/merger-from-option:1"
ENVIRONMENT_IMAGE = "cyanprint-test/merger-from-environment:1"


def serve_on_taken_port(arguments: list[str], environment: dict[str, str]):
    """Run serve.sh on a port that is in use, so the server stops right after start."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CYANPRINT_")}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [
                str(ROOT / "scripts/serve.sh"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *arguments,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**clean, **environment},
            cwd=ROOT,
        )
    assert finished.returncode == 2, finished.stdout + finished.stderr
    assert "==> Building" not in finished.stdout + finished.stderr
    messages = [
        json.loads(line)["message"]
        for line in finished.stderr.splitlines()
        if line.startswith("{")
    ]
    assert any(f"cannot listen on 127.0.0.1:{port}" in m for m in messages)
    started = [m for m in messages if m.startswith("executor ")]
    assert len(started) == 1, messages
    return started[0]


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        (["--merger-image", OPTION_IMAGE], {}, OPTION_IMAGE),
        ([f"--merger-image={OPTION_IMAGE}"], {}, OPTION_IMAGE),
        ([], {"CYANPRINT_MERGER_IMAGE": ENVIRONMENT_IMAGE}, ENVIRONMENT_IMAGE),
        (
            ["--merger-image", OPTION_IMAGE],
            {"CYANPRINT_MERGER_IMAGE": ENVIRONMENT_IMAGE},
            OPTION_IMAGE,
        ),
    ],
)
def test_serve_script_uses_given_merger_image(
    docker_client, arguments, environment, expected
):
    started = serve_on_taken_port(arguments, environment)
    assert f"merger image {expected}," in started
