"""Rendering: each request renders to the plan stored beside it in tests/golden."""

import itertools
import json
import math
import os
import random
import struct
from pathlib import Path

import pytest
import yaml

from orchestrator.config import Settings
from orchestrator.engine import references
from orchestrator.errors import PlanInvalid
from orchestrator.planning import (
    Planner,
    UniqueKeyLoader,
    load,
    rule_violations,
    to_yaml_scalar,
)

GOLDEN = Path(__file__).parent.parent / "golden"
SESSION = "Qx7Lm2Pa9Z"
PROCESSOR_IDS = [
    "7e2d9c41-3b5a-4f60-9d8e-aa01bb02cc03",
    "c3a1e5f7-2d4b-4e6a-8c0d-99aa88bb77cc",
]
PLUGIN_IDS = ["f1e2d3c4-b5a6-4798-8a9b-0c1d2e3f4a5b"]


def example(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def step_named(plan: dict, name: str) -> dict:
    return next(step for step in plan["steps"] if step["name"] == name)


def planner() -> Planner:
    counter = itertools.count(1)
    return Planner(
        Settings(), new_id=lambda: f"00000000-0000-0000-0000-{next(counter):012d}"
    )


RENDERS = {
    "template-warm": lambda p: p.template_warm(example("template-version")),
    "session-warm": lambda p: p.session_warm(SESSION, example("template-version")),
    "start": lambda p: p.start(example("start")),
    "build": lambda p: p.build(SESSION, example("build"), PROCESSOR_IDS, PLUGIN_IDS),
    "delete": lambda p: p.delete(SESSION),
}


@pytest.mark.parametrize("kind", sorted(RENDERS))
def test_plan_matches_golden(kind):
    text = RENDERS[kind](planner())
    golden = GOLDEN / f"{kind}.plan.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), (
        f"run UPDATE_GOLDEN=1 pytest {__file__} to accept"
    )
    load(text, kind)


def test_build_chains_plugins():
    plan = yaml.safe_load(RENDERS["build"](planner()))
    steps = {step["name"]: step for step in plan["steps"]}
    assert steps["plugin-1"]["body"]["directory"] == "${merge.directory}"
    assert steps["archive"]["directory"] == "${plugin-1.outputDir}"
    layers = steps["merge"]["layers"]
    assert [layer["directory"] for layer in layers] == [
        "${process-1.outputDir}",
        "${process-2.outputDir}",
    ]


def test_build_clears_area_before_merge():
    plan = load(RENDERS["build"](planner()))
    order = [step["name"] for step in plan["steps"]]
    assert order.index("clear") == order.index("processors") + 1
    assert order.index("clear") == order.index("merge") - 1
    clear = step_named(plan, "clear")
    assert clear["path"] == "/api/clear"
    assert clear["body"] == {
        "directory": "/workspace/area",
        "keep": ["${process-1.outputDir}", "${process-2.outputDir}"],
    }
    assert clear["container"] == step_named(plan, "merge")["container"]


def test_build_without_plugins_archives_merge():
    body = example("build")
    body["cyan"]["plugins"] = []
    plan = load(planner().build(SESSION, body, PROCESSOR_IDS, []))
    assert plan["steps"][-1]["directory"] == "${merge.directory}"


def test_build_plugin_config_defaults_to_object():
    body = example("build")
    body["cyan"]["plugins"][0]["config"] = None
    plan = load(planner().build(SESSION, body, PROCESSOR_IDS, PLUGIN_IDS))
    plugin = next(step for step in plan["steps"] if step["name"] == "plugin-1")
    assert plugin["body"]["config"] == {}


def test_processor_body_passes_globs_unchanged():
    body = example("build")
    plan = load(planner().build(SESSION, body, PROCESSOR_IDS, PLUGIN_IDS))
    call = step_named(plan, "processors")["steps"][1]
    assert call["body"]["globs"] == body["cyan"]["processors"][1]["files"]
    assert call["body"]["config"] == body["cyan"]["processors"][1]["config"]
    assert call["body"]["readDir"] == "/workspace/cyanprint"
    assert call["body"]["writeDir"].startswith("/workspace/area/")


def test_build_request_text_never_becomes_reference():
    body = example("build")
    config = {"script": "echo ${home}/bin", "deep": ["${merge.directory}", "$${x}"]}
    body["cyan"]["processors"][0]["config"] = config
    body["cyan"]["plugins"][0]["config"] = {"note": "${process-1.outputDir}"}
    plan = load(planner().build(SESSION, body, PROCESSOR_IDS, PLUGIN_IDS))
    outputs = {
        "merge": {"directory": "/workspace/area/merged"},
        "process-1": {"outputDir": "/workspace/area/one"},
    }
    processors = step_named(plan, "processors")["steps"]
    processor = references.substitute(processors[0]["body"], outputs)
    plugin = next(step for step in plan["steps"] if step["name"] == "plugin-1")
    plugin_body = references.substitute(plugin["body"], outputs)

    assert processor["config"] == config
    assert plugin_body["config"] == {"note": "${process-1.outputDir}"}
    assert plugin_body["directory"] == "/workspace/area/merged"


def test_proxy_body_text_passes_unchanged():
    text = '{"answers": {"cmd": "echo ${home} $${x}"}}'
    plan = load(
        planner().proxy(
            "cyan-template-x", 5550, "/api/template/init", text, "application/json"
        )
    )
    forward = references.substitute(plan["steps"][0], {})
    assert forward["raw_body"] == text


def test_start_deduplicates_containers():
    body = example("start")
    body["template"]["processors"].append(dict(body["template"]["processors"][0]))
    plan = load(planner().start(body))
    group = next(step for step in plan["steps"] if step["name"] == "containers")
    containers = [step["container"] for step in group["steps"]]
    assert len(containers) == len(set(containers)) == 4


def test_warm_without_properties_skips_blob():
    body = example("template-version")
    body["principal"]["properties"] = None
    plan = load(planner().session_warm(SESSION, body))
    volume = next(step for step in plan["steps"] if step["name"] == "template-volume")
    assert "fill" not in volume


def test_yaml_error_reported_with_line():
    with pytest.raises(PlanInvalid) as caught:
        load("name: x\nsteps:\n  - name: a\n   kind: pull\n", "hand.yaml")
    assert caught.value.message.startswith("hand.yaml:4:")


def test_duplicate_step_names_rejected():
    plan = {
        "name": "x",
        "steps": [
            {"name": "a", "kind": "pull", "image": "i:1"},
            {"name": "a", "kind": "pull", "image": "i:2"},
        ],
    }
    assert any("duplicate step name 'a'" in m for _, m in rule_violations(plan))


def test_reference_to_later_step_rejected():
    plan = {
        "name": "x",
        "steps": [
            {"name": "a", "kind": "archive", "container": "c", "directory": "${b.dir}"},
            {"name": "b", "kind": "pull", "image": "i:1"},
        ],
    }
    problems = rule_violations(plan)
    assert problems == [
        (("steps", 0), "step 'a' refers to ${b...}, but no earlier step is named 'b'")
    ]


@pytest.mark.parametrize(
    ("first", "reference", "expected"),
    [
        (
            {
                "kind": "run",
                "container": "c",
                "image": "i:1",
                "network": "n",
                "port": 1,
            },
            "${first.nokey}",
            "the output of a run step has no 'nokey'; it has container, id, address",
        ),
        (
            {"kind": "network", "network": "n"},
            "${first.id}",
            "a network step has no output",
        ),
        (
            {
                "parallel": 2,
                "steps": [{"name": "inner", "kind": "network", "network": "n"}],
            },
            "${first.container}",
            "'first' is a group; refer to one of its steps",
        ),
    ],
)
def test_reference_to_missing_output_rejected(first, reference, expected):
    plan = {
        "name": "x",
        "steps": [
            {"name": "first", **first},
            {
                "name": "use",
                "kind": "call",
                "container": "c",
                "port": 1,
                "path": "/",
                "body": {"value": reference},
            },
        ],
    }
    problems = rule_violations(plan)
    assert len(problems) == 1
    assert problems[0][1] == f"step 'use' refers to {reference}, but {expected}"


def test_reference_to_call_answer_accepts_any_key():
    plan = {
        "name": "x",
        "steps": [
            {"name": "ask", "kind": "call", "container": "c", "port": 1, "path": "/"},
            {
                "name": "use",
                "kind": "call",
                "container": "c",
                "port": 1,
                "path": "/",
                "body": {"value": "${ask.anything.deeper}"},
            },
        ],
    }
    assert rule_violations(plan) == []


def test_reference_within_group_rejected():
    plan = {
        "name": "x",
        "steps": [
            {
                "name": "g",
                "parallel": 2,
                "steps": [
                    {"name": "a", "kind": "pull", "image": "i:1"},
                    {
                        "name": "b",
                        "kind": "archive",
                        "container": "c",
                        "directory": "${a.x}",
                    },
                ],
            }
        ],
    }
    assert rule_violations(plan)


def test_unknown_step_kind_rejected():
    with pytest.raises(PlanInvalid) as caught:
        load("name: x\nsteps:\n  - {name: a, kind: explode}\n")
    assert "explode" in caught.value.message


def test_missing_step_argument_rejected():
    with pytest.raises(PlanInvalid) as caught:
        load("name: x\nsteps:\n  - {name: a, kind: pull}\n")
    assert "'image' is a required property" in caught.value.message


def test_unknown_step_argument_rejected():
    with pytest.raises(PlanInvalid) as caught:
        load("name: x\nsteps:\n  - {name: a, kind: pull, image: 'i:1', imagee: 2}\n")
    assert "imagee" in caught.value.message


def test_schema_error_located_in_yaml():
    text = (
        "name: x\n"
        "steps:\n"
        "  - name: a\n"
        "    kind: pull\n"
        "    image: 'i:1'\n"
        "  - name: b\n"
        "    kind: pull\n"
        "    imag: 'i:2'\n"
    )
    with pytest.raises(PlanInvalid) as caught:
        load(text, "hand.yaml")
    assert caught.value.message.startswith("hand.yaml:6:5: $.steps[1]: ")


def test_duplicate_name_located_in_yaml():
    text = (
        "name: x\n"
        "steps:\n"
        "  - {name: a, kind: pull, image: 'i:1'}\n"
        "  - {name: a, kind: pull, image: 'i:2'}\n"
    )
    with pytest.raises(PlanInvalid) as caught:
        load(text, "hand.yaml")
    assert caught.value.message == (
        "hand.yaml:4:12: $.steps[1].name: duplicate step name 'a'; "
        "step names must be unique"
    )


def test_yaml_filter_round_trips_every_character():
    text = "".join(chr(code) for code in range(0x110000))
    rendered = to_yaml_scalar({"config": [text, "${a.b}"]})
    loaded = yaml.load(rendered, Loader=UniqueKeyLoader)
    assert references.substitute(loaded, {}) == {"config": [text, "${a.b}"]}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{name: p, kind: pull, image: 'x:1', timeout: .nan}", "nan is not of type"),
        ("{name: p, kind: pull, image: 'x:1', timeout: .inf}", "inf is not of type"),
        ("{name: p, kind: pull, image: 'x:1', timeout: 86401}", "86401 is greater"),
        (
            "{name: r, kind: run, container: c, image: 'x:1', network: n, "
            "port: 5551.0}",
            "5551.0 is not of type 'integer'",
        ),
        ("{name: p, kind: pull, image: '127.0.0.1:5000/x'}", "with its tag or digest"),
    ],
)
def test_plan_number_and_image_rules(text, fragment):
    with pytest.raises(PlanInvalid) as raised:
        load(f"name: x\nsteps:\n  - {text}\n", "plan.yaml")
    assert fragment in raised.value.message
    assert raised.value.message.startswith("plan.yaml:3:")


@pytest.mark.parametrize(
    "image",
    ["x:1", "127.0.0.1:5000/a/b:2.0", "a/b@sha256:" + "0" * 64],
)
def test_plan_image_with_tag_or_digest_accepted(image):
    load(f"name: x\nsteps:\n  - {{name: p, kind: pull, image: '{image}'}}\n")


def test_yaml_filter_round_trips_floats():
    generator = random.Random(7)
    values = [1e300, 1e-07, 5e-324, 1e16, -2.5e-10, 0.1, -0.0, 10**30]
    for _ in range(5000):
        bits = generator.getrandbits(64)
        number = struct.unpack("d", struct.pack("Q", bits))[0]
        if math.isfinite(number):
            values.append(number)
    loaded = yaml.load(to_yaml_scalar({"config": values}), Loader=UniqueKeyLoader)
    assert loaded == {"config": values}
    assert [type(value) for value in loaded["config"]] == [type(v) for v in values]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("labels: {1: '2'}", "a mapping key must be text, not int"),
        ("labels: {? [a, b] : '1'}", "a mapping key must be text, not list"),
        ("labels: &l {a: '1'}\n    extra: *l", "alias *l is not supported"),
    ],
)
def test_plan_yaml_keys_and_aliases_rejected(text, fragment):
    plan = (
        f"name: x\nsteps:\n  - name: n\n    kind: network\n    network: n\n    {text}\n"
    )
    with pytest.raises(PlanInvalid) as raised:
        load(plan, "plan.yaml")
    assert fragment in raised.value.message
    assert raised.value.message.startswith("plan.yaml:")


def test_clean_up_step_may_use_earlier_clean_up():
    plan = {
        "name": "x",
        "steps": [{"name": "n", "kind": "network", "network": "n"}],
        "on_failure": [
            {"name": "first", "kind": "teardown", "containers": ["c"]},
            {
                "name": "second",
                "kind": "call",
                "container": "c",
                "port": 1,
                "path": "/",
                "body": {"removed": "${first.containers}"},
            },
        ],
    }
    assert rule_violations(plan) == []


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("010", 10),
        ("0x1F", 31),
        ("1e3", 1000.0),
        ("1:30", "1:30"),
        ("1_000", "1_000"),
        ("2026-01-01", "2026-01-01"),
    ],
)
def test_plan_numbers_read_as_yaml_1_2(written, value):
    plan = load(
        "name: x\nsteps:\n  - name: c\n    kind: call\n    container: c\n"
        f"    port: 1\n    path: /\n    body: {{value: {written}}}\n"
    )
    body = plan["steps"][0]["body"]
    assert body == {"value": value}
    assert type(body["value"]) is type(value)


def test_plan_binary_tag_rejected():
    with pytest.raises(PlanInvalid, match=r"tagged tag:yaml\.org,2002:binary"):
        load(
            "name: x\nsteps:\n  - name: c\n    kind: call\n    container: c\n"
            "    port: 1\n    path: /\n    body: !!binary aGk=\n",
            "plan.yaml",
        )
