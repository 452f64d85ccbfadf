"""Reference resolution against a catalog and against a registry served on loopback."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from orchestrator.errors import ReferenceInvalid, RequestInvalid
from orchestrator.registry import (
    Catalog,
    Reference,
    RegistryUnavailable,
    RemoteRegistry,
    Resolver,
    Version,
    parse_reference,
)

VERSIONS = {
    ("Processor", "cyan", "default"): {1: "p-1", 2: "p-2", 3: "p-3"},
    ("Plugin", "acme", "format"): {1: "g-1"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cyan/default", Reference("cyan", "default", None)),
        ("cyan/default:12", Reference("cyan", "default", 12)),
        ("a.b/c-d_e", Reference("a.b", "c-d_e", None)),
    ],
)
def test_parse_reference(text, expected):
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    "text", ["a/b/c", "a:b:c", "a/b:c", "/b", "a/", "a", "", "a/b:", "a/b:1:2", "a /b"]
)
def test_invalid_reference_rejected(text):
    with pytest.raises(ReferenceInvalid) as caught:
        parse_reference(text)
    assert repr(text) in caught.value.message


class FakeZinc(BaseHTTPRequestHandler):
    """A loopback stand-in for the registry's version look-up endpoint."""

    requests: ClassVar[list[str]] = []

    def do_GET(self):
        FakeZinc.requests.append(self.path)
        parts = self.path.strip("/").split("/")
        # api/v1/<Kind>/slug/<user>/<name>/versions/<version>
        kind, user, name, version = parts[2], parts[4], parts[5], parts[7]
        versions = VERSIONS.get((kind, user, name))
        if versions is None:
            return self._send(404, {"title": "not found"})
        number = max(versions) if version == "latest" else int(version)
        if number not in versions:
            return self._send(404, {"title": "not found"})
        self._send(200, {"principal": {"id": versions[number], "version": number}})

    def _send(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def registry_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeZinc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(params=["remote", "catalog"])
def resolver(request, registry_url):
    if request.param == "remote":
        return Resolver(RemoteRegistry(registry_url))
    entries = {
        "processors": {"cyan/default": VERSIONS[("Processor", "cyan", "default")]},
        "plugins": {"acme/format": VERSIONS[("Plugin", "acme", "format")]},
    }
    return Resolver(Catalog(entries, "test catalog"))


def test_exact_version_resolved(resolver):
    assert resolver.resolve("processor", "cyan/default:2", {"p-2"}).id == "p-2"


def test_exact_version_not_pinned(resolver):
    with pytest.raises(ReferenceInvalid) as caught:
        resolver.resolve("processor", "cyan/default:2", {"p-3"})
    assert "cyan/default:2" in caught.value.message
    assert "not pinned" in caught.value.message


def test_latest_pinned_version_wins(resolver):
    assert resolver.resolve("processor", "cyan/default", {"p-1", "p-2"}).id == "p-2"
    assert resolver.resolve("processor", "cyan/default", {"p-3", "p-1"}).id == "p-3"


def test_versionless_none_pinned(resolver):
    with pytest.raises(ReferenceInvalid) as caught:
        resolver.resolve("processor", "cyan/default", {"other"})
    assert "cyan/default" in caught.value.message


def test_unknown_reference(resolver):
    with pytest.raises(ReferenceInvalid) as caught:
        resolver.resolve("plugin", "nobody/nothing", {"g-1"})
    assert "plugin nobody/nothing not found" in caught.value.message


def test_unknown_version(resolver):
    with pytest.raises(ReferenceInvalid) as caught:
        resolver.resolve("plugin", "acme/format:9", {"g-1"})
    assert "acme/format:9 not found" in caught.value.message


def test_plugin_kind_uses_plugin_endpoint(registry_url):
    FakeZinc.requests.clear()
    Resolver(RemoteRegistry(registry_url)).resolve("plugin", "acme/format:1", {"g-1"})
    assert FakeZinc.requests == ["/api/v1/Plugin/slug/acme/format/versions/1"]


def test_numbered_versions_cached(registry_url):
    remote = RemoteRegistry(registry_url)
    resolver = Resolver(remote)
    FakeZinc.requests.clear()
    resolver.resolve("processor", "cyan/default:1", {"p-1"})
    resolver.resolve("processor", "cyan/default:1", {"p-1"})
    assert len(FakeZinc.requests) == 1
    resolver.resolve("processor", "cyan/default", {"p-1"})
    resolver.resolve("processor", "cyan/default", {"p-1"})
    # "latest" is asked each time; versions 2 and 1 come from the first walk.
    assert (
        FakeZinc.requests.count("/api/v1/Processor/slug/cyan/default/versions/latest")
        == 2
    )
    assert (
        FakeZinc.requests.count("/api/v1/Processor/slug/cyan/default/versions/2") == 1
    )


def test_unreachable_registry_named():
    resolver = Resolver(RemoteRegistry("http://127.0.0.1:9", timeout=2))
    with pytest.raises(RegistryUnavailable) as caught:
        resolver.resolve("processor", "cyan/default", {"p-1"})
    assert "http://127.0.0.1:9" in caught.value.message


def test_embedded_catalog_loads():
    catalog = Catalog.load()
    assert catalog.entries == {"processors": {}, "plugins": {}}


def test_catalog_file_loads(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("processors:\n  cyan/default:\n    1: p-1\nplugins: {}\n")
    resolver = Resolver.from_setting(str(path))
    assert resolver.resolve("processor", "cyan/default", {"p-1"}).id == "p-1"


def test_catalog_file_reread_on_change(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("processors: {}\nplugins: {}\n")
    resolver = Resolver.from_setting(str(path))
    with pytest.raises(ReferenceInvalid):
        resolver.resolve("processor", "cyan/new", {"n-1"})
    path.write_text("processors:\n  cyan/new:\n    1: n-1\nplugins: {}\n")
    assert resolver.resolve("processor", "cyan/new", {"n-1"}).id == "n-1"


@pytest.mark.parametrize(
    "content", [None, "- just\n- a list\n", "processors: [1, 2]\n"]
)
def test_bad_catalog_file_named(tmp_path, content):
    path = tmp_path / "catalog.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RequestInvalid) as caught:
        Resolver.from_setting(str(path))
    assert str(path) in caught.value.message


def test_versionless_walk_is_bounded():
    class Many:
        calls = 0

        def lookup(self, kind, reference, version):
            Many.calls += 1
            number = 100_000 if version is None else version
            return Version(f"id-{number}", number)

    with pytest.raises(ReferenceInvalid) as caught:
        Resolver(Many()).resolve("processor", "cyan/huge", {"id-1"})
    assert "latest 50 versions" in caught.value.message
    assert "cyan/huge:N" in caught.value.message
    assert Many.calls == 50


def test_missing_version_not_cached(registry_url):
    remote = RemoteRegistry(registry_url)
    FakeZinc.requests.clear()
    assert remote.lookup("processor", Reference("cyan", "default", None), 9) is None
    assert remote.lookup("processor", Reference("cyan", "default", None), 9) is None
    assert len(FakeZinc.requests) == 2
