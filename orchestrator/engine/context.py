"""State shared by the steps of one engine: the Docker client, settings, outputs."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import docker
import requests

from ..config import Settings


class KeyedLocks:
    """One lock per resource name, so two plans never create the same thing at once.

    NOTE: locks are never dropped, so memory grows by one small lock per
    distinct name (a few hundred bytes per session) over the process's life.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks[key]


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
