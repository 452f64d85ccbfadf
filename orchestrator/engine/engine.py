"""Apply a plan: steps in order, groups in parallel, `on_failure` after a failure."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import docker

from .. import logs
from ..config import Settings
from ..errors import StepFailed
from ..threads import worker_pool
from . import references
from .context import Context, KeyedLocks
from .report import CHANGED, FAILED, OK, SKIPPED, Report, StepResult
from .steps import STEP_KINDS

log = logging.getLogger(__name__)

Listener = Callable[[StepResult], None]

# Check-mode actions that change Docker state; `call`, `nothing` and `fail` do not.
CHANGING_ACTIONS = ("create", "pull", "start", "remove")


def count_changes(changes: list[dict[str, str]]) -> tuple[int, int]:
    """Count the checked steps that would change Docker, and those that would fail."""
    changing = sum(1 for change in changes if change["action"] in CHANGING_ACTIONS)
    failing = sum(1 for change in changes if change["action"] == "fail")
    return changing, failing


class Engine:
    """Applies validated plans against one Docker engine.

    One engine serves many plans at once: the per-resource locks it keeps make
    two plans that ensure the same volume or container wait for each other.
    """

    def __init__(self, client: docker.DockerClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.locks = KeyedLocks()
        # Set by stop(): every plan being applied, and every later one, stops.
        self.stopping = threading.Event()
        self._applying: dict[int, Context] = {}
        self._applying_lock = threading.Lock()

    def stop(self) -> int:
        """Interrupt every plan being applied, and every later one.

        Each stops at its running steps' next wait and then runs its
        `on_failure` steps. Returns how many plans were being applied.
        """
        self.stopping.set()
        with self._applying_lock:
            for context in self._applying.values():
                context.cancelled.set()
            return len(self._applying)

    def wait_idle(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for plans to end; return how many still run."""
        deadline = time.monotonic() + timeout
        while True:
            with self._applying_lock:
                applying = len(self._applying)
            if not applying or time.monotonic() >= deadline:
                return applying
            time.sleep(0.1)

    def apply(self, plan: dict[str, Any], listener: Listener | None = None) -> Report:
        """Apply `plan`. A failure skips the steps after it, then runs `on_failure`."""
        context = Context(self.client, self.settings, self.locks)
        with self._applying_lock:
            self._applying[id(context)] = context
            if self.stopping.is_set():
                context.cancelled.set()
        try:
            return self._apply(context, plan, listener)
        finally:
            with self._applying_lock:
                del self._applying[id(context)]

    def _apply(
        self, context: Context, plan: dict[str, Any], listener: Listener | None
    ) -> Report:
        report = Report(plan["name"])
        if plan.get("session") and not logs.session_id.get():
            logs.session_id.set(plan["session"])
        notify = listener or (lambda result: None)

        def record(result: StepResult) -> None:
            report.results.append(result)
            notify(result)

        items = plan.get("steps", [])
        for position, item in enumerate(items):
            started = time.monotonic()
            if context.cancelled.is_set():
                # Only stop() sets it between steps.
                report.interrupted = True
                log.error(
                    "%s not started: the executor is stopping",
                    item["name"],
                    extra={"step": item["name"]},
                )
                self._skip(items[position:], "the executor is stopping", record)
                break
            try:
                if "parallel" in item:
                    self._apply_group(context, item, record)
                else:
                    record(self._apply_step(context, item))
            except KeyboardInterrupt:
                # The step in progress has removed what it half made. What is
                # left is reported, and on_failure runs as after any failure.
                report.interrupted = True
                log.error("%s interrupted", item["name"], extra={"step": item["name"]})
                self._record_interrupted(report, [item], started, record)
            if context.cancelled.is_set():
                # stop() came while this item ran. Steps that do not wait may
                # have ended well, but the plan stops here all the same.
                report.interrupted = True
            if report.failed or report.interrupted:
                reason = "an earlier step failed" if report.failed else "interrupted"
                self._skip(items[position + 1 :], reason, record)
                break
        if report.failed or report.interrupted:
            # Clean-up must run to its end even after an interrupt, so a further
            # KeyboardInterrupt stops only the clean-up step it lands in. (The
            # commands let only the first Ctrl-C raise one.)
            context.cancelled.clear()
            for step in plan.get("on_failure", []):
                started = time.monotonic()
                try:
                    record(self._apply_step(context, step))
                except KeyboardInterrupt:
                    report.interrupted = True
                    self._record_interrupted(report, [step], started, record)
        return report

    @staticmethod
    def _skip(items: list[dict[str, Any]], reason: str, record: Listener) -> None:
        """Report every step of `items`, groups included, as skipped."""
        for step in flatten(items):
            name = step["name"]
            log.info("%s skipped: %s", name, reason, extra={"step": name})
            record(StepResult(name, step["kind"], SKIPPED, 0.0, reason))

    @staticmethod
    def _record_interrupted(
        report: Report, items: list[dict[str, Any]], started: float, record: Listener
    ) -> None:
        """Report as interrupted every step of `items` that has no result yet."""
        done = {result.name for result in report.results}
        duration = time.monotonic() - started
        for step in flatten(items):
            if step["name"] not in done:
                failure = StepFailed("interrupted", step=step["name"])
                record(
                    StepResult(
                        step["name"],
                        step["kind"],
                        FAILED,
                        duration,
                        "interrupted",
                        error=failure,
                    )
                )

    def check(self, plan: dict[str, Any]) -> list[dict[str, str]]:
        """List, step by step, what applying `plan` would change; change nothing.

        Steps are checked one by one, groups included, each against the engine
        as the steps before it would leave it. References to outputs that only
        applying would produce are shown as written.
        """
        context = Context(self.client, self.settings, self.locks)
        changes = []
        for step in flatten(plan.get("steps", [])):
            name, kind = step["name"], step["kind"]
            instance = STEP_KINDS[kind](name, arguments(step, context.outputs, False))
            try:
                change = instance.check(context)
                action, detail = change.action, change.detail
            except StepFailed as error:
                action, detail = "fail", f"would fail: {error.message}"
            changes.append(
                {
                    "name": name,
                    "kind": kind,
                    "action": action,
                    "resource": instance.resource(),
                    "detail": detail,
                }
            )
        return changes

    def _apply_group(
        self, context: Context, group: dict[str, Any], record: Listener
    ) -> None:
        steps = group["steps"]
        workers = max(1, min(group["parallel"], self.settings.parallelism, len(steps)))
        pool = worker_pool(workers, group["name"])
        futures = [
            pool.submit(contextvars.copy_context().run, self._apply_step, context, step)
            for step in steps
        ]
        recorded = set()
        try:
            # Reported as each finishes, so a live report follows the work.
            for future in as_completed(futures):
                record(future.result())
                recorded.add(future)
        except KeyboardInterrupt:
            # Steps not started never start, and running ones see `cancelled`
            # at their next wait and remove what they half made.
            context.cancelled.set()
            self._wind_down(pool, group["name"])
            for step, future in zip(steps, futures, strict=True):
                if future in recorded:
                    continue
                if future.cancelled():
                    self._skip([step], "interrupted before it started", record)
                elif future.done():
                    record(future.result())
            raise
        pool.shutdown(wait=True)

    @staticmethod
    def _wind_down(pool: ThreadPoolExecutor, group: str) -> None:
        """Wait for a group's running steps to stop, whatever interrupts follow.

        Clean-up runs only after the group, and it clears `cancelled`, so a
        step still running then would go on to its deadline.
        """
        while True:
            try:
                pool.shutdown(wait=True, cancel_futures=True)
                return
            except KeyboardInterrupt:
                log.warning(
                    "%s: interrupted again, still waiting for its running steps "
                    "to stop",
                    group,
                    extra={"step": group},
                )

    def _apply_step(self, context: Context, raw: dict[str, Any]) -> StepResult:
        name, kind = raw["name"], raw["kind"]
        started = time.monotonic()
        if context.cancelled.is_set():
            # A group's step that was still waiting for a worker.
            skipped = "interrupted before it started"
            log.info("%s skipped: %s", name, skipped, extra={"step": name})
            return StepResult(name, kind, SKIPPED, 0.0, skipped)
        try:
            step = STEP_KINDS[kind](name, arguments(raw, context.outputs, True))
            log.debug(
                "%s: %s", name, step.describe(), extra={"step": name, "kind": kind}
            )
            outcome = step.apply(context)
        except StepFailed as error:
            error.with_step(name, kind)
            duration = time.monotonic() - started
            log.error(
                "%s failed after %.2fs: %s",
                name,
                duration,
                error.message,
                extra={"step": name, "kind": kind},
            )
            return StepResult(name, kind, FAILED, duration, error.message, error=error)
        except Exception as error:  # a bug must still end the plan cleanly
            duration = time.monotonic() - started
            log.exception(
                "%s crashed; this is a bug in the executor",
                name,
                extra={"step": name, "kind": kind},
            )
            failure = StepFailed(
                f"internal error: {type(error).__name__}: {error}", step=name, kind=kind
            )
            return StepResult(
                name, kind, FAILED, duration, failure.message, error=failure
            )
        duration = time.monotonic() - started
        context.outputs[name] = outcome.output
        status = CHANGED if outcome.changed else OK
        log.info(
            "%s %s in %.2fs: %s",
            name,
            status,
            duration,
            outcome.message,
            extra={"step": name, "kind": kind, "status": status},
        )
        return StepResult(name, kind, status, duration, outcome.message, outcome.output)


def flatten(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """List the steps of a plan in order, with each group's steps in its place."""
    return [step for item in items for step in item.get("steps", [item])]


def arguments(raw: dict[str, Any], outputs: dict[str, Any], strict: bool) -> dict:
    args = {k: v for k, v in raw.items() if k not in ("name", "kind", "description")}
    if strict:
        return references.substitute(args, outputs)
    return references.substitute_known(args, outputs)
