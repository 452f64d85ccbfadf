"""Docker names and labels of the resources a session owns.

Names follow the ones existing CyanPrint tools expect; labels carry the facts
clean-up needs, so nothing ever has to be parsed back out of a name.
"""

from __future__ import annotations

import re

# A fragment that Docker accepts inside container and volume names. It must
# start with a letter or digit, so it can never read as an option or a path.
SAFE_FRAGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Ids are UUIDs. Requiring the dashed form keeps `strip` one-to-one, so two
# different ids can never become the same Docker name.
UUID = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)

# Session ids that would be routed to another endpoint (POST /executor/try).
RESERVED_SESSION_IDS = frozenset({"try"})

LABEL_DEV = "cyanprint.dev"
LABEL_SESSION = "cyanprint.session"
LABEL_KIND = "cyanprint.kind"
LABEL_ID = "cyanprint.id"

NETWORK = "cyanprint"

TEMPLATE_MOUNT = "/workspace/cyanprint"
AREA_MOUNT = "/workspace/area"

PORTS = {
    "template": 5550,
    "processor": 5551,
    "plugin": 5552,
    "resolver": 5553,
    "merger": 9000,
}


def is_safe(fragment: str) -> bool:
    return bool(SAFE_FRAGMENT.fullmatch(fragment))


def is_uuid(identifier: str) -> bool:
    return bool(UUID.fullmatch(identifier))


def strip(identifier: str) -> str:
    """Remove the dashes of a UUID, as CyanPrint does in every Docker name."""
    return identifier.replace("-", "")


def template_volume(template_id: str) -> str:
    return f"cyan-{strip(template_id)}"


def session_volume(template_id: str, session_id: str) -> str:
    return f"cyan-{strip(template_id)}-{session_id}"


def session_container(kind: str, identifier: str, session_id: str) -> str:
    """Name a processor, plugin or merger container of one session."""
    return f"cyan-{kind}-{strip(identifier)}-{session_id}"


def template_container(template_id: str) -> str:
    return f"cyan-template-{strip(template_id)}"


def resolver_container(resolver_id: str) -> str:
    return f"cyan-resolver-{strip(resolver_id)}"


def labels(kind: str, identifier: str = "", session_id: str = "") -> dict[str, str]:
    """Return the labels of a resource; shared resources have no session label."""
    result = {LABEL_DEV: "true", LABEL_KIND: kind}
    if identifier:
        result[LABEL_ID] = identifier
    if session_id:
        result[LABEL_SESSION] = session_id
    return result


def image_ref(reference: str, tag: str) -> str:
    return f"{reference}:{tag}"
