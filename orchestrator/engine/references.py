"""`${step.key}` references from one step's arguments to an earlier step's output.

`$${` is an escaped `${`: it is the two characters themselves, so text
from a request (a processor's config, a proxied body) is never read as a
reference. Plans rendered from requests escape every such text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import StepFailed

REFERENCE = re.compile(r"\$\{\s*([a-z0-9][a-z0-9_-]*)((?:\.[A-Za-z0-9_-]+)*)\s*\}")
# An escaped `${` first, so that `$${a.b}` is the text `${a.b}`, not a reference.
TOKEN = re.compile(r"\$\$\{|" + REFERENCE.pattern)


def escape(value: Any) -> Any:
    """Return `value` with every `${` in its strings escaped, mapping keys aside."""
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, Mapping):
        return {key: escape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escape(item) for item in value]
    return value


def find(value: Any) -> list[str]:
    """List the step names that `value` refers to, anywhere inside it."""
    return [name for name, _ in find_keys(value)]


def find_keys(value: Any) -> list[tuple[str, str]]:
    """List (step name, first key or '') of every reference inside `value`."""
    if isinstance(value, str):
        return [
            (match.group(1), match.group(2).split(".")[1] if match.group(2) else "")
            for match in TOKEN.finditer(value)
            if match.group(1)
        ]
    if isinstance(value, Mapping):
        return [found for item in value.values() for found in find_keys(item)]
    if isinstance(value, list):
        return [found for item in value for found in find_keys(item)]
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


def _replace(match: re.Match[str], outputs: Mapping[str, Any]) -> str:
    if not match.group(1):
        return "${"
    return str(_lookup(outputs, match.group(1), match.group(2)))


def substitute(value: Any, outputs: Mapping[str, Any]) -> Any:
    """Replace references by outputs. A lone reference keeps its value's type."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(outputs, whole.group(1), whole.group(2))
        return TOKEN.sub(lambda match: _replace(match, outputs), value)
    if isinstance(value, Mapping):
        return {key: substitute(item, outputs) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, outputs) for item in value]
    return value
