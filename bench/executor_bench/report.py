"""Tables of the phases, the start and build profiles and the summary."""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable

from orchestrator.engine import StepResult

from .harness import PlanRecord, Repetition

START_TARGET_RATIO = 1.3
READINESS_TARGET_SECONDS = 0.100
STREAM_TARGET_RATIO = 2.0

# The run step reports its readiness wait as "..., ready after 1.23s".
READY_AFTER = re.compile(r"ready after ([0-9.]+)s")


def median(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def minimum(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return min(values) if values else math.nan


def seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f} s"


def millis(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 1000:.1f} ms"


def percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 100:.0f} %"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [
        max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))
    ]
    for row in [headers, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def wall_time(record: PlanRecord, results: list[StepResult]) -> float:
    """Return the time from the first of `results` starting to the last one ending."""
    spans = [
        (record.step_finished[r.name] - r.duration, record.step_finished[r.name])
        for r in results
        if r.name in record.step_finished
    ]
    if not spans:
        return 0.0
    return max(end for _, end in spans) - min(begin for begin, _ in spans)


def group_wall(record: PlanRecord, prefix: str) -> float:
    return wall_time(
        record, [r for r in record.report.results if r.name.startswith(prefix)]
    )


def step_duration(record: PlanRecord, name: str) -> float:
    for result in record.report.results:
        if result.name == name:
            return result.duration
    return 0.0


def run_steps(record: PlanRecord) -> list[StepResult]:
    return [r for r in record.report.results if r.kind == "run"]


def ready_wait(result: StepResult) -> float:
    match = READY_AFTER.search(result.message)
    return float(match.group(1)) if match else math.nan


def start_profile(repetitions: list[Repetition]) -> list[list[str]]:
    """Return rows that split executor start and its baseline into their parts."""
    done = [r for r in repetitions if r.start_record and r.baseline]
    if not done:
        return []

    def per_rep(function: Callable[[Repetition], float]) -> float:
        return median([function(r) for r in done])

    def mean_run(r: Repetition, function: Callable[[StepResult], float]) -> float:
        return statistics.fmean(function(s) for s in run_steps(r.start_record))

    def mean_base(r: Repetition, attribute: str) -> float:
        return statistics.fmean(getattr(t, attribute) for t in r.baseline.containers)

    return [
        [
            "whole start",
            seconds(per_rep(lambda r: r.start)),
            seconds(per_rep(lambda r: r.baseline.total)),
        ],
        [
            "  CPU time of this process (harness and executor)",
            seconds(per_rep(lambda r: r.start_cpu.process)),
            seconds(per_rep(lambda r: r.baseline.cpu.process)),
        ],
        [
            "  host CPUs busy, all processes",
            percent(per_rep(lambda r: r.start_cpu.host_busy)),
            percent(per_rep(lambda r: r.baseline.cpu.host_busy)),
        ],
        [
            "  HTTP, validation and plan rendering",
            seconds(
                per_rep(
                    lambda r: (
                        r.start - (r.start_record.finished - r.start_record.started)
                    )
                )
            ),
            "-",
        ],
        [
            "  network and pull steps",
            seconds(
                per_rep(
                    lambda r: (
                        step_duration(r.start_record, "network")
                        + group_wall(r.start_record, "pull-")
                    )
                )
            ),
            "-",
        ],
        [
            "  container group, wall time",
            seconds(
                per_rep(lambda r: wall_time(r.start_record, run_steps(r.start_record)))
            ),
            seconds(per_rep(lambda r: r.baseline.total)),
        ],
        [
            "  per container: look-up, create and start",
            seconds(
                per_rep(lambda r: mean_run(r, lambda s: s.duration - ready_wait(s)))
            ),
            seconds(per_rep(lambda r: mean_base(r, "create") + mean_base(r, "start"))),
        ],
        [
            "  per container: wait for GET / 200",
            seconds(per_rep(lambda r: mean_run(r, ready_wait))),
            seconds(per_rep(lambda r: mean_base(r, "ready"))),
        ],
        [
            "  per container: whole run step",
            seconds(per_rep(lambda r: mean_run(r, lambda s: s.duration))),
            seconds(
                per_rep(
                    lambda r: (
                        mean_base(r, "create")
                        + mean_base(r, "start")
                        + mean_base(r, "ready")
                    )
                )
            ),
        ],
    ]


def build_profile(repetitions: list[Repetition]) -> list[list[str]]:
    done = [r for r in repetitions if r.build_record]
    if not done:
        return []

    def per_rep(function: Callable[[Repetition], float]) -> str:
        return seconds(median([function(r) for r in done]))

    return [
        ["whole build, request to last byte", per_rep(lambda r: r.build)],
        [
            "  processor calls, wall time",
            per_rep(lambda r: group_wall(r.build_record, "process-")),
        ],
        ["  merge", per_rep(lambda r: step_duration(r.build_record, "merge"))],
        [
            "  plugin calls, one after another",
            per_rep(lambda r: group_wall(r.build_record, "plugin-")),
        ],
        [
            "  archive step, until the merger's headers",
            per_rep(lambda r: step_duration(r.build_record, "archive")),
        ],
        ["  request to response headers", per_rep(lambda r: r.headers)],
        ["  response headers to last byte (stream)", per_rep(lambda r: r.stream)],
        ["  tar czf in the merger (baseline)", per_rep(lambda r: r.tar)],
    ]


def ratio_text(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def ratio(measured: float, baseline: float) -> float:
    if math.isnan(measured) or math.isnan(baseline) or baseline <= 0:
        return math.nan
    return measured / baseline


def verdict(value: float, limit: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "yes" if value <= limit else "no"


def plain_row(figure: str, values: list[float]) -> list[str]:
    """Return a summary row for a figure that has no baseline and no target."""
    return [figure, seconds(median(values)), "-", "-", "-", "-"]


def print_report(repetitions: list[Repetition], latencies: list[float]) -> None:
    count = len(repetitions)
    phases = [
        ("warm", [r.warm for r in repetitions]),
        ("start", [r.start for r in repetitions]),
        (
            "start baseline",
            [r.baseline.total if r.baseline else math.nan for r in repetitions],
        ),
        ("build (request to last byte)", [r.build for r in repetitions]),
        ("  archive stream", [r.stream for r in repetitions]),
        ("  tar czf baseline", [r.tar for r in repetitions]),
        ("delete", [r.delete for r in repetitions]),
    ]
    print(f"\nPhases over {count} repetitions (seconds):")
    print_table(
        ["phase", "median", "min", "each repetition"],
        [
            [
                name,
                seconds(median(values)),
                seconds(minimum(values)),
                ", ".join("n/a" if math.isnan(v) else f"{v:.3f}" for v in values),
            ]
            for name, values in phases
        ],
    )

    profile = start_profile(repetitions)
    if profile:
        print("\nWhere start spends its time (median over repetitions):")
        print_table(["part", "executor", "baseline"], profile)
    profile = build_profile(repetitions)
    if profile:
        print("\nWhere build spends its time (median over repetitions):")
        print_table(["part", "time"], profile)

    if latencies:
        print("\nReadiness latency, run step finish minus the poller's first 200:")
        print(
            "  "
            + ", ".join(millis(v) for v in latencies)
            + f"; max {millis(max(latencies))}"
        )

    start = median([r.start for r in repetitions])
    start_base = median(
        [r.baseline.total if r.baseline else math.nan for r in repetitions]
    )
    stream = median([r.stream for r in repetitions])
    tar = median([r.tar for r in repetitions])
    start_ratio = ratio(start, start_base)
    stream_ratio = ratio(stream, tar)
    worst = max(latencies) if latencies else math.nan
    dash = "-"
    print("\nSummary (medians over repetitions; ratio = measured / baseline):")
    print_table(
        ["figure", "measured", "baseline", "ratio", "target", "met"],
        [
            [
                "start, executor vs plain Docker",
                seconds(start),
                seconds(start_base),
                ratio_text(start_ratio),
                f"ratio <= {START_TARGET_RATIO}",
                verdict(start_ratio, START_TARGET_RATIO),
            ],
            [
                f"readiness latency, max of {len(latencies)}",
                millis(worst),
                dash,
                dash,
                f"<= {READINESS_TARGET_SECONDS * 1000:.0f} ms",
                verdict(worst, READINESS_TARGET_SECONDS),
            ],
            [
                "archive stream vs tar czf",
                seconds(stream),
                seconds(tar),
                ratio_text(stream_ratio),
                f"ratio <= {STREAM_TARGET_RATIO}",
                verdict(stream_ratio, STREAM_TARGET_RATIO),
            ],
            plain_row("warm", [r.warm for r in repetitions]),
            plain_row("build, whole", [r.build for r in repetitions]),
            plain_row("delete", [r.delete for r in repetitions]),
        ],
    )
