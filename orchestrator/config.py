"""Service settings, read from command-line options with environment fallbacks."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import __version__

DEFAULT_MERGER_IMAGE = f"cyanprint-executor:{__version__}"
# The maximum timeout in seconds, the same as the plan schema's, because the
# service writes its timeouts into the plans it renders.
MAX_TIMEOUT = 86400


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with; times are in seconds."""

    host: str = "0.0.0.0"
    port: int = 9000
    # URL of a Zinc-compatible registry, or the path of a catalog file; empty
    # means the catalog embedded in the package.
    registry: str = ""
    merger_image: str = DEFAULT_MERGER_IMAGE
    network: str = "cyanprint"
    ready_timeout: float = 60.0
    call_timeout: float = 300.0
    pull_timeout: float = 600.0
    registry_timeout: float = 10.0
    proxy_timeout: float = 60.0
    # How long a stopping service waits for interrupted plans to clean up,
    # after the up to 5 s that waitress waits for its worker threads.
    stop_grace: float = 20.0
    # Largest request or response body a proxy passes through, in bytes.
    proxy_max_bytes: int = 10 * 1024 * 1024
    # Folder that local template folders of try sessions must lie inside;
    # empty means the home folder of the user running the service.
    try_root: str = ""
    # How many containers, pulls or processor calls run at once.
    parallelism: int = 4
    threads: int = 16
    log_level: str = "INFO"
    log_format: str = field(default="json")

    @property
    def allowed_try_root(self) -> str:
        """Return the real path of the folder that try sessions' folders lie in."""
        return os.path.realpath(self.try_root or Path.home())

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SettingsInvalid("; ".join(problems))

    def problems(self) -> list[str]:
        """List every setting that is out of range, naming the option to fix."""
        found = []
        if not 0 <= self.port <= 65535:
            found.append(f"--port {self.port} is not a port; use 0 to 65535")
        for name in ("parallelism", "threads", "proxy_max_bytes"):
            if getattr(self, name) < 1:
                found.append(
                    f"--{option(name)} {getattr(self, name)} must be 1 or more"
                )
        for name in (
            "ready_timeout",
            "call_timeout",
            "pull_timeout",
            "registry_timeout",
            "proxy_timeout",
            "stop_grace",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or not 0 < value <= MAX_TIMEOUT:
                found.append(
                    f"--{option(name)} {value} is out of range; use a number of "
                    f"seconds above 0 and at most {MAX_TIMEOUT} (a day)"
                )
        if not DOCKER_NAME.fullmatch(self.network):
            found.append(
                f"--network {self.network!r} is not a Docker network name; use "
                f"letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        if self.log_level.upper() not in LOG_LEVELS:
            found.append(
                f"--log-level {self.log_level!r} is unknown; use one of "
                f"{', '.join(LOG_LEVELS)}"
            )
        if self.log_format not in LOG_FORMATS:
            found.append(
                f"--log-format {self.log_format!r} is unknown; use json or text"
            )
        if "://" in self.registry and not self.registry.startswith(
            ("http://", "https://")
        ):
            found.append(
                f"--registry {self.registry!r} is neither an http(s) URL nor a "
                f"file path"
            )
        return found


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DOCKER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
LOG_FORMATS = ("json", "text")


class SettingsInvalid(ValueError):
    """A setting out of range; the message names the option."""


def option(name: str) -> str:
    """Return the option name of a setting: proxy_max_bytes -> proxy-max-bytes."""
    return name.replace("_", "-")


ENVIRONMENT_PREFIX = "CYANPRINT_"


def environment_defaults(environ: dict[str, str] | None = None) -> dict[str, object]:
    """Read `CYANPRINT_<FIELD>` variables into typed values for `Settings`."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    for item in fields(Settings):
        raw = environ.get(ENVIRONMENT_PREFIX + item.name.upper())
        if raw is None:
            continue
        kind: Any = type(item.default)
        try:
            values[item.name] = kind(raw)
        except ValueError:
            expected = {"int": "a whole number", "float": "a number"}[kind.__name__]
            raise SettingsInvalid(
                f"{ENVIRONMENT_PREFIX}{item.name.upper()}={raw!r} is not "
                f"{expected}; set it to {expected} or unset it"
            ) from None
    return values
