#!/usr/bin/env bash
# Build the Debian bookworm Python image that the test fixtures and the
# executor's test image start from. It is made with debootstrap and
# `docker import` because the test machines cannot pull from public image
# registries, but they can reach Debian's package mirror.
set -euo pipefail

TAG="cyanprint-test/python-base:bookworm"
SUITE="bookworm"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
ROOTFS=""

usage() {
    cat <<EOF
Usage: $(basename "$0") [--tag TAG] [--mirror URL] [--rootfs DIR]

Build a Debian ${SUITE} image with python3, python3-venv and ca-certificates,
using debootstrap and 'docker import'. Does nothing when TAG already exists.
Needs root (debootstrap) and a running Docker engine.

Options:
  --tag TAG      image tag to create (default: ${TAG})
  --mirror URL   Debian mirror for debootstrap (default: \$DEBIAN_MIRROR or
                 http://deb.debian.org/debian)
  --rootfs DIR   import an existing debootstrap tree from DIR instead of
                 running debootstrap (the tree is read, not changed)
  -h, --help     show this help
EOF
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
        --mirror) MIRROR="${2:?--mirror needs a value}"; shift 2 ;;
        --rootfs) ROOTFS="${2:?--rootfs needs a value}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "error: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "Base image $TAG already exists, skipping the build."
    exit 0
fi

if [[ -n "$ROOTFS" ]]; then
    if [[ ! -x "$ROOTFS/usr/bin/python3" ]]; then
        echo "error: --rootfs $ROOTFS has no usr/bin/python3; pass a tree made by debootstrap with python3 included" >&2
        exit 2
    fi
else
    if ! command -v debootstrap >/dev/null; then
        echo "error: debootstrap not found; install it with 'apt-get install -y debootstrap'" >&2
        exit 1
    fi
    if [[ $EUID -ne 0 ]]; then
        echo "error: debootstrap needs root; run this script as root or with sudo" >&2
        exit 1
    fi
    WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/cyanprint-rootfs.XXXXXX")"
    trap 'rm -rf "$WORKDIR"' EXIT
    ROOTFS="$WORKDIR/rootfs"
    echo "Running debootstrap for ${SUITE} into $ROOTFS (about a minute)..."
    if ! debootstrap --variant=minbase \
            --include=python3,python3-venv,ca-certificates \
            "$SUITE" "$ROOTFS" "$MIRROR" > "$WORKDIR/debootstrap.log" 2>&1; then
        tail -n 30 "$WORKDIR/debootstrap.log" >&2
        echo "error: debootstrap failed for mirror $MIRROR; see the log lines above" >&2
        exit 1
    fi
    # Package caches and lists are not needed at run time and add ~40 MB.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
fi

echo "Importing $ROOTFS as $TAG..."
# The kernel file systems are mounted by the container runtime, so their
# mount points are skipped in case debootstrap left anything under them.
tar -C "$ROOTFS" --numeric-owner \
    --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* \
    --exclude=./var/cache/apt/archives/*.deb \
    -c . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$TAG" >/dev/null
echo "Built $TAG."
