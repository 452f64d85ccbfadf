"""The step engine: applies a validated plan against a Docker engine."""

from .engine import Engine
from .report import Report, StepResult

__all__ = ["Engine", "Report", "StepResult"]
