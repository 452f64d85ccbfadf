"""Structured logging: JSON lines carrying the session id of the current request."""

from __future__ import annotations

import contextvars
import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

session_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "session_id", default=""
)


class SessionFilter(logging.Filter):
    """Attach the session id of the running request to every record.

    A process that serves one session only (a merger) gives its id as
    `default`, used by every record that no request tagged.
    """

    def __init__(self, default: str = "") -> None:
        super().__init__()
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "session", ""):
            record.session = session_id.get() or self.default
        return True


# Characters that could end a text log line early or rewrite the terminal:
# C0 and C1 controls, DEL, and Unicode's line and paragraph separators.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_controls(text: str) -> str:
    """Write control characters as escapes (\\n, \\x1b), so text stays on one line."""

    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if char in NAMED:
            return NAMED[char]
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return CONTROL.sub(escaped, text)


class TextFormatter(logging.Formatter):
    """Formatter of one line per record, with a traceback indented by two spaces.

    Requests put text of their own (paths, session ids, bodies) into messages.
    Escaping its control characters keeps that text from forging log lines.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei) -> str:
        return self._indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return self._indented(super().formatStack(stack_info))

    @staticmethod
    def _indented(text: str) -> str:
        return "\n".join("  " + escape_controls(line) for line in text.splitlines())


def configure(level: str = "INFO", style: str = "json", session: str = "") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SessionFilter(session))
    if style == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}{session}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level"},
            )
        )
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s [%(session)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Docker SDK's connection pool logs every request at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
