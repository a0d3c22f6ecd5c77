"""Heartbeat latency while the chief fits its Gaussian process.

Issue 5's figure: "p99 of a heartbeat call while a fit runs stays under 20 ms".

What runs (all real, nothing mocked):

1. a chief process (``python -m hpsearch.chief``) on a fresh SQLite file, log level DEBUG
   so that every refill of suggestions logs its duration (``hpsearch.oracle.suggester``:
   ``suggestions ready ... seconds=...``);
2. a study of ``--params`` doubles with the ``bayesian`` algorithm, filled through the
   client (ask, tell) until ``--trials`` trials are completed, so each fit works on a
   history of that size;
3. for ``--seconds``: a *teller* process asks a trial and tells its result again and
   again, so the chief refits after every result; meanwhile this process holds one
   running trial and heartbeats it every ``--interval`` seconds, timing each call.

Afterwards the chief's log gives the interval of every fit (its end time and duration);
a heartbeat counts as "during a fit" when its call overlaps one.  The table gives the
heartbeat latency percentiles during fits and outside them, and how long the fits took.

    python benchmarks/heartbeat_latency.py [--trials 400] [--params 10] [--seconds 30]

Writes benchmarks/results/heartbeat_latency.md (``--output`` to change).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from hpsearch.client import Client
from hpsearch.space import Budget, DoubleParam, Goal, Metric, Space, StudyConfig

RESULTS = Path(__file__).resolve().parent / "results" / "heartbeat_latency.md"
STUDY = "heartbeat-bench"
# The oracle's line after each refill (the fit itself may run in the chief's fit process,
# whose own log lines do not reach the chief's log): its end and its length.
FIT_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) DEBUG hpsearch\.oracle(?:\.suggester)?: "
    r"suggestions ready .*history=(\d+) .*seconds=([0-9.]+)"
)


def objective(params: dict[str, object]) -> float:
    """A cheap smooth function of the parameters (the trials' own time is not measured)."""
    x = np.array([float(v) for _, v in sorted(params.items())])  # type: ignore[arg-type]
    return float(np.sum((x - 0.3) ** 2) + 0.1 * np.sin(9.0 * x).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=400, help="completed trials before")
    parser.add_argument("--params", type=int, default=10, help="doubles in the space")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between beats")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="hpsearch-heartbeat-") as tmp:
        log_path = Path(tmp) / "chief.log"
        port = _free_port()
        storage = f"sqlite:///{Path(tmp) / 'hpsearch.db'}"
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(log_path, "w") as log:
            chief = subprocess.Popen(
                [sys.executable, "-m", "hpsearch.chief", "--storage", storage,
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "DEBUG"],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        try:
            address = f"127.0.0.1:{port}"
            with Client(address, retry_seconds=60.0) as client:
                fill_seconds = _fill(client, args)
                print(f"filled {args.trials} trials in {fill_seconds:.0f} s", flush=True)
                beats, load = _measure(client, address, args)
        finally:
            chief.terminate()
            try:
                chief.wait(timeout=30)
            except subprocess.TimeoutExpired:
                chief.kill()
        fits = _fits(log_path.read_text(), min_completed=args.trials)
    report = _report(args, beats, fits, fill_seconds, load)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    return 0


def _fill(client: Client, args: argparse.Namespace) -> float:
    space = Space(tuple(DoubleParam(f"x{i}", min=0.0, max=1.0) for i in range(args.params)))
    config = StudyConfig(
        name=STUDY,
        metric=Metric("loss", Goal.MINIMIZE),
        space=space,
        budget=Budget(max_trials=args.trials + 100_000, parallel_trials=2),
        algorithm="bayesian",
        seed=0,
    )
    client.create_study(config)
    started = time.perf_counter()
    for _ in range(args.trials):
        (trial,) = client.ask(STUDY, worker_id="filler", timeout=120)
        client.tell(STUDY, trial.number, trial.attempt, value=objective(dict(trial.params)))
    return time.perf_counter() - started


def _teller(address: str, stop_at: float) -> None:
    """Ask and tell until ``stop_at`` (wall clock): every result makes the chief refit."""
    with Client(address, retry_seconds=60.0) as client:
        while time.time() < stop_at:
            (trial,) = client.ask(STUDY, worker_id="teller", timeout=120)
            client.tell(STUDY, trial.number, trial.attempt, value=objective(dict(trial.params)))


def _measure(
    client: Client, address: str, args: argparse.Namespace
) -> tuple[list[tuple[float, float]], float]:
    """(wall-clock start, seconds) of each heartbeat while the teller keeps the chief busy."""
    (held,) = client.ask(STUDY, worker_id="heartbeater", timeout=120)
    stop_at = time.time() + args.seconds
    teller = multiprocessing.get_context("spawn").Process(
        target=_teller, args=(address, stop_at), daemon=True
    )
    teller.start()
    beats: list[tuple[float, float]] = []

    def beat() -> None:
        while time.time() < stop_at:
            wall = time.time()
            started = time.perf_counter()
            client.heartbeat(STUDY, held.number, held.attempt, worker_id="heartbeater")
            beats.append((wall, time.perf_counter() - started))
            time.sleep(args.interval)

    thread = threading.Thread(target=beat, name="heartbeater")
    thread.start()
    thread.join()
    load = os.getloadavg()[0]
    teller.join(timeout=180)
    if teller.is_alive():
        teller.terminate()
    client.tell(STUDY, held.number, held.attempt, value=objective(dict(held.params)))
    return beats, load


def _fits(log: str, min_completed: int) -> list[tuple[float, float]]:
    """(start, end) wall-clock times of the chief's fits on at least ``min_completed`` trials."""
    fits = []
    for line in log.splitlines():
        match = FIT_LINE.match(line)
        if not match or int(match.group(3)) < min_completed:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
        end = stamp + int(match.group(2)) / 1000.0
        fits.append((end - float(match.group(4)), end))
    return fits


def _report(
    args: argparse.Namespace,
    beats: list[tuple[float, float]],
    fits: list[tuple[float, float]],
    fill_seconds: float,
    load: float,
) -> str:
    starts = np.array([f[0] for f in fits])
    ends = np.array([f[1] for f in fits])
    # The log's clock has millisecond resolution: widen each fit by 1 ms either side.
    during = [
        bool(np.any((starts - 0.001 < wall + seconds) & (ends + 0.001 > wall)))
        for wall, seconds in beats
    ]
    ms = np.array([seconds for _, seconds in beats]) * 1000.0
    mask = np.array(during, dtype=bool)
    window = (beats[0][0], beats[-1][0] + beats[-1][1]) if beats else (0.0, 0.0)
    busy = sum(max(0.0, min(e, window[1]) - max(s, window[0])) for s, e in fits)
    fit_ms = (ends - starts) * 1000.0

    def row(name: str, sample: np.ndarray) -> str:
        if not len(sample):
            return f"| {name} | 0 | - | - | - | - |"
        p50, p90, p99 = np.percentile(sample, [50, 90, 99])
        cells = f"{p50:.2f} | {p90:.2f} | {p99:.2f} | {sample.max():.2f}"
        return f"| {name} | {len(sample)} | {cells} |"

    lines = [
        "# Heartbeat latency while the chief fits its GP",
        "",
        f"Command: `python benchmarks/heartbeat_latency.py --trials {args.trials} "
        f"--params {args.params} --seconds {args.seconds:g}`  ",
        f"A chief process on SQLite, study of {args.params} doubles, algorithm `bayesian`, "
        f"{args.trials} completed trials before the measurement (filled through the client in "
        f"{fill_seconds:.0f} s).  For {args.seconds:g} s a second process asks and tells "
        "trials back to back (the chief refits after every result) while this one heartbeats "
        f"a running trial every {args.interval * 1000:g} ms.  A heartbeat is *during a fit* "
        "when its call overlaps a fit's interval (from the chief's DEBUG log).  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} logical CPUs shared with other jobs; load average {load:.2f} at the "
        "end of the measurement.",
        "",
        "| heartbeats | calls | p50 ms | p90 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|",
        row("during a fit", ms[mask]),
        row("no fit running", ms[~mask]),
        row("all", ms),
        "",
        "| fits during the measurement | count | median ms | p90 ms | max ms "
        "| share of the time a fit ran |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    if len(fit_ms):
        in_window = fit_ms[(ends > window[0]) & (starts < window[1])]
        sample = in_window if len(in_window) else fit_ms
        lines.append(
            f"| suggest() on >= {args.trials} trials x {args.params} params | {len(sample)} | "
            f"{np.median(sample):.0f} | {np.percentile(sample, 90):.0f} | {sample.max():.0f} | "
            f"{100.0 * busy / max(window[1] - window[0], 1e-9):.0f}% |"
        )
    else:
        lines.append("| (no fit found in the chief's log) | 0 | - | - | - | - |")
    lines.append("")
    return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
