"""Results of applying a plan, step by step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OK = "ok"
CHANGED = "changed"
FAILED = "failed"
SKIPPED = "skipped"


@dataclass
class StepResult:
    """The outcome of one step: its status, how long it took and what it produced."""

    name: str
    kind: str
    status: str
    duration: float = 0.0
    message: str = ""
    output: Any = None
    error: Exception | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "duration": round(self.duration, 3),
            "message": self.message,
        }


@dataclass
class Report:
    """Results of a whole plan, in the order the steps finished."""

    plan: str
    results: list[StepResult] = field(default_factory=list)
    # True when the apply was cut short by an interrupt (Ctrl-C).
    interrupted: bool = False
    # Releases what the plan keeps once its output is consumed, such as a
    # build's session while its archive streams. Does nothing by default.
    release: Callable[[], None] = field(default=lambda: None)

    @property
    def failures(self) -> list[StepResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def output(self, step: str) -> Any:
        for result in self.results:
            if result.name == step:
                return result.output
        raise KeyError(step)

    def counts(self) -> dict[str, int]:
        totals = {OK: 0, CHANGED: 0, FAILED: 0, SKIPPED: 0}
        for result in self.results:
            totals[result.status] += 1
        return totals
