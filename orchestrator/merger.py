"""The merger role: merge processor outputs inside the session volume, archive them.

The executor runs its own image a second time, with the `merger` command, as a
container of each session. That container mounts the session volume, so the
files never leave Docker until the final archive is streamed out.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import falcon
import requests

from . import names
from .api.problems import Problem, install, read_json
from .archive import stream_tar_gz
from .errors import ExecutorError
from .merging import Layer, MergeConflict, Merger, ResolverSpec

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 120.0


def resolve_over_http(resolver: ResolverSpec, body: dict[str, Any]) -> dict[str, Any]:
    url = f"http://{resolver.host}:{resolver.port}/api/resolve"
    try:
        response = requests.post(url, json=body, timeout=RESOLVE_TIMEOUT)
    except requests.RequestException as error:
        raise ExecutorError(
            f"could not reach resolver {resolver.id} at {url}: {error}"
        ) from error
    if response.status_code != 200:
        raise ExecutorError(
            f"resolver {resolver.id} responded with HTTP {response.status_code}: "
            f"{response.text[:500]}"
        )
    try:
        return response.json()
    except (ValueError, RecursionError) as error:
        raise ExecutorError(
            f"resolver {resolver.id} responded with a body that is not JSON"
        ) from error


class MergerResources:
    def __init__(self, root: Path, merger: Merger) -> None:
        self.root = root.resolve()
        self.merger = merger

    def inside(self, value: Any, field: str) -> Path:
        """Resolve a folder the request names and check that it lies inside the root."""
        if not isinstance(value, str) or not value:
            raise Problem(
                400, "Invalid merge request", f"{field} must be a folder path"
            )
        path = Path(value).resolve()
        if path != self.root and self.root not in path.parents:
            raise Problem(
                400,
                "Invalid merge request",
                f"{field} {value!r} lies outside {self.root}; name a folder inside it",
            )
        return path

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "OK"}

    def on_post_merge(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "Invalid merge request")
        if not isinstance(body, dict):
            raise Problem(
                400, "Invalid merge request", "the body must be a JSON object"
            )
        layers = [
            Layer(
                self.inside(layer.get("directory"), "layer"),
                str(layer.get("origin", "")),
            )
            for layer in body.get("layers", [])
        ]
        for layer in layers:
            if not layer.directory.is_dir():
                raise Problem(
                    400,
                    "Invalid merge request",
                    f"layer {layer.directory} is not a folder",
                )
        output = self.inside(body.get("output"), "output")
        resolvers = [
            ResolverSpec(
                id=str(item["id"]),
                files=list(item.get("files", [])),
                config=item.get("config"),
                host=str(item["host"]),
                port=int(item.get("port", names.PORTS["resolver"])),
            )
            for item in body.get("resolvers", [])
        ]
        try:
            result = self.merger.merge(layers, output, resolvers)
        except MergeConflict as error:
            raise Problem(400, "Merge conflict", error.message, error.errors) from None
        except ExecutorError as error:
            raise Problem(400, "Merge failed", error.message, error.errors) from None
        log.info(
            "merged %d layers into %s: %d files", len(layers), output, result.files
        )
        resp.media = result.as_dict()

    def on_post_clear(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Empty a folder but for the `keep` folders, so builds do not pile up."""
        body = read_json(req, "Invalid clear request")
        if not isinstance(body, dict):
            raise Problem(
                400, "Invalid clear request", "the body must be a JSON object"
            )
        directory = self.inside(body.get("directory"), "directory")
        keep = body.get("keep") or []
        if not isinstance(keep, list):
            raise Problem(
                400, "Invalid clear request", "keep must be a list of folders"
            )
        spared = [self.inside(folder, "keep") for folder in keep]
        removed = 0
        if directory.is_dir():
            for entry in directory.iterdir():
                if any(folder == entry or entry in folder.parents for folder in spared):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed += 1
        log.info("cleared %s: %d entries removed", directory, removed)
        resp.media = {"directory": str(directory), "removed": removed}

    def on_post_archive(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json(req, "Invalid archive request")
        directory = self.inside(
            body.get("directory") if isinstance(body, dict) else None, "directory"
        )
        if not directory.is_dir():
            raise Problem(404, "Folder not found", f"{directory} is not a folder")
        resp.content_type = "application/x-gzip"
        resp.stream = stream_tar_gz(directory)


def create_app(root: Path | None = None) -> falcon.App:
    root = root or Path(os.environ.get("CYANPRINT_MERGER_ROOT", names.AREA_MOUNT))
    app = falcon.App()
    install(app)
    resources = MergerResources(root, Merger(resolve_over_http))
    app.add_route("/", resources)
    app.add_route("/api/merge", resources, suffix="merge")
    app.add_route("/api/archive", resources, suffix="archive")
    app.add_route("/api/clear", resources, suffix="clear")
    return app
