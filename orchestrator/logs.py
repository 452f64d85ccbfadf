"""Structured logging: JSON lines carrying the session id of the current request."""

from __future__ import annotations

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

session_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "session_id", default=""
)


class SessionFilter(logging.Filter):
    """Attach the session id of the running request to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "session", ""):
            record.session = session_id.get()
        return True


def configure(level: str = "INFO", style: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(SessionFilter())
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
            logging.Formatter("%(asctime)s %(levelname)s [%(session)s] %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Docker SDK's connection pool logs every request at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
