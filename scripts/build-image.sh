#!/usr/bin/env bash
# Build the executor's Docker image from wheels prepared on the host.
#
# The wheels are made here rather than inside `docker build` because the
# build containers may have no route to a package index. Layout:
#   build/wheels/*.whl              dependency wheels, reused between runs
#   build/wheels/requirements.txt   the exact dependency versions to install
#   build/wheels/project/*.whl      the project's own wheel, rebuilt every run
#   build/build-deps/               the build backend's wheels (setuptools...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
BASE_IMAGE="python:3.11-slim"
TAG=""

usage() {
    cat <<EOF
Usage: $(basename "$0") [--base IMAGE] [--tag TAG]

Build the project's wheel and all of its dependency wheels into build/wheels
on the host, then run 'docker build' on the top-level Dockerfile. The build
itself needs no network. Wheels already in build/wheels are reused, so only
missing ones are downloaded.

Options:
  --base IMAGE   base image with python3 and its venv module
                 (default: python:3.11-slim)
  --tag TAG      tag of the image to build
                 (default: cyanprint-executor:<version in pyproject.toml>)
  -h, --help     show this help

Environment:
  PYTHON         host interpreter that builds the wheels (default: python3).
                 Its major.minor version must match the base image's python3,
                 because compiled dependency wheels are made for it.
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --base) BASE_IMAGE="${2:?--base needs a value}"; shift 2 ;;
        --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if ! command -v "$PYTHON" >/dev/null; then
    echo "error: Python interpreter '$PYTHON' not found; set PYTHON to a python3.11 or newer" >&2
    exit 1
fi

# pyproject.toml is the single source of the package name and version.
read -r NAME VERSION < <("$PYTHON" - <<'EOF'
import tomllib
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
print(project["name"], project["version"])
EOF
)
TAG="${TAG:-cyanprint-executor:$VERSION}"

HOST_PY="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
# The base image may not be present locally (it may be pulled by the build),
# so the version check runs only when it is.
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    BASE_PY="$(docker run --rm --entrypoint python3 "$BASE_IMAGE" \
        -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ "$BASE_PY" != "$HOST_PY" ]]; then
        echo "error: $BASE_IMAGE has Python $BASE_PY but $PYTHON is $HOST_PY; set PYTHON=python$BASE_PY so the wheels fit the image" >&2
        exit 1
    fi
fi

WHEELS="build/wheels"
PROJECT_WHEELS="$WHEELS/project"
BUILD_DEPS="build/build-deps"
mkdir -p "$WHEELS" "$PROJECT_WHEELS" "$BUILD_DEPS"
# Two builds at once (a test run and a benchmark, say) would delete each
# other's wheels in build/, so each waits for the one before to finish.
exec 9>build/.build-image.lock
flock 9
# Every wheel location is given on the command line, so a find-links set in
# the environment must not add others.
pip_quiet() { env -u PIP_FIND_LINKS "$PYTHON" -m pip --disable-pip-version-check "$@"; }

echo "==> Building the $NAME wheel"
rm -f "$PROJECT_WHEELS"/*.whl
# setuptools builds inside build/ in the source tree. A stale build/lib can
# put deleted modules into the wheel, so it is cleared first.
rm -rf build/lib build/bdist.*
# A fixed timestamp (1980-01-01, the earliest a zip file can hold) makes the
# wheel byte-identical while the code is unchanged, so Docker reuses the layer
# that installs it.
build_project_wheel() {
    SOURCE_DATE_EPOCH=315532800 \
        pip_quiet wheel --quiet --no-deps --wheel-dir "$PROJECT_WHEELS" "$@" .
}
# The build backend's own wheels are cached in build/build-deps, so a warm
# run needs no index.
if ! build_project_wheel --no-index --find-links "$BUILD_DEPS" 2>/dev/null; then
    mapfile -t BUILD_REQUIRES < <("$PYTHON" - <<'EOF'
import tomllib
with open("pyproject.toml", "rb") as f:
    for requirement in tomllib.load(f)["build-system"]["requires"]:
        print(requirement)
EOF
)
    pip_quiet download --quiet --dest "$BUILD_DEPS" "${BUILD_REQUIRES[@]}"
    build_project_wheel --no-index --find-links "$BUILD_DEPS"
fi
PROJECT_WHEEL="$(ls "$PROJECT_WHEELS"/*.whl)"

echo "==> Collecting dependency wheels in $WHEELS"
REPORT="$(mktemp)"
trap 'rm -f "$REPORT"' EXIT
# Resolve from the local wheels only. When that fails, some wheel is missing:
# fetch it (pip wheel reuses what is already there) and resolve again.
resolve_offline() {
    pip_quiet install --quiet --dry-run --ignore-installed --report "$REPORT" \
        --no-index --find-links "$WHEELS" "$PROJECT_WHEEL"
}
if ! resolve_offline 2>/dev/null; then
    pip_quiet wheel --quiet --wheel-dir "$WHEELS" --find-links "$WHEELS" "$PROJECT_WHEEL"
    rm -f "$WHEELS/$(basename "$PROJECT_WHEEL")"
    resolve_offline
fi

# Pin the resolved versions and drop wheels that are no longer needed, so
# the image layer with the dependencies stays cached until they change.
"$PYTHON" - "$REPORT" "$WHEELS" "$NAME" <<'EOF'
import json
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

report_path, wheel_dir, project = sys.argv[1], Path(sys.argv[2]), sys.argv[3]


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


pins, keep = [], set()
for item in json.loads(Path(report_path).read_text())["install"]:
    name = item["metadata"]["name"]
    if canonical(name) == canonical(project):
        continue
    pins.append(f"{canonical(name)}=={item['metadata']['version']}")
    keep.add(Path(unquote(urlparse(item["download_info"]["url"]).path)).name)

for wheel in wheel_dir.glob("*.whl"):
    if wheel.name not in keep:
        wheel.unlink()
missing = [name for name in keep if not (wheel_dir / name).exists()]
if missing:
    sys.exit(f"error: resolved wheels are not in {wheel_dir}: {', '.join(missing)}")
(wheel_dir / "requirements.txt").write_text("\n".join(sorted(pins)) + "\n")
print(f"{len(pins)} dependency wheels pinned in {wheel_dir}/requirements.txt")
EOF

echo "==> Building image $TAG from $BASE_IMAGE"
PREVIOUS_ID="$(docker image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
docker build --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$TAG" .
# Every code change leaves the previous image untagged. Remove it unless
# something still uses it (a container, or another tag).
CURRENT_ID="$(docker image inspect --format '{{.Id}}' "$TAG")"
if [[ -n "$PREVIOUS_ID" && "$PREVIOUS_ID" != "$CURRENT_ID" ]] \
        && [[ "$(docker image inspect --format '{{len .RepoTags}}' "$PREVIOUS_ID" 2>/dev/null)" == "0" ]]; then
    docker image rm "$PREVIOUS_ID" >/dev/null 2>&1 || true
fi
echo "Built $TAG."
