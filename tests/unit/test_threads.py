"""Worker threads leave the stop signals to the main thread."""

from __future__ import annotations

import signal

from orchestrator.threads import STOP_SIGNALS, start_thread, worker_pool


def current_mask() -> set[signal.Signals]:
    return set(signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_started_thread_blocks_stop_signals():
    seen = []
    start_thread(lambda: seen.append(current_mask()), "mask").join(timeout=10)

    assert seen
    assert STOP_SIGNALS <= seen[0]


def test_pool_threads_block_stop_signals():
    with worker_pool(2, "mask") as pool:
        masks = list(pool.map(lambda _: current_mask(), range(4)))

    assert all(STOP_SIGNALS <= mask for mask in masks)


def test_main_thread_keeps_stop_signals():
    start_thread(lambda: None, "mask").join(timeout=10)

    assert not STOP_SIGNALS & current_mask()
