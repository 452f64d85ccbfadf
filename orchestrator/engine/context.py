"""State shared by the steps of one engine: the Docker client, settings, outputs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import docker
import requests

from ..config import Settings
from ..errors import StepFailed


class KeyedLocks:
    """One lock per resource name, so two plans never create the same thing at once.

    A lock lives only while some thread holds or waits for it, so the table
    stays as small as the work in flight however many sessions come and go.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                _, users = self._locks[key]
                if users == 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


_thread_state = threading.local()


def http() -> requests.Session:
    """Return this thread's HTTP session; sessions keep connections alive."""
    session = getattr(_thread_state, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        _thread_state.session = session
    return session


class Expectations:
    """Resources that earlier steps would create or remove, tracked in check mode.

    Check mode changes nothing, so a step that uses what an earlier step would
    create (a volume, a started container) consults these before Docker.
    """

    def __init__(self) -> None:
        # (kind, name) -> labels of a resource that would exist, or None for one
        # that would be removed.
        self._state: dict[tuple[str, str], dict[str, str] | None] = {}

    def known(self, kind: str, name: str) -> bool | None:
        """Return whether the resource would exist, or None when no step touched it."""
        if (kind, name) not in self._state:
            return None
        return self._state[(kind, name)] is not None

    def create(self, kind: str, name: str, labels: dict[str, str] | None) -> None:
        self._state[(kind, name)] = dict(labels or {})

    def remove(self, kind: str, name: str) -> None:
        self._state[(kind, name)] = None

    def labelled(self, kind: str, selector: dict[str, str]) -> list[str]:
        """List the resources that would exist and carry every label of `selector`."""
        return [
            name
            for (found_kind, name), labels in self._state.items()
            if found_kind == kind
            and labels is not None
            and all(labels.get(key) == value for key, value in selector.items())
        ]


@dataclass
class Context:
    client: docker.DockerClient
    settings: Settings
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    outputs: dict[str, Any] = field(default_factory=dict)
    expectations: Expectations = field(default_factory=Expectations)
    # Set when the apply is interrupted; steps that wait check it and stop.
    cancelled: threading.Event = field(default_factory=threading.Event)

    def stop_if_cancelled(self, resource: str) -> None:
        """Raise StepFailed when the apply was interrupted."""
        if self.cancelled.is_set():
            raise StepFailed("interrupted", resource=resource)
