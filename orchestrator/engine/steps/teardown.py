"""`teardown`: remove containers, volumes and images chosen by name or by labels."""

from __future__ import annotations

import contextvars
import logging

import docker.errors

from ...errors import StepFailed
from ...threads import worker_pool
from ..context import Context
from ..dockerapi import explain, on_engine, translated
from .base import Change, Outcome, Step

log = logging.getLogger(__name__)

# Removal order: containers first, since they hold volumes and images.
KINDS = ("container", "volume", "image")


class Teardown(Step):
    kind = "teardown"
    outputs = ("containers", "volumes", "images", "errors")

    def resource(self) -> str:
        selector = self.args.get("selector") or {}
        return ",".join(f"{key}={value}" for key, value in selector.items())

    def describe(self) -> str:
        parts = []
        if self.args.get("selector"):
            what = ["containers"]
            if self.args.get("remove_volumes"):
                what.append("volumes")
            if self.args.get("remove_images"):
                what.append("images")
            parts.append(f"remove {', '.join(what)} labelled {self.resource()}")
        if self.args.get("containers"):
            parts.append("remove containers " + ", ".join(self.args["containers"]))
        if self.args.get("volumes"):
            parts.append("remove volumes " + ", ".join(self.args["volumes"]))
        return "; ".join(parts)

    def _collection(self, context: Context, kind: str):
        client = context.client
        return {"container": client.containers, "volume": client.volumes}.get(kind)

    def _targets(self, context: Context) -> dict[str, list[str]]:
        """List the names to remove, by kind.

        An image is named by its tags and digest references (repo@sha256:...),
        or by its id when it has neither. Sets `_image_of`, the image id of
        each image name.
        """
        client = context.client
        self._image_of: dict[str, str] = {}
        selector = self.args.get("selector") or {}
        filters = {"label": [f"{key}={value}" for key, value in selector.items()]}
        targets = {
            "container": set(self.args.get("containers", [])),
            "volume": set(self.args.get("volumes", [])),
            "image": set(),
        }
        if selector:
            with translated("list resources labelled", self.resource()):
                # A container removed while the list is read (by the step that
                # made it, after an interrupt) is simply gone, not an error.
                listed = client.containers.list(
                    all=True, filters=filters, ignore_removed=True
                )
                for container in listed:
                    targets["container"].add(container.name)
                if self.args.get("remove_volumes"):
                    for volume in client.volumes.list(filters=filters):
                        targets["volume"].add(volume.name)
                if self.args.get("remove_images"):
                    for image in client.images.list(filters=filters):
                        # Each reference is removed: the image goes with its
                        # last one, and a digest reference alone keeps it.
                        references = image.tags + image.attrs.get("RepoDigests", [])
                        for name in references or [image.id]:
                            targets["image"].add(name)
                            self._image_of[name] = image.id
        return {kind: sorted(names) for kind, names in targets.items()}

    def check(self, context: Context) -> Change:
        targets = self._targets(context)
        selector = self.args.get("selector") or {}
        expectations = context.expectations
        if selector:
            # Resources that earlier steps would create, with matching labels.
            targets["container"] += expectations.labelled("container", selector)
            if self.args.get("remove_volumes"):
                targets["volume"] += expectations.labelled("volume", selector)
        found = []
        for kind in KINDS:
            for name in sorted(set(targets[kind])):
                known = expectations.known(kind, name)
                if known or (known is None and on_engine(context.client, kind, name)):
                    found.append(name)
                    expectations.remove(kind, name)
        if not found:
            return Change("nothing", "nothing to remove")
        return Change("remove", "would remove " + ", ".join(found))

    def apply(self, context: Context) -> Outcome:
        targets = self._targets(context)
        errors: list[str] = []
        removed = {
            kind: self._remove(context, kind, targets[kind], errors) for kind in KINDS
        }
        output = {
            "containers": removed["container"],
            "volumes": removed["volume"],
            "images": removed["image"],
            "errors": errors,
        }
        if errors:
            raise StepFailed(
                "; ".join(errors), resource=self.resource(), details=output
            )
        names = [name for kind in KINDS for name in removed[kind]]
        if not names:
            return Outcome(False, "nothing to remove", output)
        return Outcome(True, "removed " + ", ".join(names), output)

    def _remove(
        self, context: Context, kind: str, names: list[str], errors: list[str]
    ) -> list[str]:
        """Remove resources of one kind in parallel; return the removed names.

        The references of one image are removed one after another, because the
        engine fails when two requests remove the last tags of an image at
        once. Images built on other images in the list go first, since the
        engine does not delete an image that another one is built on.
        """
        if not names:
            return []
        groups: dict[str, list[str]] = {}
        for name in names:
            key = self._image_of.get(name, name) if kind == "image" else name
            groups.setdefault(key, []).append(name)
        if kind == "image":
            levels = self._image_levels(context, list(groups))
        else:
            levels = [list(groups)]
        outcomes = []
        for level in levels:
            outcomes += self._remove_level(context, kind, [groups[k] for k in level])
        removed = []
        for name, error in outcomes:
            if error is None:
                removed.append(name)
            elif error:
                errors.append(error)
        return sorted(removed)

    def _remove_level(
        self, context: Context, kind: str, groups: list[list[str]]
    ) -> list[tuple[str, str | None]]:
        """Remove groups of names in parallel, each group in order."""
        workers = max(1, min(context.settings.parallelism, len(groups)))
        with worker_pool(workers, "teardown") as pool:
            # Each task runs in a copy of this context, so logs keep the session id.
            futures = [
                pool.submit(
                    contextvars.copy_context().run,
                    self._remove_group,
                    context,
                    kind,
                    group,
                )
                for group in groups
            ]
            return [outcome for future in futures for outcome in future.result()]

    @staticmethod
    def _image_levels(context: Context, images: list[str]) -> list[list[str]]:
        """Order image ids into levels that can each be removed in parallel.

        An image comes in a level before every image of the list that it is
        built on, however many unlisted images lie between them.
        """
        with translated("list images", "all"):
            parent_of = {
                entry["Id"]: entry.get("ParentId") or ""
                for entry in context.client.api.images(all=True)
            }
        listed = set(images)
        depth = {}
        for image in images:
            count, seen, parent = 0, {image}, parent_of.get(image, "")
            while parent and parent not in seen:
                seen.add(parent)
                if parent in listed:
                    count += 1
                parent = parent_of.get(parent, "")
            depth[image] = count
        order = sorted(set(depth.values()), reverse=True)
        return [[image for image in images if depth[image] == level] for level in order]

    def _remove_group(
        self, context: Context, kind: str, names: list[str]
    ) -> list[tuple[str, str | None]]:
        """Remove names one after another; return (name, outcome) for each.

        Removing a tag can take other references of the image with it, such
        as the digest reference of its repository. Those count as removed.
        """
        outcomes: list[tuple[str, str | None]] = []
        untagged: set[str] = set()
        for name in names:
            if name in untagged:
                outcomes.append((name, None))
                continue
            outcome, references = self._remove_one(context, kind, name)
            untagged.update(references)
            outcomes.append((name, outcome))
        return outcomes

    def _remove_one(
        self, context: Context, kind: str, name: str
    ) -> tuple[str | None, list[str]]:
        """Remove one resource.

        Returns None when it was removed, '' when it was already gone, or an
        error, with the image references the engine removed along with it.
        """
        references: list[str] = []
        try:
            if kind == "image":
                answer = context.client.api.remove_image(name) or []
                references = [
                    entry["Untagged"] for entry in answer if "Untagged" in entry
                ]
            else:
                self._collection(context, kind).get(name).remove(force=True)
        except docker.errors.NotFound:
            return "", references
        except docker.errors.APIError as error:
            log.error(
                "removing %s %s failed: %s",
                kind,
                name,
                explain(error),
                extra={kind: name},
            )
            return f"removing {kind} {name} failed: {explain(error)}", references
        log.info("removed %s %s", kind, name, extra={kind: name})
        return None, references
