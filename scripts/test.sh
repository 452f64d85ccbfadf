#!/usr/bin/env bash
# Create a virtualenv if needed and run the test suite. Arguments are passed
# to pytest, for example:
#   scripts/test.sh -m "not docker"      only the tests that need no engine
#   scripts/test.sh -k processor -x
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"

if [[ ! -x "$VENV/bin/python" ]]; then
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "error: '$PYTHON' is missing or older than Python 3.11; set PYTHON to a python3.11 or newer" >&2
        exit 1
    fi
    echo "==> Creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

# Reinstall only when pyproject.toml changed since the last install: the
# editable install already picks up code changes.
STAMP="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -e "$STAMP" ]]; then
    echo "==> Installing the project and its test dependencies into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test]'
    rm -f "$VENV"/.installed-*
    touch "$STAMP"
fi

if ! docker info >/dev/null 2>&1; then
    cat >&2 <<'MSG'
error: no Docker engine answers 'docker info'. The integration tests need one.
  With systemd:   sudo systemctl start docker
  Without it:     sudo sh -c 'nohup dockerd > /tmp/dockerd.log 2>&1 &'
  Not installed:  sudo apt-get install -y docker.io debootstrap docker-registry busybox-static
If the engine runs but 'permission denied' shows, add your user to the
'docker' group or run as root. Then check that 'docker info' works, and run
this script again.
MSG
    exit 1
fi

exec "$VENV/bin/python" -m pytest "$@"
