"""The executor's exception tree.

ExecutorError
├── RequestInvalid        the request body or a value in it is not acceptable (400)
│   └── ReferenceInvalid  a processor or plugin reference cannot be resolved (400)
├── PlanInvalid           a plan does not match the plan schema or its rules
├── StepFailed            a step of a plan failed while it was applied
└── ServiceStopping       the service stopped a plan because it is stopping (503)
"""

from __future__ import annotations


class ExecutorError(Exception):
    """Root of every error the executor raises on purpose."""

    def __init__(self, message: str, *, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors if errors is not None else [message]


class RequestInvalid(ExecutorError):
    """A request that fails validation; `errors` lists every violation."""


class ReferenceInvalid(RequestInvalid):
    """A processor or plugin reference that is malformed or not pinned."""


class PlanInvalid(ExecutorError):
    """A plan that does not match the plan schema or breaks a plan rule."""


class StepFailed(ExecutorError):
    """A failed step, with the step name, the resource it acted on and the cause."""

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        resource: str = "",
        kind: str = "",
        unreachable: bool = False,
        details: dict | None = None,
    ) -> None:
        super().__init__(message)
        # What the step had done before it failed, for callers that report it.
        self.details = details or {}
        self.step = step
        self.resource = resource
        self.kind = kind
        # True when the container could not be reached at all, as opposed to
        # answering with an error; the API maps the two to different statuses.
        self.unreachable = unreachable

    def with_step(self, step: str, kind: str) -> StepFailed:
        if not self.step:
            self.step = step
            self.kind = kind
        return self

    def __str__(self) -> str:
        prefix = f"step '{self.step}' failed: " if self.step else ""
        return prefix + self.message


class ServiceStopping(ExecutorError):
    """A plan the service interrupted, or would not start, because it is stopping."""
