"""The in-process loop's overhead per trial: ``hpsearch.optimize`` against Optuna's
``study.optimize`` on the same trivial objective, storage kind and algorithm.

The objective costs nothing (two doubles in [-5, 5], the sum of their squares), so the time
per trial is the loop's own: asking for a trial, the algorithm's suggestion, storing the
trial and its result.  Cells: the storage kind (``memory``: hpsearch's SQLite in memory,
``sqlite://``, against Optuna's in-memory storage; ``sqlite``: a fresh SQLite file for each,
as each library configures it) x the algorithm (``random``: hpsearch ``random`` against
Optuna's ``RandomSampler``; ``tpe``: hpsearch ``tpe``, which is Optuna's ``TPESampler`` with
``multivariate=True, group=True, constant_liar=True`` run over the study's history, against
Optuna's ``TPESampler`` with those same options).

Every run is a fresh Python process, one trial at a time (``n_jobs=1``, hpsearch's
``parallel_trials: 1``), and measures: the import of the library, the set-up (opening the
store and creating the study), and the loop (``optimize`` with ``n_trials``: wall time and
this process's CPU time, its threads included).  Rounds go over every cell and both
libraries in turn (the order alternates), so a change in the machine's load hits both
alike; the report gives per-trial medians with their quartiles over rounds, and the median
over rounds of the ratio hpsearch / Optuna measured in the same round (with its range).

    python benchmarks/optimize_overhead.py                       # 5 rounds, 300 trials
    python benchmarks/optimize_overhead.py --rounds 2 --trials 100   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

METHODS = ("hpsearch", "optuna")
#: Not a library: hpsearch's two store writes per trial alone (create RUNNING, complete).
STORE_ONLY = "store"
ALGORITHMS = ("random", "tpe")
STORAGES = ("memory", "sqlite")
HERE = Path(__file__).resolve()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=300, help="trials per run")
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--storages", nargs="+", choices=STORAGES, default=list(STORAGES))
    parser.add_argument("--output", default=None, help="also write the report to this file")
    parser.add_argument("--child", nargs=4, metavar=("METHOD", "ALGORITHM", "STORAGE", "SEED"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.child:
        method, algorithm, storage, seed = args.child
        print(json.dumps(_child(method, algorithm, storage, args.trials, int(seed))))
        return 0

    runs: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    cells = [(a, s) for a in args.algorithms for s in args.storages]
    started = time.monotonic()
    for round_number in range(args.rounds):
        for index, (algorithm, storage) in enumerate(cells):
            order = METHODS if (round_number + index) % 2 == 0 else METHODS[::-1]
            # The store's own part of hpsearch's trial, beside its random cells.
            extra = (STORE_ONLY,) if algorithm == "random" else ()
            for method in (*order, *extra):
                run = _run_child(method, algorithm, storage, args.trials, seed=round_number)
                run["round"] = round_number
                runs[(algorithm, storage, method)].append(run)
                print(
                    f"round {round_number + 1}/{args.rounds} {algorithm:6} {storage:6} "
                    f"{method:8} {run['loop_s'] / args.trials * 1e3:8.3f} ms/trial "
                    f"(best {run['best']:.3g})",
                    file=sys.stderr,
                    flush=True,
                )
    report = _report(runs, cells, args, time.monotonic() - started)
    print(report)
    if args.output:
        Path(args.output).write_text(report)
    return 0


# -- one run, in a child process ---------------------------------------------------------
def _child(method: str, algorithm: str, storage: str, n: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'study.db'}" if storage == "sqlite" else None
        if method == "hpsearch":
            return _hpsearch(algorithm, url, n, seed)
        if method == STORE_ONLY:
            return _store_writes(url, n, seed)
        return _optuna(algorithm, url, n, seed)


def _store_writes(url: str | None, n: int, seed: int) -> dict[str, Any]:
    """The writes ``optimize`` makes per trial, straight on the store: the trial created
    RUNNING with its lease, then completed with its value."""
    import random

    start = time.perf_counter()
    from hpsearch.space import Budget, DoubleParam, Goal, Metric, Space, StudyConfig
    from hpsearch.store import Store

    imported = time.perf_counter()
    store = Store(url or "sqlite://")
    store.create_study(
        StudyConfig(
            name="bench",
            metric=Metric("value", Goal.MINIMIZE),
            space=Space((DoubleParam("x", -5.0, 5.0), DoubleParam("y", -5.0, 5.0))),
            budget=Budget(max_trials=n, parallel_trials=1),
            algorithm="random",
        )
    )
    draw = random.Random(seed)
    set_up = time.perf_counter()
    cpu = time.process_time()
    best = float("inf")
    for _ in range(n):
        params = {"x": draw.uniform(-5.0, 5.0), "y": draw.uniform(-5.0, 5.0)}
        trial = store.create_trial("bench", params, worker_id="w", lease_seconds=60.0)
        value = params["x"] ** 2 + params["y"] ** 2
        store.complete_trial("bench", trial.number, trial.attempt, value, {"value": value})
        best = min(best, value)
    done = time.perf_counter()
    cpu = time.process_time() - cpu
    store.close()
    return _timings(start, imported, set_up, done, cpu, best)


def _hpsearch(algorithm: str, url: str | None, n: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    from hpsearch.loop import optimize
    from hpsearch.space import Budget, DoubleParam, Goal, Metric, Space, StudyConfig
    from hpsearch.store import Store

    imported = time.perf_counter()
    store = Store(url or "sqlite://")
    config = StudyConfig(
        name="bench",
        metric=Metric("value", Goal.MINIMIZE),
        space=Space((DoubleParam("x", -5.0, 5.0), DoubleParam("y", -5.0, 5.0))),
        budget=Budget(max_trials=n, parallel_trials=1),
        algorithm=algorithm,
        seed=seed,
    )
    store.create_study(config)
    set_up = time.perf_counter()
    cpu = time.process_time()

    def objective(trial: Any) -> float:
        return float(trial.params["x"] ** 2 + trial.params["y"] ** 2)

    result = optimize(objective, "bench", n_trials=n, storage=store)
    done = time.perf_counter()
    cpu = time.process_time() - cpu
    assert len(result.trials) == n, len(result.trials)
    store.close()
    return _timings(start, imported, set_up, done, cpu, result.best_value)


def _optuna(algorithm: str, url: str | None, n: int, seed: int) -> dict[str, Any]:
    import warnings

    start = time.perf_counter()
    import optuna

    imported = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate/group are marked experimental
        sampler = (
            optuna.samplers.RandomSampler(seed=seed)
            if algorithm == "random"
            else optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, constant_liar=True
            )
        )
    study = optuna.create_study(storage=url, sampler=sampler, study_name="bench")
    set_up = time.perf_counter()
    cpu = time.process_time()

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -5.0, 5.0)
        y = trial.suggest_float("y", -5.0, 5.0)
        return float(x**2 + y**2)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=n)
    done = time.perf_counter()
    cpu = time.process_time() - cpu
    assert len(study.trials) == n, len(study.trials)
    return _timings(start, imported, set_up, done, cpu, study.best_value)


def _timings(
    start: float, imported: float, set_up: float, done: float, cpu: float, best: Any
) -> dict[str, Any]:
    return {
        "import_s": imported - start,
        "setup_s": set_up - imported,
        "loop_s": done - set_up,
        "cpu_s": cpu,
        "best": float("nan") if best is None else float(best),
    }


def _run_child(method: str, algorithm: str, storage: str, n: int, seed: int) -> dict[str, Any]:
    command = [sys.executable, str(HERE), "--trials", str(n),
               "--child", method, algorithm, storage, str(seed)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{method} {algorithm} {storage} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- the report -----------------------------------------------------------------------------
def _report(
    runs: dict[tuple[str, str, str], list[dict[str, Any]]],
    cells: list[tuple[str, str]],
    args: argparse.Namespace,
    seconds: float,
) -> str:
    n = args.trials
    lines = [
        "# In-process loop overhead: `hpsearch.optimize` vs Optuna's `study.optimize`",
        "",
        f"`python benchmarks/optimize_overhead.py --rounds {args.rounds} --trials {n}"
        + (
            ""
            if list(args.algorithms) == list(ALGORITHMS)
            else " --algorithms " + " ".join(args.algorithms)
        )
        + (
            ""
            if list(args.storages) == list(STORAGES)
            else " --storages " + " ".join(args.storages)
        )
        + "`",
        "",
        f"{n} trials per run, one at a time, trivial objective (2 doubles); {args.rounds} "
        "rounds, each library in a fresh process per run. Per trial: the loop's wall time "
        "(and CPU time, all threads) divided by the trials; median over rounds, quartiles in "
        "brackets. Ratio: hpsearch / Optuna within each round, median [min-max] over rounds "
        "(below 1: hpsearch is faster).",
        "",
        "| algorithm | storage | hpsearch ms/trial | Optuna ms/trial | ratio (wall) "
        "| hpsearch CPU ms/trial | Optuna CPU ms/trial | ratio (CPU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for algorithm, storage in cells:
        ours, theirs = runs[(algorithm, storage, "hpsearch")], runs[(algorithm, storage, "optuna")]
        wall = [_ms(r, "loop_s", n) for r in ours], [_ms(r, "loop_s", n) for r in theirs]
        cpu = [_ms(r, "cpu_s", n) for r in ours], [_ms(r, "cpu_s", n) for r in theirs]
        lines.append(
            f"| {algorithm} | {storage} | {_spread(wall[0])} | {_spread(wall[1])} "
            f"| {_ratio(*wall)} | {_spread(cpu[0])} | {_spread(cpu[1])} | {_ratio(*cpu)} |"
        )
    store_cells = [s for a, s in cells if a == "random" and runs.get(("random", s, STORE_ONLY))]
    if store_cells:
        lines += [
            "",
            "Of which the store: hpsearch's two writes per trial (the trial created RUNNING "
            "with its lease, then completed), made straight on the store in a process of "
            "their own, in the same rounds. Share: the writes' CPU over the hpsearch `random` "
            "loop's CPU, within each round.",
            "",
            "| storage | store writes ms/trial | CPU ms/trial | share of hpsearch random (CPU) |",
            "|---|---:|---:|---:|",
        ]
        for storage in store_cells:
            alone = runs[("random", storage, STORE_ONLY)]
            loop = runs[("random", storage, "hpsearch")]
            wall_ms = [_ms(r, "loop_s", n) for r in alone]
            cpu_ms = [_ms(r, "cpu_s", n) for r in alone]
            lines.append(
                f"| {storage} | {_spread(wall_ms)} | {_spread(cpu_ms)} "
                f"| {_ratio(cpu_ms, [_ms(r, 'cpu_s', n) for r in loop])} |"
            )
    lines += [
        "",
        "Fixed costs per run (not per trial), median over every run of a library:",
        "",
        "| library | import (s) | set-up: store + study (s), memory | set-up (s), SQLite file |",
        "|---|---:|---:|---:|",
    ]
    for method in METHODS:
        mine = [r for (_, _, m), rs in runs.items() if m == method for r in rs]
        setups = {
            s: [r["setup_s"] for (_, st, m), rs in runs.items() if m == method and st == s
                for r in rs]
            for s in STORAGES
        }  # fmt: skip
        lines.append(
            f"| {method} | {statistics.median(r['import_s'] for r in mine):.2f} | "
            + " | ".join(f"{statistics.median(v):.3f}" if v else "-" for v in setups.values())
            + " |"
        )
    lines += [
        "",
        "Best value found (sanity; the optimum is 0), median over rounds:",
        "",
        "| algorithm | storage | hpsearch | Optuna |",
        "|---|---|---:|---:|",
    ]
    for algorithm, storage in cells:
        best = [
            statistics.median(r["best"] for r in runs[(algorithm, storage, m)]) for m in METHODS
        ]
        lines.append(f"| {algorithm} | {storage} | {best[0]:.3g} | {best[1]:.3g} |")
    load = os.getloadavg()
    lines += [
        "",
        f"Machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} (1/5/15 min) at the end; {seconds / 60:.1f} minutes in all; Python "
        f"{sys.version.split()[0]}, {_versions()}.",
        "",
    ]
    return "\n".join(lines)


def _ms(run: dict[str, Any], key: str, n: int) -> float:
    return float(run[key]) / n * 1e3


def _spread(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3g}" if values else "-"
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{statistics.median(values):.3g} [{q1:.3g}-{q3:.3g}]"


def _ratio(ours: list[float], theirs: list[float]) -> str:
    ratios = [a / b for a, b in zip(ours, theirs, strict=True) if b > 0]
    if not ratios:
        return "-"
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def _versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{p} {version(p)}" for p in ("optuna", "sqlalchemy", "numpy"))


if __name__ == "__main__":
    raise SystemExit(main())
