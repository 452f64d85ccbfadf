import copy
import json
from pathlib import Path

import pytest

from orchestrator.validation import format_path, violations

GOLDEN = Path(__file__).parent.parent / "golden"


def example(name: str) -> dict:
    return json.loads((GOLDEN / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("schema", "name"),
    [
        ("template-version", "template-version"),
        ("session-warm", "template-version"),
        ("start", "start"),
        ("build", "build"),
    ],
)
def test_examples_are_valid(schema, name):
    assert violations(schema, example(name)) == []


def test_unknown_template_keys_accepted():
    body = example("template-version")
    body["somethingNew"] = {"nested": True}
    body["processors"][0]["extra"] = 1
    body["principal"]["properties"]["more"] = "x"
    assert violations("template-version", body) == []


def test_wrapped_warm_body_accepted():
    assert violations("session-warm", {"template": example("template-version")}) == []


def test_every_violation_listed_with_path():
    body = example("build")
    body["cyan"]["processors"][0]["name"] = "a/b/c"
    body["merger_id"] = "../etc"
    del body["template"]["principal"]["id"]
    found = violations("build", body)
    assert any(m.startswith("$.cyan.processors[0].name: 'a/b/c'") for m in found)
    assert any(m.startswith("$.merger_id: '../etc'") for m in found)
    assert any(m.startswith("$.template.principal: 'id' is a required") for m in found)
    assert len(found) == 3


@pytest.mark.parametrize("session_id", ["bad id", "-x", "a/b", "a" * 65, "", "$(x)"])
def test_unsafe_session_id_rejected(session_id):
    body = example("start")
    body["session_id"] = session_id
    found = violations("start", body)
    assert found
    assert found[0].startswith("$.session_id:")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("processors", 0, "dockerReference"), "UPPER/case"),
        (("processors", 0, "dockerTag"), "bad tag"),
        (("processors", 0, "id"), "id with space"),
        (("principal", "properties", "blobDockerReference"), "a b"),
    ],
)
def test_docker_values_checked(path, value):
    body = example("template-version")
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = violations("template-version", body)
    assert len(found) == 1
    assert found[0].startswith(format_path(path) + f": {value!r} does not match")
    # The warm body, in either form, names the same field and nothing else.
    assert violations("session-warm", body) == found
    wrapped = violations("session-warm", {"template": body})
    assert wrapped == [found[0].replace("$.", "$.template.", 1)]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "$: one of 'principal' or 'template' is required"),
        ([], "$: [] is not of type 'object'"),
        ({"template": 3}, "$.template: 3 is not of type 'object'"),
        ({"principal": {}}, "$.principal: 'id' is a required property"),
    ],
)
def test_warm_body_form_named(body, expected):
    assert expected in violations("session-warm", body)


def test_principal_properties_may_be_null():
    body = example("template-version")
    body["principal"]["properties"] = None
    assert violations("template-version", body) == []
    body["principal"]["properties"] = {"blobDockerTag": "1"}
    found = violations("template-version", body)
    assert "$.principal.properties: 'blobDockerReference' is a required property" in (
        found
    )


@pytest.mark.parametrize(
    ("schema", "keys"),
    [("start", "'merger' or 'merger_id'"), ("build", "'merger_id' or 'merger'")],
)
def test_missing_merger_id_names_both_forms(schema, keys):
    body = example(schema)
    body.pop("merger", None)
    body.pop("merger_id", None)
    assert violations(schema, body) == [f"$: one of {keys} is required"]


def test_plan_step_alternatives_named():
    plan = {
        "name": "x",
        "steps": [
            {"name": "a", "kind": "call", "container": "c", "port": 1, "path": "/"},
            {"name": "b", "kind": "teardown"},
        ],
    }
    plan["steps"][0].update(body={}, raw_body="x")
    assert violations("plan", plan) == [
        "$.steps[0]: 'body' and 'raw_body' cannot both be given; give only one of them",
        "$.steps[1]: one of 'selector', 'containers' or 'volumes' is required",
    ]


def test_missing_fields_listed():
    found = violations("start", {})
    assert "$: 'session_id' is a required property" in found
    assert "$: 'template' is a required property" in found
    assert "$: 'write_vol_reference' is a required property" in found


def test_glob_type_must_be_lower_case():
    body = copy.deepcopy(example("build"))
    body["cyan"]["processors"][0]["files"][0]["type"] = "Template"
    assert violations("build", body)


def test_plugin_config_must_be_object():
    body = example("build")
    body["cyan"]["plugins"][0]["config"] = [1, 2]
    assert violations("build", body)
    body["cyan"]["plugins"][0]["config"] = None
    assert violations("build", body) == []


def test_trailing_newline_rejected():
    body = example("start")
    body["session_id"] = "abc\n"
    assert violations("start", body)
