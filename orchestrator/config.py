"""Service settings, read from command-line options with environment fallbacks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any

from . import __version__

DEFAULT_MERGER_IMAGE = f"cyanprint-executor:{__version__}"


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
            raise SystemExit(
                f"invalid {ENVIRONMENT_PREFIX}{item.name.upper()}={raw!r}: "
                f"expected a {kind.__name__}"
            ) from None
    return values
