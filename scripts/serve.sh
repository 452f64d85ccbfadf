#!/usr/bin/env bash
# Set up and start the executor: a virtual environment with the project
# installed, the executor image (which each session runs as its merger), then
# the HTTP API. Options after the script name go to `server.py`.
#
# Environment:
#   BASE_IMAGE     base of the executor image (default python:3.11-slim)
#   MERGER_IMAGE   tag of the executor image (default cyanprint-executor:<version>)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! docker info >/dev/null 2>&1; then
    echo "error: no Docker engine answers 'docker info'." >&2
    echo "Start one (for example 'sudo systemctl start docker', or run 'dockerd' as root) and try again." >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check -e .

VERSION="$(.venv/bin/python -c 'import orchestrator; print(orchestrator.__version__)')"
MERGER_IMAGE="${MERGER_IMAGE:-cyanprint-executor:$VERSION}"
if ! docker image inspect "$MERGER_IMAGE" >/dev/null 2>&1; then
    echo "==> Building $MERGER_IMAGE, which each session runs as its merger"
    scripts/build-image.sh --base "${BASE_IMAGE:-python:3.11-slim}" --tag "$MERGER_IMAGE"
fi

exec .venv/bin/python server.py --merger-image "$MERGER_IMAGE" "$@"
