#!/usr/bin/env bash
# Set up and start the executor: a virtual environment with the project
# installed, the executor image (which each session runs as its merger), then
# the HTTP API. Options after the script name go to `server.py`.
#
# The merger image is the one `server.py` uses: --merger-image among the
# options, else CYANPRINT_MERGER_IMAGE, else cyanprint-executor:<version>.
# Only that default image is built here, and only when it is missing. Any
# other image is the caller's to provide, and a start pulls it when missing.
#
# Environment:
#   BASE_IMAGE               base of the image when it is built (default python:3.11-slim)
#   CYANPRINT_MERGER_IMAGE   merger image, as for server.py
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
DEFAULT_IMAGE="cyanprint-executor:$VERSION"
MERGER_IMAGE="${CYANPRINT_MERGER_IMAGE:-$DEFAULT_IMAGE}"
# As in server.py, the last --merger-image given wins over the environment.
previous=""
for argument in "$@"; do
    if [[ "$previous" == "--merger-image" ]]; then
        MERGER_IMAGE="$argument"
    elif [[ "$argument" == --merger-image=* ]]; then
        MERGER_IMAGE="${argument#--merger-image=}"
    fi
    previous="$argument"
done

if [[ "$MERGER_IMAGE" == "$DEFAULT_IMAGE" ]] && ! docker image inspect "$MERGER_IMAGE" >/dev/null 2>&1; then
    echo "==> Building $MERGER_IMAGE, which each session runs as its merger"
    scripts/build-image.sh --base "${BASE_IMAGE:-python:3.11-slim}" --tag "$MERGER_IMAGE"
fi

exec .venv/bin/python server.py "$@"
