"""Log lines: the session id on every line, and text lines that cannot be forged."""

import io
import json
import logging

import docker
import pytest
from falcon import testing

from orchestrator import logs
from orchestrator.api.app import create_app
from orchestrator.cli import build_parser
from orchestrator.config import Settings
from orchestrator.service import Executor


@pytest.fixture
def captured(monkeypatch):
    """Configure logging as the service does, into a buffer, and restore it after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level

    def configure(style: str, session: str = "") -> io.StringIO:
        # Set here, in the test's own phase: pytest swaps sys.stderr between phases.
        stream = io.StringIO()
        monkeypatch.setattr("sys.stderr", stream)
        logs.configure("INFO", style, session)
        return stream

    yield configure
    root.handlers[:] = handlers
    root.setLevel(level)


def test_escape_controls():
    assert logs.escape_controls("a\nb\rc\td") == "a\\nb\\rc\\td"
    assert logs.escape_controls("\x1b[31mred\x00\x7f") == "\\x1b[31mred\\x00\\x7f"
    assert logs.escape_controls("x\u2028y\x85") == "x\\u2028y\\x85"
    assert logs.escape_controls("plain é ✓") == "plain é ✓"


def test_text_line_cannot_be_forged(captured):
    stream = captured("text")
    logs.session_id.set("abc\n2026-01-01 00:00:00,000 INFO [x] forged")
    try:
        logging.getLogger("test").info("path %s", "/executor/abc\r\nforged")
    finally:
        logs.session_id.set("")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "[abc\\n2026-01-01 00:00:00,000 INFO [x] forged]" in lines[0]
    assert lines[0].endswith("path /executor/abc\\r\\nforged")


def test_text_traceback_indented(captured):
    stream = captured("text")
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 INFO [] forged")
    except ValueError:
        logging.getLogger("test").exception("failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("failed")
    assert rest and all(line.startswith("  ") for line in rest)
    assert "  2026-01-01 00:00:00,000 INFO [] forged" in rest


def test_encoded_newline_stays_escaped(captured):
    stream = captured("text")
    unreachable = docker.DockerClient(
        base_url="unix:///nonexistent/docker.sock", version="1.41"
    )
    client = testing.TestClient(create_app(Executor(Settings(), unreachable)))
    response = client.simulate_delete("/executor/abc%0Aforged")
    assert response.status_code == 400
    lines = stream.getvalue().splitlines()
    assert lines
    for line in lines:
        assert "[abc\\nforged]" in line
    assert any("DELETE /executor/abc\\nforged 400" in line for line in lines)


def test_json_line_escapes_too(captured):
    stream = captured("json")
    logs.session_id.set("abc\nforged")
    try:
        logging.getLogger("test").info("one\ntwo")
    finally:
        logs.session_id.set("")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["session"] == "abc\nforged"
    assert record["message"] == "one\ntwo"


def test_default_session_on_every_line(captured):
    stream = captured("json", session="Qx7Lm2Pa9Z")
    logging.getLogger("test").info("merged")
    logs.session_id.set("other")
    try:
        logging.getLogger("test").info("tagged by a request")
    finally:
        logs.session_id.set("")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["session"] == "Qx7Lm2Pa9Z"
    assert second["session"] == "other"


def test_merger_session_option(monkeypatch):
    parser = build_parser()
    assert parser.parse_args(["merger"]).session == ""
    assert parser.parse_args(["merger", "--session", "abc"]).session == "abc"
    monkeypatch.setenv("CYANPRINT_MERGER_SESSION", "fromenv")
    assert build_parser().parse_args(["merger"]).session == "fromenv"
