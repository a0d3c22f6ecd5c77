"""Warm start: how many trials a study needs to reach a target value, started cold and
started from an earlier study's results (``warm_start: {study: ...}``), side by side on the
same problem and seeds.

The problem, of our own: a re-tune.  An earlier study searched a wider space (``x4`` over
[0, 1], and a categorical ``augment`` the objective ignores) with 30 random trials; the new
study narrows ``x4`` to [0.4, 1] and drops ``augment``, so only the earlier trials whose
``x4`` lies in the new range enter its search's history (about 60% of them).  The
objective, to minimise, is a weighted quadratic bowl with a ripple along ``x1``:

    f(x) = sum_i w_i (x_i - c_i)^2 + 0.02 (1 - cos(12 pi (x1 - c1)))
    c = (0.73, 0.21, 0.55, 0.88), w = (1, 2, 0.5, 1.5); minimum 0 at c

Each seed runs the earlier study (random search), then the new study twice with the
default ``bayesian`` algorithm, once cold and once warm-started, each for up to
``--budget`` trials, through the real oracle and store (SQLite in memory, the suggester's
work done on this thread with ``Oracle.refill``).  Reported: trials to reach ``f <=
--target`` (not reached: budget + 1, shown as ">budget"), median and quartiles over seeds,
the warm/cold ratio of the medians, and the best value after 5, 10 and 20 trials.

    python benchmarks/warm_start.py                # 10 seeds, budget 40 (a few minutes)
    python benchmarks/warm_start.py --seeds 3      # a smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core per fit, as the chief's fit process has

CENTER = (0.73, 0.21, 0.55, 0.88)
WEIGHTS = (1.0, 2.0, 0.5, 1.5)
EARLIER_TRIALS = 30

STUDY = """\
name: %(name)s
metric: {name: loss, goal: minimize}
parameters:
  x1: {type: double, min: 0.0, max: 1.0}
  x2: {type: double, min: 0.0, max: 1.0}
  x3: {type: double, min: 0.0, max: 1.0}
  x4: {type: double, min: %(x4_min)s, max: 1.0}
%(extra)s"""
#: The earlier study: a wider x4, a parameter the objective ignores, random search.
EARLIER = {
    "name": "earlier",
    "x4_min": 0.0,
    "extra": "  augment: {type: categorical, values: [none, flip, crop]}\nalgorithm: random\n",
}


def new_study(name: str, budget: int, seed: int, warm: bool) -> str:
    """The new study's file: x4 narrowed, ``bayesian``, warm-started or not."""
    extra = f"algorithm: bayesian\nbudget: {{max_trials: {budget}}}\nseed: {seed}\n"
    if warm:
        extra += "warm_start: {study: earlier}\n"
    return STUDY % {"name": name, "x4_min": 0.4, "extra": extra}


def objective(params: dict[str, object]) -> float:
    x = [float(params[f"x{i + 1}"]) for i in range(4)]  # type: ignore[arg-type]
    bowl = sum(w * (v - c) ** 2 for w, v, c in zip(WEIGHTS, x, CENTER, strict=True))
    return bowl + 0.02 * (1 - math.cos(12 * math.pi * (x[0] - CENTER[0])))


def run_study(oracle: object, name: str, budget: int) -> list[float]:
    """Ask, evaluate and tell until the study is done; the values in trial order."""
    from hpsearch.oracle import AskStatus, Oracle

    assert isinstance(oracle, Oracle)
    values: list[float] = []
    while len(values) < budget:
        answer = oracle.ask(name, "w0", wait=0.0)
        if answer.status is AskStatus.DONE:
            break
        if not answer.trials:
            if not oracle.refill(name):  # the suggester thread's work, on this thread
                raise RuntimeError(f"study {name} has nothing to hand out")
            continue
        trial = answer.trials[0]
        value = objective(trial.params)
        oracle.complete(name, trial.number, trial.attempt, value=value)
        values.append(value)
    return values


def one_seed(seed: int, budget: int) -> dict[str, list[float]]:
    from hpsearch.oracle import Oracle
    from hpsearch.space import loads_study
    from hpsearch.store import Store

    with Store("sqlite://") as store:
        oracle = Oracle(store, hold_seconds=0.0)
        earlier = STUDY % EARLIER + f"budget: {{max_trials: {EARLIER_TRIALS}}}\nseed: {seed}\n"
        oracle.create_study(loads_study(earlier))
        run_study(oracle, "earlier", EARLIER_TRIALS)
        runs = {}
        for name in ("cold", "warm"):
            oracle.create_study(loads_study(new_study(name, budget, seed, name == "warm")))
            runs[name] = run_study(oracle, name, budget)
        return runs


def trials_to(values: list[float], target: float, budget: int) -> int:
    for i, value in enumerate(values, start=1):
        if value <= target:
            return i
    return budget + 1


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    if len(xs) < 2:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--target", type=float, default=0.01)
    parser.add_argument(
        "--output", default=str(Path(__file__).parent / "results" / "warm_start.md")
    )
    args = parser.parse_args()

    steps: dict[str, list[int]] = {"cold": [], "warm": []}
    best_after: dict[str, dict[int, list[float]]] = {k: {5: [], 10: [], 20: []} for k in steps}
    started = time.monotonic()
    for seed in range(args.seeds):
        runs = one_seed(seed, args.budget)
        for kind, values in runs.items():
            steps[kind].append(trials_to(values, args.target, args.budget))
            for n, kept in best_after[kind].items():
                kept.append(min(values[:n]))
        print(
            f"seed {seed}: trials to f <= {args.target:g}: cold {steps['cold'][-1]}, "
            f"warm {steps['warm'][-1]}  ({time.monotonic() - started:.0f} s)",
            flush=True,
        )

    def show(n: float) -> str:
        return f">{args.budget}" if n > args.budget else f"{n:g}"

    lines = [
        "# Warm start (benchmarks/warm_start.py)",
        "",
        f"`python benchmarks/warm_start.py --seeds {args.seeds} --budget {args.budget} "
        f"--target {args.target:g}`; {time.monotonic() - started:.0f} s on a shared 2-core "
        "machine.  The new study is `bayesian` over 4 doubles (x4 narrowed to [0.4, 1]); "
        f"the warm one starts from the {EARLIER_TRIALS} random trials of the earlier study "
        "(those that fit its space).  Trials to reach the target, over seeds:",
        "",
        "| start | median | quartiles | reached | best after 5 | after 10 | after 20 |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind in ("cold", "warm"):
        q1, q2, q3 = quartiles([float(n) for n in steps[kind]])
        reached = sum(n <= args.budget for n in steps[kind])
        best = [f"{statistics.median(best_after[kind][n]):.4f}" for n in (5, 10, 20)]
        lines.append(
            f"| {kind} | {show(q2)} | {show(q1)}-{show(q3)} | {reached}/{args.seeds} | "
            + " | ".join(best)
            + " |"
        )
    cold_median = statistics.median(steps["cold"])
    warm_median = statistics.median(steps["warm"])
    wins = sum(w < c for w, c in zip(steps["warm"], steps["cold"], strict=True))
    lines += [
        "",
        f"Warm/cold ratio of the median trials to target: {warm_median / cold_median:.2f} "
        f"(unreached counted as {args.budget + 1}); the warm start needed fewer trials on "
        f"{wins} of {args.seeds} seeds.",
        "",
        "Per seed (cold, warm): "
        + ", ".join(
            f"({show(c)}, {show(w)})" for c, w in zip(steps["cold"], steps["warm"], strict=True)
        ),
        "",
    ]
    Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    raise SystemExit(main())
