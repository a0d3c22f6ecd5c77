"""Worker overhead: wall time per trial beyond the trial command's own run time.

A chief runs in this process over a fresh SQLite file; one ``hpsearch worker`` process runs
N trials of a no-op trial command (a shell one-liner that writes one hypertune line, so
the trial completes).  The command's own run time is measured by running it N times
directly with the same environment.  Overhead = (worker wall time - N x command time) / N:
asking for the trial, the launcher, the metric-file read, the report and the result.

    python benchmarks/worker_overhead.py [--trials 50] [--output benchmarks/results/worker.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from hpsearch.chief import Chief
from hpsearch.client import Client

NOOP = (
    'printf \'{"global_step": "1", "score": "1.0", "timestamp": 0, "trial": "%s"}\\n\' '
    '"$CLOUD_ML_TRIAL_ID" > "$CLOUD_ML_HP_METRIC_FILE"'
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        direct = _direct(args.trials, Path(tmp))
        worker_wall, completed = _through_worker(args.trials, Path(tmp))
    per_trial = worker_wall / args.trials
    overhead = per_trial - direct
    load = os.getloadavg()[0]
    row = (
        f"| {args.trials} ({completed} completed) | {direct * 1000:.1f} ms "
        f"| {per_trial * 1000:.1f} ms | {overhead * 1000:.1f} ms |"
    )
    table = (
        "| trials | command alone (median) | per trial through the worker | overhead per trial |\n"
        "|---:|---:|---:|---:|\n"
        f"{row}\n\n"
        f"Load average at the end: {load:.2f} on {os.cpu_count()} CPUs. Target: < 500 ms.\n"
    )
    print(table)
    if args.output:
        Path(args.output).write_text(
            "# Worker overhead\n\n`python benchmarks/worker_overhead.py"
            f" --trials {args.trials}`\n\n" + table
        )
    return 0


def _direct(n: int, tmp: Path) -> float:
    """Median run time of the no-op command started the way the worker starts a trial."""
    times = []
    metric = tmp / "direct.metrics"
    env = dict(os.environ, CLOUD_ML_TRIAL_ID="0", CLOUD_ML_HP_METRIC_FILE=str(metric))
    for _ in range(n):
        start = time.perf_counter()
        subprocess.run(["sh", "-c", NOOP], env=env, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _through_worker(n: int, tmp: Path) -> tuple[float, int]:
    chief = Chief(f"sqlite:///{tmp / 'bench.db'}", host="127.0.0.1", port=0)
    chief.start()
    try:
        with Client(chief.address) as client:
            client.create_study(
                textwrap.dedent(f"""\
                name: overhead
                metric: {{name: score, goal: maximize}}
                parameters:
                  x: {{type: double, min: 0, max: 1}}
                budget: {{max_trials: {n}}}
                algorithm: random
                """)
            )
        command = [
            sys.executable,
            "-m",
            "hpsearch",
            "--log-level",
            "WARNING",
            "worker",
            "--oracle",
            chief.address,
            "--study",
            "overhead",
            "--gpus-per-trial",
            "0",
            "--output-dir",
            str(tmp / "out"),
            "--",
            "sh",
            "-c",
            NOOP,
        ]
        # Time from the first trial's start to the last one's end, as the chief saw it:
        # the worker process's own start-up (Python, gRPC) is paid once, not per trial.
        subprocess.run(command, check=True, timeout=600)
        assert chief.store is not None
        trials = chief.store.list_trials("overhead")
        starts = [t.started_at for t in trials if t.started_at is not None]
        ends = [t.completed_at for t in trials if t.completed_at is not None]
        completed = sum(1 for t in trials if t.state.value == "COMPLETED")
        span = max(ends) - min(starts)
        return span, completed
    finally:
        chief.stop(0)


if __name__ == "__main__":
    raise SystemExit(main())
