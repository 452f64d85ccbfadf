"""JSON Schema validation of request bodies and plans.

Every schema lives in the `schemas` folder and is registered under its `$id`,
so the files can refer to each other by relative name.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from .errors import RequestInvalid

SCHEMA_BASE = "https://cyanprint.dev/executor/schemas/"


@cache
def _registry() -> Registry:
    registry: Registry = Registry()
    for entry in resources.files("orchestrator.schemas").iterdir():
        if entry.name.endswith(".json"):
            contents = json.loads(entry.read_text(encoding="utf-8"))
            registry = registry.with_resource(
                contents["$id"], Resource.from_contents(contents)
            )
    return registry


def _anchored_pattern(validator, pattern, instance, schema):
    # Python's `$` also matches before a final newline, which would let "id\n"
    # through to a Docker name; an anchored pattern must match the whole string.
    if not isinstance(instance, str):
        return
    if pattern.startswith("^") and pattern.endswith("$"):
        matched = re.fullmatch(pattern[1:-1], instance)
    else:
        matched = re.search(pattern, instance)
    if not matched:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


StrictValidator = validators.extend(
    Draft202012Validator, {"pattern": _anchored_pattern}
)


def _is_finite_number(checker, instance) -> bool:
    # NaN and infinity pass every bound (NaN compares false with everything).
    return (
        isinstance(instance, (int, float))
        and not isinstance(instance, bool)
        and math.isfinite(instance)
    )


def _is_whole_integer(checker, instance) -> bool:
    # JSON Schema counts 5551.0 as an integer, but a plan's port or count
    # written that way is a typo that Docker or a URL would reject later.
    return isinstance(instance, int) and not isinstance(instance, bool)


# Plans are written by hand, so their numbers are checked more strictly than
# JSON Schema does by default: finite, and integers written as integers.
PlanValidator = validators.extend(
    StrictValidator,
    type_checker=StrictValidator.TYPE_CHECKER.redefine_many(
        {"number": _is_finite_number, "integer": _is_whole_integer}
    ),
)


@cache
def validator(name: str) -> Draft202012Validator:
    """Return the validator of `schemas/<name>.json`."""
    registry = _registry()
    schema = registry.contents(SCHEMA_BASE + name + ".json")
    if name == "plan":
        return PlanValidator(schema, registry=registry)
    return StrictValidator(schema, registry=registry)


def format_path(parts: tuple) -> str:
    """Write a document path as a JSON path: `$.steps[2].image`."""
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def json_path(error: ValidationError) -> str:
    return format_path(tuple(error.absolute_path))


def _required_alternatives(error: ValidationError) -> list[str] | None:
    """Return the keys of a oneOf/anyOf whose every branch only requires keys."""
    branches = error.validator_value
    if error.validator not in ("oneOf", "anyOf") or not isinstance(branches, list):
        return None
    if not all(isinstance(b, dict) and set(b) == {"required"} for b in branches):
        return None
    return [key for branch in branches for key in branch["required"]]


def _listed(keys: list[str], word: str) -> str:
    quoted = [repr(key) for key in keys]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


def _leaf_errors(error: ValidationError) -> list[ValidationError]:
    # For oneOf/anyOf the top error only reads "is not valid under any of the
    # given schemas"; the alternative that matched best explains far more.
    # Alternatives that only require keys are explained by the error itself.
    if error.context and _required_alternatives(error) is None:
        best = min(error.context, key=lambda e: len(list(e.relative_schema_path)))
        siblings = [e for e in error.context if e.schema_path == best.schema_path]
        if error.validator in ("oneOf", "anyOf"):
            branch = best.schema_path[0]
            siblings = [e for e in error.context if e.schema_path[0] == branch]
        return [leaf for e in siblings for leaf in _leaf_errors(e)]
    return [error]


def explain(error: ValidationError) -> str:
    alternatives = _required_alternatives(error)
    if alternatives is not None and error.context:
        return f"one of {_listed(alternatives, 'or')} is required"
    excluded = error.validator_value if error.validator == "not" else None
    if isinstance(excluded, dict) and set(excluded) == {"required"}:
        keys = excluded["required"]
        together = "both" if len(keys) == 2 else "all"
        return (
            f"{_listed(keys, 'and')} cannot {together} be given; give only one of them"
        )
    message = error.message
    hint = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "pattern" and hint:
        message += f" (expected {hint})"
    return message


def describe(error: ValidationError) -> str:
    return f"{json_path(error)}: {explain(error)}"


def located_violations(name: str, document: Any) -> list[tuple[tuple, str]]:
    """List every violation of schema `name` as (path in the document, message)."""
    found = sorted(validator(name).iter_errors(document), key=lambda e: e.path)
    located: list[tuple[tuple, str]] = []
    for error in found:
        for leaf in _leaf_errors(error):
            entry = (tuple(leaf.absolute_path), explain(leaf))
            if entry not in located:
                located.append(entry)
    return located


def violations(name: str, document: Any) -> list[str]:
    """List every violation of schema `name` in `document`, each with its JSON path."""
    return [
        f"{format_path(path)}: {message}"
        for path, message in located_violations(name, document)
    ]


def check(name: str, document: Any, what: str) -> None:
    """Raise RequestInvalid listing every violation of schema `name`."""
    messages = violations(name, document)
    if messages:
        raise RequestInvalid(f"invalid {what}: {messages[0]}", errors=messages)
