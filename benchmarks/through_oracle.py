"""Search quality as a deployment sees it: trials handed out by the real oracle.

``search_quality.py`` calls :func:`hpsearch.search.suggest` directly, in synchronous
batches.  Here the same problems (its :func:`problems`) run through
:class:`hpsearch.oracle.Oracle` with its suggester thread running, as in ``hpsearch chief``:
``WORKERS`` trials in flight, refilled one at a time as each result comes back (first in,
first out), so what is measured includes which ready suggestion each ask is handed.  The
study is unseeded (a seeded one is replayed exactly, see ``StudyMirror.exact_replay``):
the hand-out path of a production study.  Budget 60; prints each seed's simple regret and
the median.

Usage::

    python benchmarks/through_oracle.py PROBLEM WORKERS SEEDS
    python benchmarks/through_oracle.py hartmann6 1 10
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import search_quality

from hpsearch.oracle import Oracle
from hpsearch.space import Budget, Goal, Metric, StudyConfig
from hpsearch.store import Store

BUDGET = 60


def run(problem: search_quality.Problem, seed: int, workers: int) -> float:
    """The simple regret of one unseeded study (its name, and so its Sobol design, per seed)."""
    store = Store("sqlite://")
    oracle = Oracle(store)
    oracle.start()
    try:
        config = StudyConfig(
            name=f"through-oracle-{seed}",
            metric=Metric("loss", Goal.MINIMIZE),
            space=problem.space,
            algorithm="bayesian",
            budget=Budget(max_trials=BUDGET, parallel_trials=workers),
        )
        oracle.create_study(config)
        running, values = [], []
        while len(values) < BUDGET:
            while len(running) < workers and len(values) + len(running) < BUDGET:
                answer = oracle.ask(config.name, f"w{len(values) + len(running)}", wait=30.0)
                if not answer.trials:
                    break
                running.append(answer.trials[0])
            trial = running.pop(0)
            value = problem.f(trial.params)
            oracle.complete(config.name, trial.number, trial.attempt, value=value)
            values.append(value)
        return float(min(values)) - problem.optimum
    finally:
        oracle.stop()
        store.close()


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    if len(argv) != 3 or argv[0] not in search_quality.problems():
        print(__doc__)
        return 2
    problem = search_quality.problems()[argv[0]]
    workers, seeds = int(argv[1]), int(argv[2])
    regrets = []
    for seed in range(seeds):
        started = time.perf_counter()
        regrets.append(run(problem, seed, workers))
        print(f"{argv[0]} workers={workers} seed={seed} regret={regrets[-1]:.4g} "
              f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
    print(f"median {argv[0]} workers={workers}: {np.median(regrets):.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
