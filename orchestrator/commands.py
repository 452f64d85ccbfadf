"""The `plan`, `validate` and `apply` commands: plans from the command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from .config import Settings
from .engine.report import FAILED, StepResult
from .errors import ExecutorError, PlanInvalid, RequestInvalid, StepFailed
from .planning import PLAN_KINDS, load

# The plans `plan` can print: a proxy plan needs an HTTP request to pass on.
CLI_PLAN_KINDS = tuple(kind for kind in PLAN_KINDS if kind != "proxy")
NO_REQUEST = ("delete", "setup", "cleanup")

# Exit statuses: a failed step, input that is not valid, and an interrupt
# (128 + SIGINT, as shells report it).
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def interrupt_once() -> None:
    """Make the first Ctrl-C interrupt the plan, and later ones only print a line.

    The first raises KeyboardInterrupt, and the engine then removes what the
    running steps half made and runs the plan's clean-up steps. A second
    Ctrl-C would cut that removal short and leave containers or volumes.
    """

    def first(number: int, frame) -> None:
        signal.signal(signal.SIGINT, later)
        raise KeyboardInterrupt

    def later(number: int, frame) -> None:
        # os.write, because print could land inside a write to the same stream.
        os.write(
            sys.stderr.fileno(),
            b"interrupted again: still removing what the plan half made; every "
            b"step has a timeout\n",
        )

    signal.signal(signal.SIGINT, first)


def ignore_further_interrupts() -> None:
    """Ignore Ctrl-C from now on: the work has stopped and only the exit is left.

    A second Ctrl-C right after the first would otherwise kill the process on
    its way out, without the exit status 130 or the end of its report.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def display_name(path: str) -> str:
    """Name a file in messages; `-` is standard input."""
    return "<stdin>" if path == "-" else path


def read_text(path: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as error:
        raise PlanInvalid(f"cannot read {path}: {error.strerror}") from error
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        raise PlanInvalid(
            f"{display_name(path)}:{line}:{column}: not UTF-8 text (byte "
            f"0x{data[error.start]:02x}); save the file as UTF-8"
        ) from error


def report_errors(error: ExecutorError, stream: TextIO) -> None:
    for message in error.errors:
        print(f"error: {message}", file=stream)


def plan_command(arguments: argparse.Namespace, settings: Settings) -> int:
    """Print the YAML plan that one endpoint's request renders to."""
    from .api.problems import finite_float, reject_constant
    from .service import Executor

    executor = Executor(settings)
    session = arguments.session
    try:
        body: Any = None
        if arguments.kind not in NO_REQUEST:
            if not arguments.request:
                raise RequestInvalid(f"plan {arguments.kind} needs a REQUEST file or -")
            source = arguments.request
            try:
                # Read as the API reads bodies: no NaN, Infinity or 1e400.
                body = json.loads(
                    read_text(source),
                    parse_constant=reject_constant,
                    parse_float=finite_float,
                )
            except ValueError as error:  # JSONDecodeError, and the checks above
                raise RequestInvalid(
                    f"{display_name(source)}: not valid JSON: {error}"
                ) from None
        if arguments.kind in ("session-warm", "build", "delete") and not session:
            raise RequestInvalid(f"plan {arguments.kind} needs --session ID")
        planned = {
            "template-warm": lambda: executor.plan_template_warm(body),
            "session-warm": lambda: executor.plan_session_warm(session, body),
            "start": lambda: executor.plan_start(body),
            "build": lambda: executor.plan_build(session, body),
            "delete": lambda: executor.plan_delete(session),
            "try": lambda: executor.plan_try(body),
            "setup": executor.plan_setup,
            "cleanup": executor.plan_cleanup,
        }[arguments.kind]()
    except ExecutorError as error:
        report_errors(error, sys.stderr)
        return EXIT_INVALID
    sys.stdout.write(planned.text)
    return 0


def validate_command(arguments: argparse.Namespace, settings: Settings) -> int:
    """Check hand-written plans; print each error with file, line and column."""
    status = 0
    for path in arguments.plans:
        try:
            load(read_text(path), display_name(path))
        except PlanInvalid as error:
            report_errors(error, sys.stderr)
            status = EXIT_INVALID
            continue
        print(f"{display_name(path)}: valid")
    return status


def print_result(result: StepResult) -> None:
    line = f"{result.status:<8} {result.name:<24} {result.duration:7.2f}s  "
    print(line + result.message.splitlines()[0] if result.message else line, flush=True)
    for extra in result.message.splitlines()[1:]:
        print(f"{'':<44}{extra}", flush=True)


class ArchiveSink:
    """The destination of the archive a plan streams, read as soon as its step ends.

    The archive is read before the next step runs, since a later step may
    remove the container it streams from. It goes to a temporary file beside
    `--output`, which replaces the output file only once the plan succeeded.
    """

    def __init__(self, output: str | None) -> None:
        self.output = output
        self.file = None
        self.written = False
        if output:
            folder = os.path.dirname(os.path.abspath(output))
            self.file = tempfile.NamedTemporaryFile(
                dir=folder, prefix=".cyanprint-archive-", delete=False
            )

    def listen(self, result: StepResult) -> None:
        """Read a step's archive if it streamed one, then print the step's result.

        An archive that breaks off fails its step, so the plan stops there and
        its on_failure steps run as after any other failure.
        """
        if result.kind == "archive" and result.status != FAILED and result.output:
            self._read(result)
        print_result(result)

    def _read(self, result: StepResult) -> None:
        size = 0
        try:
            for chunk in result.output["stream"]:
                size += len(chunk)
                if self.file:
                    self.file.write(chunk)
        except Exception as error:  # the stream breaks in many ways
            message = (
                f"the archive broke off after {size} bytes: {type(error).__name__}: "
                f"{error}"
            )
            result.status = FAILED
            result.message = message
            result.error = StepFailed(message, step=result.name, kind=result.kind)
            return
        finally:
            result.output["response"].close()
        self.written = True
        where = " (use --output FILE to keep it)"
        if self.output:
            where = f" to {self.output}"
        result.message += f"; {size} bytes{where}"

    def finish(self, keep: bool) -> None:
        """Move the archive to `--output` when `keep` and one was read, else drop it."""
        if not self.file:
            return
        self.file.close()
        if keep and self.written and self.output:
            # A temporary file is private (0600); the output follows the umask.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.file.name, 0o666 & ~umask)
            os.replace(self.file.name, self.output)
        else:
            os.unlink(self.file.name)


def apply_command(arguments: argparse.Namespace, settings: Settings) -> int:
    """Apply a hand-written plan, reporting each step as it finishes."""
    from .engine import Engine
    from .service import docker_client

    try:
        plan = load(read_text(arguments.plan), display_name(arguments.plan))
    except PlanInvalid as error:
        report_errors(error, sys.stderr)
        return EXIT_INVALID
    if arguments.check:
        return check_plan(Engine(docker_client(settings), settings), plan)
    try:
        sink = open_sink(arguments.output)
    except OSError as error:
        print(
            f"error: cannot write --output {arguments.output}: {error.strerror}; "
            f"give a file path in a folder you can write to",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        engine = Engine(docker_client(settings), settings)
        interrupt_once()
        report = engine.apply(plan, listener=sink.listen)
    except BaseException:
        sink.finish(keep=False)
        raise
    if report.interrupted:
        ignore_further_interrupts()
    sink.finish(keep=not report.failed and not report.interrupted)
    counts = report.counts()
    print(
        f"recap: ok={counts['ok']} changed={counts['changed']} "
        f"failed={counts['failed']} skipped={counts['skipped']}"
    )
    if report.interrupted:
        print("interrupted: the plan did not finish; see the steps above")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.failed else 0


def open_sink(output: str | None) -> ArchiveSink:
    """Open where the archive goes; raise OSError when `output` cannot be written."""
    if output and os.path.isdir(output):
        raise IsADirectoryError(21, "it is a folder", output)
    return ArchiveSink(output)


def check_plan(engine, plan: dict) -> int:
    """Print what each step would change; exit 1 when a step would fail."""
    from .engine.engine import count_changes

    try:
        changes = engine.check(plan)
    except KeyboardInterrupt:
        ignore_further_interrupts()
        print("interrupted: the check did not finish")
        return EXIT_INTERRUPTED
    for change in changes:
        print(f"{change['action']:<8} {change['name']:<24} {change['detail']}")
    count, failures = count_changes(changes)
    print(
        f"check: {count} of {len(changes)} steps would change something, "
        f"{failures} would fail"
    )
    return EXIT_FAILED if failures else 0


def maintenance_command(arguments: argparse.Namespace, settings: Settings) -> int:
    """Apply the setup or cleanup plan, reporting each step as `apply` does."""
    from .engine import Engine
    from .service import Executor, docker_client

    executor = Executor(settings)
    planned = {"setup": executor.plan_setup, "cleanup": executor.plan_cleanup}[
        arguments.command
    ]()
    engine = Engine(docker_client(settings), settings)
    interrupt_once()
    report = engine.apply(planned.document, listener=print_result)
    if report.interrupted:
        ignore_further_interrupts()
        print(f"interrupted: {arguments.command} did not finish; see the steps above")
        return EXIT_INTERRUPTED
    return EXIT_FAILED if report.failed else 0


def add_commands(commands, add_options) -> None:
    """Add plan, validate and apply to the `cyanprint-executor` parser."""
    plan = commands.add_parser("plan", help="print the YAML plan of one request")
    plan.add_argument("kind", choices=CLI_PLAN_KINDS, help="the operation to plan")
    plan.add_argument("request", nargs="?", help="request body (JSON file, or -)")
    plan.add_argument("--session", help="session id of session-warm, build, delete")
    add_options(plan)
    plan.set_defaults(handler=plan_command)

    validate = commands.add_parser("validate", help="check hand-written plans")
    validate.add_argument("plans", nargs="+", metavar="PLAN.yaml")
    validate.set_defaults(handler=validate_command)

    apply = commands.add_parser("apply", help="apply a plan against Docker")
    apply.add_argument("plan", metavar="PLAN.yaml", help="plan file, or -")
    apply.add_argument(
        "--check",
        action="store_true",
        help="only list what each step would change; change nothing",
    )
    apply.add_argument("--output", help="file to write an archive step's tar.gz to")
    add_options(apply)
    apply.set_defaults(handler=apply_command)

    setup = commands.add_parser("setup", help="create the network containers use")
    add_options(setup)
    setup.set_defaults(handler=maintenance_command)

    cleanup = commands.add_parser(
        "cleanup",
        help="remove every container, volume and image labelled cyanprint.dev=true",
    )
    add_options(cleanup)
    cleanup.set_defaults(handler=maintenance_command)
