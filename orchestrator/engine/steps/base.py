"""The interface every step kind implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..context import Context


@dataclass
class Outcome:
    """Result of applying a step; `changed` is true when Docker state changed."""

    changed: bool
    message: str
    output: Any = None


@dataclass
class Change:
    """Change a step would make, found by reading the live engine.

    `action` is one of: create, pull, start, remove, call, nothing, and fail
    for a step that would fail when applied.
    """

    action: str
    detail: str


class Step:
    """A step of one kind with its arguments, references already substituted."""

    kind: ClassVar[str] = ""
    # Keys of the step's output that later steps may refer to, or None when
    # the output is a container's response, whatever its keys.
    outputs: ClassVar[tuple[str, ...] | None] = ()

    def __init__(self, name: str, args: dict[str, Any]) -> None:
        self.name = name
        self.args = args

    def describe(self) -> str:
        """Say in one line what the step will do, for logs and dry runs."""
        raise NotImplementedError

    def resource(self) -> str:
        """Name the Docker resource or container the step acts on."""
        return ""

    def apply(self, context: Context) -> Outcome:
        raise NotImplementedError

    def check(self, context: Context) -> Change:
        """Compare the step with the live engine without changing anything."""
        raise NotImplementedError
