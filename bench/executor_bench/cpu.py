"""CPU use during a timed section: this process's CPU time and the host's busy share."""

from __future__ import annotations

import contextlib
import math
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CpuUse:
    """CPU seconds of this process (all threads) and the host's busy fraction."""

    process: float = math.nan
    host_busy: float = math.nan


def host_jiffies() -> tuple[int, int] | None:
    """Return (total, idle) jiffies of all CPUs from /proc/stat, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(value) for value in fields]
    # The fourth and fifth fields are idle and iowait time.
    return sum(values), values[3] + values[4]


def process_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def measure_cpu() -> Iterator[CpuUse]:
    """Fill the yielded CpuUse when the block ends, also when it raises."""
    use = CpuUse()
    process_before = process_seconds()
    host_before = host_jiffies()
    try:
        yield use
    finally:
        use.process = process_seconds() - process_before
        host_after = host_jiffies()
        if host_before and host_after and host_after[0] > host_before[0]:
            idle = host_after[1] - host_before[1]
            use.host_busy = 1 - idle / (host_after[0] - host_before[0])
