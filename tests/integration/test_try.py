"""Try sessions: a local template's files from its blob image or a local folder."""

from __future__ import annotations

import os
import threading

import pytest
from support.containers import command_output

from orchestrator import names

from .conftest import make_template, new_id, new_session
from .test_failures import assert_problem

pytestmark = pytest.mark.docker


def try_body(template, session_id, template_id, **source):
    return {
        "sessionId": session_id,
        "localTemplateId": template_id,
        "template": template.body,
        **source,
    }


def read_volume(client, images, volume: str, path: str) -> str:
    """Read one file out of a volume with the busybox in the blob fixture image."""
    return command_output(
        client,
        images["blob-local"],
        ["/bin/busybox", "cat", f"/data/{path}"],
        volumes={volume: {"bind": "/data", "mode": "ro"}},
    )


@pytest.fixture
def images(fixture_images, local_fixture_images):
    return {**fixture_images, "blob-local": local_fixture_images["blob"]}


@pytest.fixture
def template(images):
    return make_template(
        images, {"cyan/processor": "processor"}, {"cyan/plugin": "plugin"}
    )


def remember(cleanup, template_id):
    cleanup.templates.append(template_id)


def test_try_from_image(server, cleanup, docker_client, images, template):
    template_id, session_id = new_id(), new_session()
    remember(cleanup, template_id)
    reference, tag = images["blob"]
    body = try_body(
        template,
        session_id,
        template_id,
        source="image",
        imageRef={"reference": reference, "tag": tag},
    )
    response = server.post("/executor/try", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"blobVolume": {"cyan_id": template_id, "session_id": ""}}
    volume = names.template_volume(template_id)
    assert "{{name}}" in read_volume(docker_client, images, volume, "README.md")

    # A second call finds the volume and fills nothing again.
    checked = server.post("/executor/try?check=true", body)
    steps = {step["name"]: step for step in checked.json()["steps"]}
    assert steps["blob-volume"]["action"] == "nothing"
    assert server.post("/executor/try", body).status_code == 200


def test_try_pulls_missing_images(server, cleanup, docker_client, images, template):
    reference, tag = images["plugin"]
    if any(f"{reference}:{tag}" in image.tags for image in docker_client.images.list()):
        docker_client.images.remove(f"{reference}:{tag}")
    template_id = new_id()
    remember(cleanup, template_id)
    blob_reference, blob_tag = images["blob"]
    body = try_body(
        template,
        new_session(),
        template_id,
        imageRef={"reference": blob_reference, "tag": blob_tag},
    )
    assert server.post("/executor/try", body).status_code == 200
    docker_client.images.get(f"{reference}:{tag}")


def test_try_from_folder(server, cleanup, docker_client, images, template, tmp_path):
    folder = tmp_path / "local-template"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "hello.txt").write_text("hello from a folder")
    (folder / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(folder / "run.sh", 0o755)
    template_id = new_id()
    remember(cleanup, template_id)
    body = try_body(
        template, new_session(), template_id, source="path", path=str(folder)
    )
    response = server.post("/executor/try", body)
    assert response.status_code == 200, response.text
    volume = names.template_volume(template_id)
    assert read_volume(docker_client, images, volume, "nested/hello.txt") == (
        "hello from a folder"
    )
    listing = command_output(
        docker_client,
        images["blob-local"],
        ["/bin/busybox", "stat", "-c", "%a", "/data/run.sh"],
        volumes={volume: {"bind": "/data", "mode": "ro"}},
    )
    assert listing.strip() == "755"


def test_ten_try_sessions_in_parallel(
    server, cleanup, docker_client, template, tmp_path
):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    shared_id, other_ids = new_id(), [new_id() for _ in range(5)]
    for template_id in [shared_id, *other_ids]:
        remember(cleanup, template_id)
    # Five sessions share one local template; five have one each.
    template_ids = [shared_id] * 5 + other_ids
    responses = {}

    def run(index, template_id):
        body = try_body(
            template, new_session(), template_id, source="path", path=str(folder)
        )
        responses[index] = server.post("/executor/try", body)

    threads = [
        threading.Thread(target=run, args=(index, template_id))
        for index, template_id in enumerate(template_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index, response in responses.items():
        assert response.status_code == 200, (index, response.text)
        assert response.json()["blobVolume"]["cyan_id"] == template_ids[index]
    assert len(responses) == 10
    helpers = docker_client.containers.list(
        all=True, filters={"label": "cyanprint.kind=fill"}
    )
    assert [
        c.name
        for c in helpers
        if any(t.replace("-", "") in c.name for t in template_ids)
    ] == []


def test_folder_outside_root_rejected(server, template, docker_client):
    template_id = new_id()
    body = try_body(template, new_session(), template_id, source="path", path="/etc")
    assert_problem(server.post("/executor/try", body), 400, "outside the allowed root")
    assert not docker_client.volumes.list(
        filters={"name": names.template_volume(template_id)}
    )


def test_symlink_out_of_root_rejected(server, template, tmp_path):
    link = tmp_path / "sneaky"
    link.symlink_to("/etc")
    body = try_body(template, new_session(), new_id(), source="path", path=str(link))
    assert_problem(server.post("/executor/try", body), 400, "resolves to /etc")


def test_missing_folder_rejected(server, template, tmp_path):
    body = try_body(
        template, new_session(), new_id(), source="path", path=str(tmp_path / "none")
    )
    assert_problem(server.post("/executor/try", body), 400, "is not a folder")


def test_image_source_needs_image_ref(server, template):
    body = try_body(template, new_session(), new_id(), source="image")
    assert_problem(server.post("/executor/try", body), 400, "'imageRef' is a required")
    body = try_body(template, new_session(), new_id(), source="path")
    assert_problem(server.post("/executor/try", body), 400, "'path' is a required")


def test_failed_fill_removes_volume(server, cleanup, docker_client, images, template):
    template_id = new_id()
    remember(cleanup, template_id)
    reference, tag = images["fault-exit"]
    body = try_body(
        template,
        new_session(),
        template_id,
        imageRef={"reference": reference, "tag": tag},
    )
    response = server.post("/executor/try", body)
    assert_problem(response, 400, "exited with code 3", "fatal: bad configuration")
    volume = names.template_volume(template_id)
    assert [v.name for v in docker_client.volumes.list() if v.name == volume] == []
