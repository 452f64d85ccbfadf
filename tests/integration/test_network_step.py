"""The network step on a real engine: exact names and bridge networks only."""

from __future__ import annotations

import uuid

import pytest

from orchestrator.engine import Engine

from .test_plans import cli

pytestmark = pytest.mark.docker


def network_plan(name: str) -> dict:
    return {
        "name": "network",
        "steps": [{"name": "network", "kind": "network", "network": name}],
    }


def test_network_longer_name_is_not_a_match(server, docker_client):
    name = "cyanprint-net-" + uuid.uuid4().hex[:8]
    longer = docker_client.networks.create(name + "-longer", driver="bridge")
    engine = Engine(docker_client, server.executor.settings)
    try:
        report = engine.apply(network_plan(name))

        assert report.results[0].status == "changed"
        found = docker_client.networks.list(names=[name])
        assert sorted(network.name for network in found) == [name, name + "-longer"]
    finally:
        longer.remove()
        for network in docker_client.networks.list(names=[name]):
            network.remove()


def test_network_setup_rejects_host_network():
    result = cli("setup", "--network", "host")

    assert result.returncode != 0
    assert "driver 'host'" in result.stdout + result.stderr
    assert "choose another network name" in result.stdout + result.stderr
