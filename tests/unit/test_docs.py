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


def test_every_status_in_readme_table():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("Status codes:", 1)[1].split("\n\n", 2)[1]
    listed = {int(code) for code in re.findall(r"^\| (\d{3}) \|", table, re.M)}
    sources = "".join(
        (ROOT / "orchestrator" / name).read_text()
        for name in ("api/app.py", "api/problems.py", "service.py")
    )
    answered = {int(code) for code in re.findall(r"Problem\(\s*(\d{3})", sources)}
    answered |= {int(code) for code in re.findall(r"resp\.status = (\d{3})", sources)}
    # Falcon's own responses, rendered as problems: unknown path and method.
    answered |= {404, 405}
    answered.discard(200)
    assert sorted(answered - listed) == [], "answered, but not in the README"
    assert sorted(listed - answered) == [], "in the README, but never answered"
