"""Turn processor and plugin references (`user/name[:version]`) into pinned ids.

A reference is looked up in a Zinc-compatible registry over HTTP, or in a
catalog file. With a version, that version's id must be one the template
pins. Without one, the newest version whose id the template pins wins,
walking down from the latest.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import requests
import yaml

from .errors import ReferenceInvalid, RequestInvalid

log = logging.getLogger(__name__)

REFERENCE = re.compile(
    r"^(?P<user>[A-Za-z0-9_.-]+)/(?P<name>[A-Za-z0-9_.-]+)(?::(?P<version>[0-9]+))?$"
)
KINDS = {"processor": "Processor", "plugin": "Plugin"}
# A reference without a version is looked up from the latest version down,
# one registry request per version, at most this many.
MAX_VERSIONS_WALKED = 50


@dataclass(frozen=True)
class Reference:
    user: str
    name: str
    version: int | None

    def __str__(self) -> str:
        suffix = f":{self.version}" if self.version is not None else ""
        return f"{self.user}/{self.name}{suffix}"


def parse_reference(text: str) -> Reference:
    match = REFERENCE.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ReferenceInvalid(
            f"invalid reference {text!r}: expected user/name or user/name:version"
        )
    version = match.group("version")
    return Reference(
        match.group("user"), match.group("name"), int(version) if version else None
    )


@dataclass(frozen=True)
class Version:
    id: str
    version: int


class Source(Protocol):
    """A source of published versions; `version` None asks for the latest."""

    def lookup(
        self, kind: str, reference: Reference, version: int | None
    ) -> Version | None: ...


class RemoteRegistry:
    """A Zinc-compatible registry; numbered versions never change and are cached."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._cache: dict[tuple[str, str, str, int], Version] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()

    def lookup(
        self, kind: str, reference: Reference, version: int | None
    ) -> Version | None:
        key = (kind, reference.user, reference.name, version or 0)
        if version is not None:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
        found = self._fetch(
            kind, reference, "latest" if version is None else str(version)
        )
        # Only found versions are cached: a missing one may be published later.
        if version is not None and found is not None:
            with self._lock:
                self._cache[key] = found
        return found

    def _fetch(self, kind: str, reference: Reference, version: str) -> Version | None:
        url = (
            f"{self.url}/api/v1/{KINDS[kind]}/slug/{reference.user}/{reference.name}"
            f"/versions/{version}"
        )
        try:
            response = self._session.get(url, timeout=self.timeout)
        except requests.RequestException as error:
            raise RegistryUnavailable(
                f"registry {self.url} could not be reached: {error}"
            ) from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryUnavailable(
                f"registry {self.url} responded to GET {url} with HTTP "
                f"{response.status_code}"
            )
        try:
            principal = response.json()["principal"]
            return Version(str(principal["id"]), int(principal["version"]))
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise RegistryUnavailable(
                f"registry {self.url} responded to GET {url} without principal.id and "
                f"principal.version"
            ) from error


class RegistryUnavailable(RequestInvalid):
    """The registry could not be reached, or its response lacked the needed fields."""


class Catalog:
    """A catalog file: `processors` and `plugins`, each `user/name` -> {version: id}."""

    def __init__(self, entries: dict, origin: str) -> None:
        self.origin = origin
        self.entries: dict[str, dict[str, dict[int, str]]] = {}
        for section in ("processors", "plugins"):
            references = entries.get(section) or {}
            self.entries[section] = {
                str(name): {int(v): str(i) for v, i in (versions or {}).items()}
                for name, versions in references.items()
            }

    @classmethod
    def load(cls, path: str | None = None) -> Catalog:
        if path:
            text = Path(path).read_text(encoding="utf-8")
            origin = path
        else:
            text = (
                resources.files("orchestrator")
                .joinpath("catalog.yaml")
                .read_text(encoding="utf-8")
            )
            origin = "the embedded catalog"
        return cls(yaml.safe_load(text) or {}, origin)

    def lookup(
        self, kind: str, reference: Reference, version: int | None
    ) -> Version | None:
        versions = self.entries[kind + "s"].get(
            f"{reference.user}/{reference.name}", {}
        )
        if not versions:
            return None
        number = max(versions) if version is None else version
        identifier = versions.get(number)
        return Version(identifier, number) if identifier else None


class CatalogFile:
    """A catalog file that is read again whenever it changes on disk."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._catalog = self._read()

    def _read(self) -> Catalog:
        try:
            status = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
            entries = yaml.safe_load(text) or {}
            catalog = Catalog(entries, str(self.path))
        except (
            OSError,
            yaml.YAMLError,
            AttributeError,
            TypeError,
            ValueError,
        ) as error:
            reason = yaml_reason(error) if isinstance(error, yaml.YAMLError) else error
            raise CatalogInvalid(
                f"catalog file {self.path} cannot be used: {reason}; fix the file "
                f"(it is read again when it changes), or give --registry a registry "
                f"URL or a YAML file with 'processors' and 'plugins' maps"
            ) from error
        self._stamp = (status.st_mtime_ns, status.st_size)
        return catalog

    def lookup(
        self, kind: str, reference: Reference, version: int | None
    ) -> Version | None:
        with self._lock:
            try:
                status = self.path.stat()
                changed = (status.st_mtime_ns, status.st_size) != self._stamp
            except OSError:
                changed = True
            if changed:
                self._catalog = self._read()
            catalog = self._catalog
        return catalog.lookup(kind, reference, version)


def yaml_reason(error: yaml.YAMLError) -> str:
    """Word a YAML error on one line, with the line and column it points at."""
    if not isinstance(error, yaml.MarkedYAMLError) or error.problem_mark is None:
        return "invalid YAML: " + " ".join(str(error).split())
    mark = error.problem_mark
    reason = (
        f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: "
        f"{error.problem}"
    )
    if error.context:
        reason += f" ({error.context}"
        if error.context_mark is not None:
            start = error.context_mark
            reason += (
                f" that starts at line {start.line + 1}, column {start.column + 1}"
            )
        reason += ")"
    return reason


class CatalogInvalid(RegistryUnavailable):
    """A catalog file that is missing or not a catalog: the server's fault, a 503."""


class Resolver:
    """Resolves references against a source and the ids a template pins."""

    def __init__(self, source: Source) -> None:
        self.source = source

    @classmethod
    def from_setting(cls, registry: str, timeout: float = 10.0) -> Resolver:
        if registry.startswith(("http://", "https://")):
            return cls(RemoteRegistry(registry, timeout))
        if registry:
            return cls(CatalogFile(registry))
        return cls(Catalog.load())

    def resolve(self, kind: str, text: str, pinned: set[str]) -> Version:
        reference = parse_reference(text)
        if reference.version is not None:
            return self._exact(kind, reference, pinned)
        latest = self.source.lookup(kind, reference, None)
        if latest is None:
            raise ReferenceInvalid(f"{kind} {reference} not found in the registry")
        oldest = max(1, latest.version - MAX_VERSIONS_WALKED + 1)
        for number in range(latest.version, oldest - 1, -1):
            found = (
                latest
                if number == latest.version
                else self.source.lookup(kind, reference, number)
            )
            if found is not None and found.id in pinned:
                return found
        if oldest > 1:
            raise ReferenceInvalid(
                f"{kind} {reference}: none of its latest {MAX_VERSIONS_WALKED} "
                f"versions ({oldest} to {latest.version}) is pinned by the template; "
                f"name the pinned version, as in {reference}:N"
            )
        raise ReferenceInvalid(
            f"{kind} {reference}: no version of it is pinned by the template; "
            f"add it to the template's {kind}s and publish the template again"
        )

    def _exact(self, kind: str, reference: Reference, pinned: set[str]) -> Version:
        found = self.source.lookup(kind, reference, reference.version)
        if found is None:
            raise ReferenceInvalid(f"{kind} {reference} not found in the registry")
        if found.id not in pinned:
            raise ReferenceInvalid(
                f"{kind} {reference} (id {found.id}) is not pinned by the template; "
                f"use a version the template lists or publish the template again"
            )
        return found
