#!/usr/bin/env bash
# Run the static checks and the tests that need no Docker engine: ruff (lint
# and format), mypy on the package, and pytest -m "not docker".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'

.venv/bin/ruff check orchestrator tests bench server.py
.venv/bin/ruff format --check orchestrator tests bench server.py
.venv/bin/mypy
.venv/bin/python -m pytest -q -m "not docker" "$@"
