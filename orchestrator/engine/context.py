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


@dataclass
class Context:
    client: docker.DockerClient
    settings: Settings
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    outputs: dict[str, Any] = field(default_factory=dict)
