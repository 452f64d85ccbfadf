"""The `cyanprint-executor` command: serve the API, or run as a session's merger."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from . import __version__, logs
from .commands import EXIT_INTERRUPTED, add_commands, ignore_further_interrupts
from .config import (
    ENVIRONMENT_PREFIX,
    Settings,
    SettingsInvalid,
    environment_defaults,
)
from .errors import ExecutorError

log = logging.getLogger(__name__)

# The session a merger container serves, for its log lines.
MERGER_SESSION_VARIABLE = "CYANPRINT_MERGER_SESSION"


# The options of `apply` and `plan`: what shapes a plan or how it is applied.
PLAN_OPTIONS = (
    "registry",
    "merger_image",
    "network",
    "ready_timeout",
    "call_timeout",
    "pull_timeout",
    "registry_timeout",
    "parallelism",
    "try_root",
    "log_level",
)


def add_serve_options(
    parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None
) -> None:
    try:
        defaults = replace(Settings(), **environment_defaults())  # type: ignore[arg-type]
    except SettingsInvalid as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None

    def option(flag: str, field: str, help_text: str, kind=str) -> None:
        if only is not None and field not in only:
            return
        env = ENVIRONMENT_PREFIX + field.upper()
        parser.add_argument(
            flag,
            dest=field,
            type=kind,
            default=getattr(defaults, field),
            help=f"{help_text} (environment {env}; default %(default)s)",
        )

    option("--host", "host", "address to listen on")
    option("--port", "port", "port to listen on", int)
    option(
        "--registry",
        "registry",
        "URL of a Zinc-compatible registry, or path of a catalog file; empty for "
        "the catalog embedded in the package",
    )
    option("--merger-image", "merger_image", "image that runs as each session's merger")
    option("--network", "network", "Docker bridge network of the containers")
    option(
        "--ready-timeout",
        "ready_timeout",
        "seconds a container may take to answer GET / with 200",
        float,
    )
    option(
        "--call-timeout",
        "call_timeout",
        "seconds one processor, plugin or merger call may take",
        float,
    )
    option("--pull-timeout", "pull_timeout", "seconds one image pull may take", float)
    option(
        "--registry-timeout",
        "registry_timeout",
        "seconds one registry request may take",
        float,
    )
    option(
        "--parallelism",
        "parallelism",
        "how many pulls, container starts or processor calls run at once",
        int,
    )
    option(
        "--proxy-timeout",
        "proxy_timeout",
        "seconds a proxied template or resolver call may take",
        float,
    )
    option(
        "--proxy-max-bytes",
        "proxy_max_bytes",
        "largest body in bytes a proxy passes through, either way",
        int,
    )
    option(
        "--try-root",
        "try_root",
        "folder that try sessions' local template folders must lie inside; "
        "empty for the home folder",
    )
    option(
        "--stop-grace",
        "stop_grace",
        "seconds a stopping service waits for interrupted plans to clean up",
        float,
    )
    option("--threads", "threads", "HTTP worker threads", int)
    option("--log-level", "log_level", "DEBUG, INFO, WARNING or ERROR")
    option("--log-format", "log_format", "json or text")


def settings_from(arguments: argparse.Namespace) -> Settings:
    values = {
        name: getattr(arguments, name)
        for name in Settings.__dataclass_fields__
        if hasattr(arguments, name)
    }
    try:
        return Settings(**values)
    except SettingsInvalid as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(arguments: argparse.Namespace) -> int:
    import waitress

    from .api.app import create_app, server_options
    from .service import Executor

    settings = settings_from(arguments)
    logs.configure(settings.log_level, settings.log_format)
    try:
        executor = Executor(settings)
    except ExecutorError as error:
        log.error("cannot start: %s", error.message)
        return 2
    app = create_app(executor)
    log.info(
        "executor %s starting on %s:%d (network %s, merger image %s, registry %s)",
        __version__,
        settings.host,
        settings.port,
        settings.network,
        settings.merger_image,
        settings.registry or "embedded catalog",
    )
    try:
        server = waitress.create_server(
            app, host=settings.host, port=settings.port, **server_options(settings)
        )
    except (OSError, ValueError) as error:
        # waitress raises ValueError for a host name it cannot resolve.
        log.error("cannot start: %s", cannot_listen(settings, error))
        return 2
    stop_on_signals(executor.stop)
    log.info("serving on %s:%s", settings.host, server.effective_port)
    server.run()
    still = executor.wait_idle(settings.stop_grace)
    if still:
        log.warning(
            "stopping with %d plans still running after %gs; their sessions may "
            "keep half-made containers until DELETE /executor/{session_id}",
            still,
            settings.stop_grace,
        )
    log.info("executor stopped")
    if still:
        logging.shutdown()
        # Python's exit would wait for the threads of those plans.
        os._exit(0)
    return 0


def cannot_listen(settings: Settings, error: Exception) -> str:
    """Say why the API cannot listen on its address, and what to do about it."""
    address = f"{settings.host}:{settings.port}"
    cause = error if isinstance(error, OSError) else error.__context__
    if isinstance(cause, OSError):
        reason = cause.strerror or str(cause)
        number = cause.errno
    else:
        reason, number = str(error), None
    if number == errno.EADDRINUSE:
        advice = (
            "another process listens there; stop it, or choose another port with "
            "--port or CYANPRINT_PORT"
        )
    elif number == errno.EACCES:
        advice = (
            "ports below 1024 need privileges; choose a port of 1024 or above with "
            "--port or CYANPRINT_PORT"
        )
    else:
        advice = (
            "give an address of this machine with --host or CYANPRINT_HOST (0.0.0.0 "
            "for every address), and a free port with --port or CYANPRINT_PORT"
        )
    return f"cannot listen on {address}: {reason}; {advice}"


def stop_on_signals(interrupt: Callable[[], int] | None = None) -> None:
    """Stop serving on SIGTERM or SIGINT, logging the signal.

    `interrupt` stops the work in progress and returns how many plans it
    stopped. waitress then ends its loop and shuts its worker threads down on
    SystemExit.
    """

    def stop(number: int, frame) -> None:
        log.info("received %s, stopping", signal.Signals(number).name)
        # A second signal would cut the clean-up short, and one that came
        # while Python shuts down would kill the process.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if interrupt is not None:
            stopped = interrupt()
            if stopped:
                log.info("interrupted %d running plans; they clean up first", stopped)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def merger(arguments: argparse.Namespace) -> int:
    import waitress

    from .merger import create_app

    logs.configure(arguments.log_level, "json", arguments.session)
    # As a container's first process, Python would ignore SIGTERM without a
    # handler, so `docker stop` would wait its full grace period.
    stop_on_signals()
    log.info(
        "merger %s listening on port %d, root %s",
        __version__,
        arguments.port,
        arguments.root,
    )
    waitress.serve(
        create_app(Path(arguments.root)),
        host="0.0.0.0",
        port=arguments.port,
        threads=8,
        ident="cyanprint-merger",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cyanprint-executor",
        description="Run CyanPrint templates by orchestrating containers on Docker.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve_parser = commands.add_parser("serve", help="serve the executor's HTTP API")
    add_serve_options(serve_parser)
    serve_parser.set_defaults(handler=serve)

    merger_parser = commands.add_parser(
        "merger", help="serve the merger API inside a session container"
    )
    merger_parser.add_argument(
        "--port", type=int, default=9000, help="port to listen on"
    )
    merger_parser.add_argument(
        "--root",
        default="/workspace/area",
        help="the only folder whose contents the merger reads and writes",
    )
    merger_parser.add_argument("--log-level", default="INFO", help="logging level")
    merger_parser.add_argument(
        "--session",
        default=os.environ.get(MERGER_SESSION_VARIABLE, ""),
        help=f"id of the session this merger serves, written on every log line "
        f"(environment {MERGER_SESSION_VARIABLE})",
    )
    merger_parser.set_defaults(handler=merger)

    add_commands(commands, lambda sub: add_serve_options(sub, PLAN_OPTIONS))
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command in ("plan", "validate", "apply", "setup", "cleanup"):
        settings = settings_from(arguments)
        logs.configure(settings.log_level, "text")
        # These commands print every step's result themselves, so the engine's
        # own line per step would only repeat it; progress and errors remain.
        logging.getLogger("orchestrator.engine.engine").setLevel(logging.WARNING)
        try:
            return arguments.handler(arguments, settings)
        except ExecutorError as error:
            print(f"error: {error.message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            ignore_further_interrupts()
            print(f"interrupted: {arguments.command} did not finish", file=sys.stderr)
            return EXIT_INTERRUPTED
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
