"""Resolvers on a real engine: warmed with the template, deciding conflicts."""

from __future__ import annotations

import random

import pytest

from orchestrator import names

from .conftest import make_template, new_id, new_session
from .helpers import build_body, read_archive
from .test_flow import warm_and_start

pytestmark = pytest.mark.docker


def resolver_entry(images, resolver_id, files, config=None):
    reference, tag = images["resolver"]
    return {
        "id": resolver_id,
        "version": 1,
        "dockerReference": reference,
        "dockerTag": tag,
        "config": config if config is not None else {"separator": "|"},
        "files": files,
    }


def conflicting_processors(extra_second=None):
    second = {"shared.txt": "B", "plain.md": "second", **(extra_second or {})}
    return [
        {
            "name": "cyan/one",
            "config": {
                "files": {"shared.txt": "A", "plain.md": "first"},
                "bulk": {"count": 1, "size": 64, "dir": "bin"},
            },
            "files": [],
        },
        {
            "name": "cyan/two",
            "config": {
                "files": second,
                "modes": {"shared.txt": "0600"},
                "bulk": {"count": 1, "size": 64, "dir": "bin"},
            },
            "files": [],
        },
    ]


def test_conflict_resolved_by_resolver(
    server, cleanup, fixture_images, docker_client, caplog
):
    resolver_id = new_id()
    entry = resolver_entry(fixture_images, resolver_id, ["**/*.txt", "**/*.bin"])
    template = make_template(
        fixture_images,
        {"cyan/one": "processor", "cyan/two": "processor"},
        {},
        resolvers=[entry, dict(entry)],
    )
    cleanup.templates.append(template.id)
    warmed = server.post("/template/warm", template.body)
    assert warmed.status_code == 200, warmed.text
    containers = docker_client.containers.list(
        filters={"name": names.resolver_container(resolver_id)}
    )
    assert len(containers) == 1
    cleanup.resolvers.append(resolver_id)

    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    response = server.post(
        f"/executor/{session_id}",
        build_body(template.body, merger_id, conflicting_processors(), []),
    )
    assert response.status_code == 200, response.text
    files, _ = read_archive(response.content)
    assert files["shared.txt"] == (b"A|B", 0o600)
    assert files["plain.md"][0] == b"second"
    # Random bytes are not text: the last version is kept byte for byte.
    assert files["bin/file-00000.bin"][0] == random.Random(0).randbytes(64)
    warnings = [
        record.getMessage()
        for record in caplog.records
        if record.levelname == "WARNING" and record.name.endswith("steps.merge")
    ]
    assert len(warnings) == 1
    assert "bin/file-00000.bin" in warnings[0]
    assert "not UTF-8" in warnings[0]


def test_several_matching_resolvers_fail(server, cleanup, fixture_images):
    first, second = new_id(), new_id()
    template = make_template(
        fixture_images,
        {"cyan/one": "processor", "cyan/two": "processor"},
        {},
        resolvers=[
            resolver_entry(fixture_images, first, ["*.txt"]),
            resolver_entry(fixture_images, second, ["**/shared.txt"]),
        ],
    )
    cleanup.templates.append(template.id)
    cleanup.resolvers.extend([first, second])
    assert server.post("/template/warm", template.body).status_code == 200
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    response = server.post(
        f"/executor/{session_id}",
        build_body(template.body, merger_id, conflicting_processors(), []),
    )
    assert response.status_code == 400, response.text
    text = " ".join(response.json()["data"])
    assert "shared.txt" in text
    assert first in text
    assert second in text


def resolved_build(server, cleanup, fixture_images, resolver, processors):
    """Warm a template with one resolver, start a session and build it."""
    template = make_template(
        fixture_images,
        {"cyan/one": "processor", "cyan/two": "processor"},
        {},
        resolvers=[resolver],
    )
    cleanup.templates.append(template.id)
    cleanup.resolvers.append(resolver["id"])
    assert server.post("/template/warm", template.body).status_code == 200
    session_id, merger_id = new_session(), new_id()
    warm_and_start(server, cleanup, template, session_id, merger_id)
    return server.post(
        f"/executor/{session_id}", build_body(template.body, merger_id, processors, [])
    )


def test_resolver_matches_deep_path(server, cleanup, fixture_images):
    resolver = resolver_entry(fixture_images, new_id(), ["**/deep.txt"])
    processors = conflicting_processors()
    for processor in processors:
        processor["config"]["files"]["a/b/deep.txt"] = processor["name"]
    response = resolved_build(server, cleanup, fixture_images, resolver, processors)
    assert response.status_code == 200, response.text
    files, _ = read_archive(response.content)
    assert files["a/b/deep.txt"][0] == b"cyan/one|cyan/two"
    # shared.txt matches no resolver glob, so the last version wins.
    assert files["shared.txt"] == (b"B", 0o600)


def test_resolver_answering_other_path_fails(server, cleanup, fixture_images):
    images = dict(fixture_images)
    images["resolver"] = fixture_images["fault-wrong-path"]
    resolver = resolver_entry(images, new_id(), ["shared.txt"])
    response = resolved_build(
        server, cleanup, fixture_images, resolver, conflicting_processors()
    )
    assert response.status_code == 400, response.text
    text = " ".join(response.json()["data"])
    assert "shared.txt" in text
    assert "somewhere/else.txt" in text
    assert resolver["id"] in text


def test_resolver_kept_or_replaced(server, cleanup, fixture_images, docker_client):
    resolver_id = new_id()
    template = make_template(
        fixture_images,
        {"cyan/one": "processor"},
        {},
        resolvers=[resolver_entry(fixture_images, resolver_id, ["*.txt"])],
    )
    cleanup.templates.append(template.id)
    cleanup.resolvers.append(resolver_id)
    assert server.post("/template/warm", template.body).status_code == 200
    name = names.resolver_container(resolver_id)
    first = docker_client.containers.get(name)

    assert server.post("/template/warm", template.body).status_code == 200
    assert docker_client.containers.get(name).id == first.id

    first.stop(timeout=1)
    assert server.post("/template/warm", template.body).status_code == 200
    replaced = docker_client.containers.get(name)
    assert replaced.id != first.id
    assert replaced.status == "running"
