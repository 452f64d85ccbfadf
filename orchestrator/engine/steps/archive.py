"""`archive`: stream a folder of the session volume as tar.gz from a merger."""

from __future__ import annotations

from ...names import PORTS
from ..context import Context
from .base import Change, Outcome, Step
from .call import check_call, send

CHUNK_SIZE = 256 * 1024


class Archive(Step):
    kind = "archive"
    outputs = ("stream", "response")

    def resource(self) -> str:
        return self.args["container"]

    def describe(self) -> str:
        return f"stream {self.args['directory']} as tar.gz from {self.resource()}"

    def apply(self, context: Context) -> Outcome:
        args = {"port": PORTS["merger"], **self.args}
        timeout = self.args.get("timeout", context.settings.call_timeout)
        response = send(
            context,
            args,
            "POST",
            "/api/archive",
            {"directory": self.args["directory"]},
            timeout,
            stream=True,
        )
        # The body is not read here: the caller streams it to its own client.
        chunks = response.raw.stream(CHUNK_SIZE, decode_content=False)
        return Outcome(
            False,
            f"streaming {self.args['directory']} from {self.resource()}",
            {"stream": chunks, "response": response},
        )

    def check(self, context: Context) -> Change:
        return check_call(context, self.resource(), self.describe())
