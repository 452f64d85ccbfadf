"""The plan format document describes every step kind the schema allows."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_every_step_kind_documented():
    schema = json.loads((ROOT / "schemas/plan.json").read_text())
    kinds = schema["$defs"]["step"]["properties"]["kind"]["enum"]
    document = (ROOT / "docs/plans.md").read_text()
    headings = set(re.findall(r"^### (\w+)$", document, flags=re.MULTILINE))
    assert sorted(set(kinds) - headings) == []
    assert sorted(headings - set(kinds)) == []


def test_every_step_argument_documented():
    schema = json.loads((ROOT / "schemas/plan.json").read_text())
    document = (ROOT / "docs/plans.md").read_text()
    sections = re.split(r"^### ", document, flags=re.MULTILINE)
    for kind in schema["$defs"]["step"]["properties"]["kind"]["enum"]:
        section = next(s for s in sections if s.startswith(kind + "\n"))
        for argument in schema["$defs"][kind]["properties"]:
            if argument in ("name", "kind", "description"):
                continue
            assert f"`{argument}" in section, f"{kind}.{argument} is not documented"
