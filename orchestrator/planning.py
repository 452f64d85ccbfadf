"""Render requests into YAML execution plans and validate them.

Planning never touches Docker: it only turns a validated request into a plan
document, so a dry run can show exactly what applying would do.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import yaml

from . import names
from .config import Settings
from .engine.references import escape
from .errors import PlanInvalid
from .validation import format_path, located_violations

PLAN_KINDS = (
    "template-warm",
    "session-warm",
    "start",
    "build",
    "delete",
    "try",
    "proxy",
    "setup",
    "cleanup",
)


# Characters JSON writes raw but YAML does not read back unchanged: DEL and the
# C1 controls are rejected, NEL and the line and paragraph separators are read
# as line breaks, and surrogates and non-characters are not printable.
YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")


# A JSON string, or a number with an exponent. YAML 1.1 reads 1e+300 as text
# unless it has a fraction and a signed exponent, so both are made explicit.
JSON_STRING_OR_EXPONENT = re.compile(
    r'"(?:[^"\\]|\\.)*"|(-?\d+)(\.\d+)?[eE]([-+]?)(\d+)'
)


def _yaml_number(match: re.Match[str]) -> str:
    whole, fraction, sign, digits = match.groups()
    if whole is None:
        return match.group(0)
    return f"{whole}{fraction or '.0'}e{sign or '+'}{digits}"


def to_json_text(value: Any) -> str:
    """Write `value` as JSON that YAML reads back as exactly the same value."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text = JSON_STRING_OR_EXPONENT.sub(_yaml_number, text)
    return YAML_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def to_yaml_scalar(value: Any) -> str:
    """Render request data as a YAML flow node, its `${` escaped to stay text.

    JSON is valid YAML, with simpler escaping than YAML's own flow style.
    """
    return to_json_text(escape(value))


def to_yaml_reference(reference: str) -> str:
    """Render a `${step.key}` reference the plan itself writes, left unescaped."""
    return to_json_text(reference)


@cache
def environment() -> jinja2.Environment:
    folder = resources.files("orchestrator.plans")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["yaml"] = to_yaml_scalar
    env.filters["reference"] = to_yaml_reference
    env.globals.update(
        names=names,
        labels=names.labels,
        image_ref=names.image_ref,
    )
    return env


def render(kind: str, variables: dict[str, Any]) -> str:
    """Render the plan template of `kind` to YAML text."""
    if kind not in PLAN_KINDS:
        raise PlanInvalid(
            f"unknown plan kind {kind!r}; expected one of {', '.join(PLAN_KINDS)}"
        )
    return environment().get_template(f"{kind}.yaml.j2").render(**variables)


def load(text: str, source: str = "<plan>") -> dict[str, Any]:
    """Parse and validate YAML plan text; errors name the source, line and column."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        document = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error)
        raise PlanInvalid(f"{where}: invalid YAML: {problem}") from error
    problems = plan_problems(document)
    if problems:
        messages = [
            f"{source}:{locate(root, path)}: {format_path(path)}: {message}"
            for path, message in problems
        ]
        raise PlanInvalid(messages[0], errors=messages)
    return document


class UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that rejects a key written twice in one mapping.

    PyYAML keeps the last value of a repeated key without a word, which would
    let a typo in a hand-written plan silently override an argument.
    """

    def compose_node(self, parent, index):
        # An alias repeats a node without copying it, so a few lines of nested
        # aliases can stand for billions of nodes once the plan is walked.
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"alias *{event.anchor} is not supported in plans; write the value "
                f"out where it is used",
                event.start_mark,
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"a mapping key must be text, not {type(key).__name__}; "
                    f"quote the key",
                    key_node.start_mark,
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1, PyYAML's default, reads 010 as 8, 1:30 as 90 and 1_000 as 1000,
# and 1e3 as text. Plans follow the YAML 1.2 core schema for numbers instead,
# which matches JSON, and leave dates as text.
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag not in (*_NUMBER_TAGS, "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


def _reject_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"values tagged {node.tag} are not supported in plans; write plain text, "
        f"numbers, lists and mappings",
        node.start_mark,
    )


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    UniqueKeyLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _reject_tag)


def check(plan: Any, source: str = "<plan>") -> None:
    """Validate a plan document that has no YAML text to point into."""
    problems = plan_problems(plan)
    if problems:
        messages = [f"{source}: {format_path(p)}: {m}" for p, m in problems]
        raise PlanInvalid(messages[0], errors=messages)


def plan_problems(plan: Any) -> list[tuple[tuple, str]]:
    """Check the plan schema first, then the rules a schema cannot state."""
    return located_violations("plan", plan) or rule_violations(plan)


def locate(root: yaml.Node | None, path: tuple) -> str:
    """Return `line:column` of the YAML node at `path`, or of its nearest parent."""
    node = root
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
    if node is None:
        return "1:1"
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def rule_violations(plan: dict[str, Any]) -> list[tuple[tuple, str]]:
    """Check unique step names and that references point at outputs of earlier steps."""
    from .engine.references import find_keys
    from .engine.steps import STEP_KINDS

    problems: list[tuple[tuple, str]] = []
    seen: set[str] = set()
    kinds: dict[str, str] = {}

    def visit(step: dict[str, Any], earlier: set[str], path: tuple) -> None:
        name = step["name"]
        if name in seen:
            message = f"duplicate step name {name!r}; step names must be unique"
            problems.append(((*path, "name"), message))
        seen.add(name)
        kinds[name] = step.get("kind", "group")
        arguments = {k: v for k, v in step.items() if k != "steps"}
        for target, key in find_keys(arguments):
            if target not in earlier:
                problems.append(
                    (
                        path,
                        f"step {name!r} refers to ${{{target}...}}, but no earlier "
                        f"step is named {target!r}",
                    )
                )
                continue
            problem = output_problem(target, kinds[target], key, STEP_KINDS)
            if problem:
                problems.append((path, f"step {name!r} refers to {problem}"))

    for index, item in enumerate(plan.get("steps", [])):
        done = set(seen)
        path = ("steps", index)
        if "parallel" in item:
            visit({"name": item["name"]}, done, path)
            for inner, step in enumerate(item["steps"]):
                visit(step, done, (*path, "steps", inner))
        else:
            visit(item, done, path)
    finished = set(seen)
    for index, step in enumerate(plan.get("on_failure", [])):
        visit(step, finished, ("on_failure", index))
        # A clean-up step may use the output of the clean-up steps before it.
        finished.add(step["name"])
    return problems


def output_problem(target: str, kind: str, key: str, step_kinds: dict) -> str:
    """Say why `${target.key}` names no output of a `kind` step, or return ''."""
    reference = f"${{{target}{'.' + key if key else ''}}}"
    if kind == "group":
        return f"{reference}, but {target!r} is a group; refer to one of its steps"
    outputs = step_kinds[kind].outputs
    if outputs == ():
        return f"{reference}, but a {kind} step has no output"
    if outputs is not None and key and key not in outputs:
        return (
            f"{reference}, but the output of a {kind} step has no {key!r}; "
            f"it has {', '.join(outputs)}"
        )
    return ""


def unique_images(*groups: list[str]) -> list[str]:
    ordered: dict[str, None] = {}
    for group in groups:
        for image in group:
            ordered.setdefault(image, None)
    return list(ordered)


def dependency_images(template: dict[str, Any]) -> list[str]:
    return unique_images(
        [
            names.image_ref(p["dockerReference"], p["dockerTag"])
            for p in template["processors"]
        ],
        [
            names.image_ref(p["dockerReference"], p["dockerTag"])
            for p in template["plugins"]
        ],
    )


def resolver_images(resolvers: list[dict[str, Any]]) -> list[str]:
    return [names.image_ref(r["dockerReference"], r["dockerTag"]) for r in resolvers]


def unique_by_id(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for item in items:
        seen.setdefault(item["id"], item)
    return list(seen.values())


class Planner:
    """Builds the variables of each plan template from a validated request."""

    def __init__(
        self, settings: Settings, new_id: Callable[[], str] | None = None
    ) -> None:
        self.settings = settings
        self.new_id = new_id or (lambda: str(uuid.uuid4()))

    def _common(self) -> dict[str, Any]:
        return {"settings": self.settings}

    def template_warm(self, template: dict[str, Any]) -> str:
        properties = template["principal"].get("properties")
        images = []
        if properties:
            images = [
                names.image_ref(
                    properties["blobDockerReference"], properties["blobDockerTag"]
                ),
                names.image_ref(
                    properties["templateDockerReference"],
                    properties["templateDockerTag"],
                ),
            ]
        resolvers = unique_by_id(template.get("resolvers") or [])
        images = unique_images(images, resolver_images(resolvers))
        return render(
            "template-warm",
            {
                **self._common(),
                "template": template,
                "properties": properties,
                "images": images,
                "blob": images[0] if properties else None,
                "template_image": images[1] if properties else None,
                "resolvers": resolvers,
            },
        )

    def session_warm(self, session_id: str, template: dict[str, Any]) -> str:
        properties = template["principal"].get("properties")
        blob = (
            names.image_ref(
                properties["blobDockerReference"], properties["blobDockerTag"]
            )
            if properties
            else None
        )
        images = unique_images(
            dependency_images(template),
            [blob] if blob else [],
            [self.settings.merger_image],
        )
        return render(
            "session-warm",
            {
                **self._common(),
                "session_id": session_id,
                "template": template,
                "blob": blob,
                "images": images,
            },
        )

    def start(self, request: dict[str, Any]) -> str:
        template = request["template"]
        merger_id = request.get("merger", {}).get("merger_id") or request["merger_id"]
        reference = request["write_vol_reference"]
        images = unique_images(
            dependency_images(template), [self.settings.merger_image]
        )
        return render(
            "start",
            {
                **self._common(),
                "session_id": request["session_id"],
                "template": template,
                "processors": unique_by_id(template["processors"]),
                "plugins": unique_by_id(template["plugins"]),
                "merger_id": merger_id,
                "session_volume": names.session_volume(
                    reference["cyan_id"], reference["session_id"]
                ),
                "images": images,
            },
        )

    def build(
        self,
        session_id: str,
        request: dict[str, Any],
        processor_ids: list[str],
        plugin_ids: list[str],
    ) -> str:
        """Render a build; `*_ids` are the resolved ids, in the order of `cyan`."""
        cyan = request["cyan"]
        merger_id = request.get("merger_id") or request["merger"]["merger_id"]
        processors = [
            {
                "id": identifier,
                "reference": entry["name"],
                "write_dir": f"{names.AREA_MOUNT}/{self.new_id()}",
                "globs": entry.get("files") or [],
                "config": entry.get("config"),
            }
            for entry, identifier in zip(cyan["processors"], processor_ids, strict=True)
        ]
        plugins = [
            {
                "id": identifier,
                "reference": entry["name"],
                "config": entry.get("config") or {},
            }
            for entry, identifier in zip(cyan["plugins"], plugin_ids, strict=True)
        ]
        return render(
            "build",
            {
                **self._common(),
                "session_id": session_id,
                "merger_id": merger_id,
                "processors": processors,
                "plugins": plugins,
                "resolvers": unique_by_id(request["template"].get("resolvers") or []),
                "output": f"{names.AREA_MOUNT}/{self.new_id()}",
            },
        )

    def delete(self, session_id: str) -> str:
        return render("delete", {**self._common(), "session_id": session_id})

    def try_session(self, request: dict[str, Any], path: str | None) -> str:
        """Render a try session; `path` is the checked local folder, if any."""
        template = request["template"]
        source = request.get("source", "image")
        blob = None
        if source == "image":
            image = request["imageRef"]
            blob = names.image_ref(image["reference"], image["tag"])
        resolvers = unique_by_id(template.get("resolvers") or [])
        images = unique_images(
            dependency_images(template),
            resolver_images(resolvers),
            [blob] if blob else [self.settings.merger_image],
        )
        return render(
            "try",
            {
                **self._common(),
                "session_id": request["sessionId"],
                "template_id": request["localTemplateId"],
                "source": source,
                "blob": blob,
                "path": path,
                "within": self.settings.allowed_try_root,
                "images": images,
                "resolvers": resolvers,
            },
        )

    def proxy(
        self, container: str, port: int, path: str, body: str, content_type: str
    ) -> str:
        return render(
            "proxy",
            {
                **self._common(),
                "container": container,
                "port": port,
                "path": path,
                "body": body,
                "content_type": content_type,
            },
        )

    def setup(self) -> str:
        return render("setup", self._common())

    def cleanup(self) -> str:
        return render("cleanup", self._common())
