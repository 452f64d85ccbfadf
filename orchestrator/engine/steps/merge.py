"""`merge`: merge folders of the session volume, in order, inside a merger container."""

from __future__ import annotations

import logging

from ...names import PORTS
from ..context import Context
from .base import Change, Outcome, Step
from .call import check_call, json_answer, send

log = logging.getLogger(__name__)


class Merge(Step):
    kind = "merge"
    outputs = ("directory", "files", "conflicts", "warnings")

    def resource(self) -> str:
        return self.args["container"]

    def describe(self) -> str:
        layers = len(self.args["layers"])
        resolvers = len(self.args.get("resolvers", []))
        return (
            f"merge {layers} folders into {self.args['output']} inside "
            f"{self.resource()}, with {resolvers} resolvers for conflicts"
        )

    def apply(self, context: Context) -> Outcome:
        args = {"port": PORTS["merger"], **self.args}
        body = {
            "layers": self.args["layers"],
            "output": self.args["output"],
            "resolvers": self.args.get("resolvers", []),
        }
        timeout = self.args.get("timeout", context.settings.call_timeout)
        response = send(context, args, "POST", "/api/merge", body, timeout)
        answer = json_answer(response, self.resource(), "/api/merge")
        warnings = answer.get("warnings") or []
        for warning in warnings:
            log.warning(
                "merge in %s: %s",
                self.resource(),
                warning,
                extra={"step": self.name, "container": self.resource()},
            )
        return Outcome(
            False,
            f"merged {len(self.args['layers'])} folders into "
            f"{answer.get('directory')}: {answer.get('files', 0)} files, "
            f"{len(answer.get('conflicts', []))} conflicts, {len(warnings)} warnings",
            answer,
        )

    def check(self, context: Context) -> Change:
        return check_call(context, self.resource(), self.describe())
