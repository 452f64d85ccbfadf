"""`${step.key}` references from one step's arguments to an earlier step's output."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import StepFailed

REFERENCE = re.compile(r"\$\{\s*([a-z0-9][a-z0-9_-]*)((?:\.[A-Za-z0-9_-]+)*)\s*\}")


def find(value: Any) -> list[str]:
    """List the step names that `value` refers to, anywhere inside it."""
    if isinstance(value, str):
        return [match.group(1) for match in REFERENCE.finditer(value)]
    if isinstance(value, Mapping):
        return [name for item in value.values() for name in find(item)]
    if isinstance(value, list):
        return [name for item in value for name in find(item)]
    return []


def _lookup(outputs: Mapping[str, Any], step: str, keys: str) -> Any:
    if step not in outputs:
        raise StepFailed(f"reference to step '{step}', which has no output")
    value = outputs[step]
    for key in filter(None, keys.split(".")):
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise StepFailed(
                f"reference ${{{step}{keys}}}: the output of '{step}' has no '{key}'"
            )
    return value


def substitute_known(value: Any, outputs: Mapping[str, Any]) -> Any:
    """Replace the references that can be resolved and keep the others as written."""
    if isinstance(value, str):
        try:
            return substitute(value, outputs)
        except StepFailed:
            return value
    if isinstance(value, Mapping):
        return {key: substitute_known(item, outputs) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute_known(item, outputs) for item in value]
    return value


def substitute(value: Any, outputs: Mapping[str, Any]) -> Any:
    """Replace references by outputs. A lone reference keeps its value's type."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(outputs, whole.group(1), whole.group(2))
        return REFERENCE.sub(
            lambda m: str(_lookup(outputs, m.group(1), m.group(2))), value
        )
    if isinstance(value, Mapping):
        return {key: substitute(item, outputs) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, outputs) for item in value]
    return value
