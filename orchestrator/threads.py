"""Worker threads that leave SIGINT and SIGTERM to the main thread."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# The signals that stop the executor, its commands and the merger.
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def block_stop_signals() -> None:
    """Block SIGINT and SIGTERM in the calling thread.

    The kernel hands a process signal to any thread that does not block it,
    and Python runs its handlers only in the main thread. A main thread that
    waits on a lock or a socket wakes only when the signal reaches it, so a
    Ctrl-C that lands on a worker thread would go unnoticed until that wait
    ends. With every worker blocking them, these signals reach the main thread.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def start_thread(
    target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()
) -> threading.Thread:
    """Start a daemon thread that runs target(*args) with the stop signals blocked."""

    def run() -> None:
        block_stop_signals()
        target(*args)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread


def worker_pool(workers: int, name: str = "") -> ThreadPoolExecutor:
    """Return a thread pool whose threads have the stop signals blocked."""
    return ThreadPoolExecutor(
        workers, thread_name_prefix=name, initializer=block_stop_signals
    )
