"""Parts of the executor benchmark; bench/bench_executor.py is the entry point.

resources  finds and removes the containers, volumes and network of a run.
harness    images, templates, the in-process executor and one repetition.
baselines  the plain-Docker start, the readiness poller and `tar czf`.
report     the per-phase, profile and summary tables.
"""

# Every resource the benchmark creates itself carries this label with the run id.
RUN_LABEL = "cyanprint.bench.run"

MIB = 1024 * 1024
READY_TIMEOUT = 60.0
CALL_TIMEOUT = 300.0
DOCKER_TIMEOUT = 300


class BenchError(Exception):
    """A step of the benchmark failed, so its figures cannot be trusted."""
