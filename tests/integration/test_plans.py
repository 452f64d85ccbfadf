"""Hand-written plans in tests/plans, applied with the command line on a real engine."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import docker.errors
import pytest

from .helpers import apply_and_interrupt, read_archive, wait_for_container

pytestmark = pytest.mark.docker

PLANS = Path(__file__).parents[1] / "plans"
NETWORK = "cyanprint-plans"


def cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )


def labelled(client, session: str) -> list[str]:
    label = f"cyanprint.session={session}"
    found = [c.name for c in client.containers.list(all=True, filters={"label": label})]
    found += [v.name for v in client.volumes.list(filters={"label": label})]
    return sorted(found)


@pytest.fixture(scope="module")
def plan_images(docker_client, local_fixture_images, executor_image):
    """Tag the fixture images with the fixed names the plans use."""
    sources = {
        "processor": local_fixture_images["processor"],
        "blob": local_fixture_images["blob"],
        "fault-exit": local_fixture_images["fault-exit"],
        "executor": executor_image,
    }
    for name, tag in sources.items():
        docker_client.images.get(tag).tag(f"cyanprint-plans/{name}", "test")
    yield
    for session in ("plans-two", "plans-fail"):
        cli("apply", str(PLANS / "remove-two-containers.yaml"))
        for container in docker_client.containers.list(
            all=True, filters={"label": f"cyanprint.session={session}"}
        ):
            container.remove(force=True)
        for volume in docker_client.volumes.list(
            filters={"label": f"cyanprint.session={session}"}
        ):
            volume.remove(force=True)
    try:
        docker_client.networks.get(NETWORK).remove()
    except docker.errors.APIError:
        pass
    # Only the extra names go, because each image keeps its own tag.
    for name in sources:
        try:
            docker_client.images.remove(f"cyanprint-plans/{name}:test")
        except docker.errors.ImageNotFound:
            pass


def test_two_containers_plan(plan_images, docker_client, tmp_path):
    archive = tmp_path / "out.tar.gz"
    first = cli("apply", str(PLANS / "two-containers.yaml"), "--output", str(archive))
    assert first.returncode == 0, first.stdout + first.stderr
    assert "recap: ok=" in first.stdout
    assert "failed=0" in first.stdout
    assert "changed  first" in first.stdout
    files, _ = read_archive(archive.read_bytes())
    assert files["shared.txt"] == (b"from second", 0o644)
    assert files["second.txt"][0] == b"only second"
    assert b"planned" in files["README.md"][0]

    # Applying the same plan again changes nothing.
    again = cli("apply", str(PLANS / "two-containers.yaml"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "changed=0" in again.stdout
    assert "failed=0" in again.stdout
    statuses = [
        line.split()[0]
        for line in again.stdout.splitlines()
        if line[:2] in ("ok", "ch")
    ]
    assert statuses and set(statuses) == {"ok"}

    check = cli("apply", str(PLANS / "two-containers.yaml"), "--check")
    assert check.returncode == 0, check.stderr
    assert "nothing  first" in check.stdout
    assert "call     call-first" in check.stdout

    removed = cli("apply", str(PLANS / "remove-two-containers.yaml"))
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert "changed  remove" in removed.stdout
    assert labelled(docker_client, "plans-two") == []


def test_check_lists_changes_on_clean_engine(plan_images, docker_client):
    result = cli("apply", str(PLANS / "two-containers.yaml"), "--check")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("create   template-files") for line in lines)
    assert any(line.startswith("start    merger") for line in lines)
    assert labelled(docker_client, "plans-two") == []


def test_check_exits_1_when_a_step_would_fail(plan_images, tmp_path):
    plan = tmp_path / "missing-volume.yaml"
    plan.write_text(
        "name: missing-volume\n"
        "steps:\n"
        "  - name: needs-volume\n"
        "    kind: volume\n"
        "    volume: cyanprint-plans-never-made\n"
        "    must_exist: true\n"
        "    hint: warm the session first\n"
    )
    result = cli("apply", str(plan), "--check")

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("fail     needs-volume")
    assert "warm the session first" in result.stdout
    assert "1 would fail" in result.stdout


def test_failing_plan_cleans_up(plan_images, docker_client):
    result = cli("apply", str(PLANS / "fails-halfway.yaml"))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("changed  healthy") for line in lines)
    broken = next(line for line in lines if line.startswith("failed   broken"))
    assert "exit code 3" in broken
    assert "fatal: bad configuration" in result.stdout
    assert any(line.startswith("skipped  never-reached") for line in lines)
    assert any(line.startswith("changed  clean-up") for line in lines)
    assert "failed=1" in result.stdout
    assert labelled(docker_client, "plans-fail") == []


def test_yaml_error_reported_with_line():
    result = cli("validate", str(PLANS / "yaml-error.yaml"))
    assert result.returncode == 2
    assert "yaml-error.yaml:7:4: invalid YAML" in result.stderr
    applied = cli("apply", str(PLANS / "yaml-error.yaml"))
    assert applied.returncode == 2
    assert "yaml-error.yaml:7:4" in applied.stderr


def test_valid_plans_validate():
    names = ["two-containers.yaml", "fails-halfway.yaml", "remove-two-containers.yaml"]
    result = cli("validate", *[str(PLANS / name) for name in names])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": valid") == 3


def interrupt_once_running(
    docker_client, plan: Path, container: str, signals: int = 1
) -> tuple:
    """Apply `plan` and send Ctrl-C once `container` runs.

    Returns the exit status, standard output, standard error and the seconds
    the command ran on after the first Ctrl-C.
    """
    outcome = apply_and_interrupt(
        plan, lambda: wait_for_container(docker_client, container), signals
    )
    return outcome.code, outcome.stdout, outcome.stderr, outcome.seconds


def assert_nothing_left(docker_client, session: str) -> None:
    assert labelled(docker_client, session) == []
    assert docker_client.containers.list(all=True, filters={"name": session}) == []
    assert docker_client.volumes.list(filters={"name": session}) == []


def slow_fill(session: str, name: str, image: str) -> str:
    return (
        f"  - name: {name}\n"
        f"    kind: volume\n"
        f"    volume: {session}-{name}\n"
        f"    labels: {{cyanprint.session: {session}}}\n"
        f"    fill:\n"
        f"      image: {image}\n"
        f"      command: [/bin/busybox, sleep, '60']\n"
        f"      target: /data\n"
        f"      container: {session}-helper\n"
    )


def never_ready(session: str, name: str, image: str, indent: str = "  ") -> str:
    return (
        f"{indent}- name: {name}\n"
        f"{indent}  kind: run\n"
        f"{indent}  container: {session}-{name}\n"
        f"{indent}  image: {image}\n"
        f"{indent}  network: {NETWORK}\n"
        f"{indent}  port: 5551\n"
        f"{indent}  labels: {{cyanprint.session: {session}}}\n"
        f"{indent}  ready_timeout: 60\n"
    )


def clean_up(session: str) -> str:
    return (
        f"  - name: clean-up\n"
        f"    kind: teardown\n"
        f"    selector: {{cyanprint.session: {session}}}\n"
        f"    remove_volumes: true\n"
    )


@pytest.mark.parametrize("signals", [1, 3])
@pytest.mark.parametrize("interrupted", ["fill", "run"])
def test_interrupted_apply_leaves_nothing(
    plan_images, docker_client, local_fixture_images, tmp_path, interrupted, signals
):
    session = "plans-int-" + uuid.uuid4().hex[:6]
    steps = {
        "fill": slow_fill(session, "slow-fill", local_fixture_images["blob"]),
        "run": never_ready(
            session, "helper", local_fixture_images["fault-never-ready"]
        ),
    }
    plan = tmp_path / "interrupted.yaml"
    plan.write_text(
        f"name: interrupted\n"
        f"steps:\n"
        f"  - {{name: network, kind: network, network: {NETWORK}}}\n"
        f"{steps[interrupted]}"
        f"  - {{name: never-reached, kind: network, network: {NETWORK}}}\n"
        f"on_failure:\n{clean_up(session)}"
    )
    code, stdout, stderr, _ = interrupt_once_running(
        docker_client, plan, f"{session}-helper", signals
    )

    assert code == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "interrupted" in stdout
    assert "skipped  never-reached" in stdout
    if signals > 1:
        assert "interrupted again: still removing" in stderr
    assert_nothing_left(docker_client, session)


def test_interrupted_group_stops_promptly(
    plan_images, docker_client, local_fixture_images, tmp_path
):
    session = "plans-grp-" + uuid.uuid4().hex[:6]
    image = local_fixture_images["fault-never-ready"]
    members = "".join(
        never_ready(session, name, image, indent="      ")
        for name in ("helper", "queued-1", "queued-2")
    )
    plan = tmp_path / "group.yaml"
    plan.write_text(
        f"name: group\n"
        f"steps:\n"
        f"  - {{name: network, kind: network, network: {NETWORK}}}\n"
        f"  - name: group\n"
        f"    parallel: 1\n"
        f"    steps:\n{members}"
        f"on_failure:\n{clean_up(session)}"
    )
    code, stdout, stderr, elapsed = interrupt_once_running(
        docker_client, plan, f"{session}-helper"
    )

    assert code == 130, stdout + stderr
    assert "Traceback" not in stderr
    # The running step gives up at its next readiness poll, not after 60 s.
    assert elapsed < 15
    assert "skipped  queued-1" in stdout
    assert "interrupted before it started" in stdout
    assert_nothing_left(docker_client, session)


def test_interrupted_clean_up_goes_on(
    plan_images, docker_client, local_fixture_images, tmp_path
):
    session = "plans-onf-" + uuid.uuid4().hex[:6]
    plan = tmp_path / "on-failure.yaml"
    plan.write_text(
        f"name: on-failure\n"
        f"steps:\n"
        f"  - {{name: network, kind: network, network: {NETWORK}}}\n"
        f"  - {{name: missing, kind: volume, volume: {session}-absent, "
        f"must_exist: true}}\n"
        f"on_failure:\n"
        f"{slow_fill(session, 'slow-fill', local_fixture_images['blob'])}"
        f"{clean_up(session)}"
    )
    code, stdout, stderr, _ = interrupt_once_running(
        docker_client, plan, f"{session}-helper"
    )

    assert code == 130, stdout + stderr
    assert "Traceback" not in stderr
    assert "failed   slow-fill" in stdout
    assert "clean-up" in stdout
    assert_nothing_left(docker_client, session)


def test_archive_read_before_later_steps(plan_images, docker_client, tmp_path):
    """A plan may remove the merger right after archiving; the archive is whole."""
    text = (PLANS / "two-containers.yaml").read_text()
    plan = tmp_path / "archive-then-remove.yaml"
    plan.write_text(
        text
        + "\n  - name: remove\n"
        + "    kind: teardown\n"
        + "    selector: {cyanprint.session: plans-two}\n"
        + "    remove_volumes: true\n"
    )
    archive = tmp_path / "out.tar.gz"

    result = cli("apply", str(plan), "--output", str(archive))

    assert result.returncode == 0, result.stdout + result.stderr
    files, _ = read_archive(archive.read_bytes())
    assert files["second.txt"][0] == b"only second"
    assert labelled(docker_client, "plans-two") == []


@pytest.mark.parametrize("where", ["folder", "missing-folder"])
def test_unwritable_output_rejected_first(plan_images, docker_client, tmp_path, where):
    output = tmp_path if where == "folder" else tmp_path / "absent" / "out.tgz"

    result = cli("apply", str(PLANS / "two-containers.yaml"), "--output", str(output))

    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot write --output {output}" in result.stderr
    assert "Traceback" not in result.stderr
    assert labelled(docker_client, "plans-two") == []
    assert list(tmp_path.iterdir()) == []
