"""Per-resource locks: exclusion for one name, none across names, no growth."""

import threading
import time

from orchestrator.engine.context import KeyedLocks


def test_lock_excludes_other_threads():
    locks = KeyedLocks()
    inside = 0
    max_inside = 0
    guard = threading.Lock()

    def work():
        nonlocal inside, max_inside
        with locks("volume:shared"):
            with guard:
                inside += 1
                max_inside = max(max_inside, inside)
            time.sleep(0.01)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max_inside == 1


def test_lock_names_independent():
    locks = KeyedLocks()
    entered = threading.Event()

    def other():
        with locks("container:b"):
            entered.set()

    with locks("container:a"):
        thread = threading.Thread(target=other)
        thread.start()
        assert entered.wait(timeout=5)
    thread.join()


def test_locks_dropped_when_unused():
    locks = KeyedLocks()
    for number in range(1000):
        with locks(f"session:{number}"):
            assert len(locks) == 1
    assert len(locks) == 0


def test_lock_kept_while_awaited():
    locks = KeyedLocks()
    waiter_done = threading.Event()

    def waiter():
        with locks("network:n"):
            waiter_done.set()

    with locks("network:n"):
        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.05)
        assert not waiter_done.is_set()
        assert len(locks) == 1
    thread.join(timeout=5)
    assert waiter_done.is_set()
    assert len(locks) == 0


def test_lock_released_on_error():
    locks = KeyedLocks()
    try:
        with locks("image:x"):
            raise RuntimeError("step failed")
    except RuntimeError:
        pass
    assert len(locks) == 0
    with locks("image:x"):
        pass
