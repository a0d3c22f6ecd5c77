"""Search quality and latency of hpsearch's Bayesian optimisation against its peers.

Runs, side by side in one process and on the same problems, seeds and budget:

* ``hpsearch``  -- hpsearch.search.suggest, algorithm ``bayesian`` (the default);
* ``optuna-gp`` -- Optuna's GPSampler (needs torch: ``pip install torch``);
* ``optuna-tpe`` -- Optuna's TPESampler (constant liar when trials are in flight);
* ``kt-bo``     -- Keras Tuner's BayesianOptimizationOracle, driven directly
  (create_trial / update_trial / end_trial) in a temporary directory;
* ``random``    -- hpsearch's random search.

Problems: Branin (2-D), Hartmann-6 (6-D) and a mixed space (two log doubles, a log
integer, an integer and a categorical; see :func:`mixed`).  Every method gets ``--budget``
evaluations; with ``--batch 8`` it asks 8 trials before any of their results come back
(synchronous batches), with ``--batch 1`` it runs sequentially.  The table reports the
median over seeds of the simple regret (best value found minus the known optimum).

Latency: one suggestion at 500 completed trials over 10 doubles, single thread, for
hpsearch and Optuna's GPSampler (median and p90 over repeats).

Usage::

    python benchmarks/search_quality.py            # full: 5 seeds, budget 60, batch 1 and 8
    python benchmarks/search_quality.py --quick    # 2 seeds, budget 30, a smoke run

Results are printed and written to benchmarks/results/search_quality.md.
"""

from __future__ import annotations

import os

# Single-threaded BLAS/torch everywhere: fair timings on a shared machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from hpsearch.search import Observation, suggest  # noqa: E402
from hpsearch.space import (  # noqa: E402
    CategoricalParam,
    DoubleParam,
    Goal,
    IntegerParam,
    Metric,
    Params,
    Scale,
    Space,
    StudyConfig,
)

RESULTS = Path(__file__).resolve().parent / "results" / "search_quality.md"
METHODS = ("hpsearch", "optuna-gp", "optuna-tpe", "kt-bo", "random")


# -- problems ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    name: str
    space: Space
    f: Callable[[Params], float]
    optimum: float  # minimum value


def branin(p: Params) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
     [17, 8, 0.05, 10, 0.1, 14]]
)  # fmt: skip
_H_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)  # fmt: skip
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: Params) -> float:
    x = np.array([float(p[f"x{i}"]) for i in range(6)])
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


_OPT = {"adam": (-3.0, 0.0), "rmsprop": (-3.5, 0.05), "sgd": (-1.0, 0.15)}


def mixed(p: Params) -> float:
    """A training-loss-like surface: each optimiser has its own best learning rate.

    Minimum 0 at optimizer=adam, lr=1e-3, weight_decay=1e-4, units=256, layers=3.
    """
    log_lr_star, base = _OPT[str(p["optimizer"])]
    d_lr = math.log10(float(p["lr"])) - log_lr_star
    d_wd = math.log10(float(p["weight_decay"])) + 4.0
    d_units = math.log2(int(p["units"])) - 8.0
    d_layers = int(p["layers"]) - 3
    return (
        base
        + 0.5 * d_lr**2
        + 0.15 * d_wd**2
        + 0.1 * d_lr * d_wd
        + 0.08 * d_units**2
        + 0.05 * d_layers**2
        + 0.04 * d_layers * d_units
    )


def problems() -> dict[str, Problem]:
    return {
        "branin": Problem(
            "branin",
            Space((DoubleParam("x1", min=-5.0, max=10.0), DoubleParam("x2", min=0.0, max=15.0))),
            branin,
            0.397887357729739,
        ),
        "hartmann6": Problem(
            "hartmann6",
            Space(tuple(DoubleParam(f"x{i}", min=0.0, max=1.0) for i in range(6))),
            hartmann6,
            -3.322368011391339,
        ),
        "mixed": Problem(
            "mixed",
            Space(
                (
                    DoubleParam("lr", min=1e-5, max=1.0, scale=Scale.LOG),
                    DoubleParam("weight_decay", min=1e-7, max=1e-1, scale=Scale.LOG),
                    IntegerParam("units", min=8, max=1024, scale=Scale.LOG),
                    IntegerParam("layers", min=1, max=6),
                    CategoricalParam("optimizer", values=("sgd", "adam", "rmsprop")),
                )
            ),
            mixed,
            0.0,
        ),
    }


# -- methods: each runs one optimisation and returns the best value found -----------------------
def run_hpsearch(problem: Problem, seed: int, budget: int, batch: int, algorithm: str) -> float:
    config = StudyConfig(
        name=f"bench-{problem.name}",
        metric=Metric("loss", Goal.MINIMIZE),
        space=problem.space,
        algorithm=algorithm,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    history: list[Observation] = []
    while len(history) < budget:
        asked = suggest(config, history, [], min(batch, budget - len(history)), rng)
        history.extend(Observation(p, problem.f(p)) for p in asked)
    return min(o.value for o in history)


def _optuna_distributions(space: Space) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists: dict[str, Any] = {}
    for param in space:
        if isinstance(param, DoubleParam):
            dists[param.name] = FloatDistribution(
                param.min, param.max, log=param.scale is Scale.LOG
            )
        elif isinstance(param, IntegerParam):
            dists[param.name] = IntDistribution(param.min, param.max, log=param.scale is Scale.LOG)
        elif isinstance(param, CategoricalParam):
            dists[param.name] = CategoricalDistribution(list(param.values))
    return dists


def run_optuna(problem: Problem, seed: int, budget: int, batch: int, kind: str) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler: Any
    if kind == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=batch > 1)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    dists = _optuna_distributions(problem.space)
    done = 0
    while done < budget:
        trials = [study.ask(dists) for _ in range(min(batch, budget - done))]
        for trial in trials:
            study.tell(trial, problem.f(trial.params))
        done += len(trials)
    return float(study.best_value)


def run_keras_tuner(problem: Problem, seed: int, budget: int, batch: int) -> float:
    # Keras Tuner's oracle prints a table per trial: keep the benchmark's output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return _run_keras_tuner(problem, seed, budget, batch)


def _run_keras_tuner(problem: Problem, seed: int, budget: int, batch: int) -> float:
    import keras_tuner as kt

    hp = kt.HyperParameters()
    for param in problem.space:
        if isinstance(param, DoubleParam):
            sampling = "log" if param.scale is Scale.LOG else "linear"
            hp.Float(param.name, param.min, param.max, sampling=sampling)
        elif isinstance(param, IntegerParam):
            sampling = "log" if param.scale is Scale.LOG else "linear"
            hp.Int(param.name, param.min, param.max, sampling=sampling)
        elif isinstance(param, CategoricalParam):
            hp.Choice(param.name, list(param.values))
    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective("loss", "min"), max_trials=budget, hyperparameters=hp, seed=seed
    )
    directory = tempfile.mkdtemp(prefix="kt-bench-")
    try:
        oracle._set_project_dir(directory, f"{problem.name}-{seed}-{batch}")
        best = math.inf
        done = 0
        while done < budget:
            trials = []
            for worker in range(min(batch, budget - done)):
                trial = oracle.create_trial(f"tuner{worker}")
                if trial.status != "RUNNING":
                    break
                trials.append(trial)
            if not trials:
                break
            for trial in trials:
                value = problem.f(dict(trial.hyperparameters.values))
                best = min(best, value)
                oracle.update_trial(trial.trial_id, {"loss": value})
                trial.status = "COMPLETED"
                oracle.end_trial(trial)
            done += len(trials)
        return best
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _run_cell(
    name: str, batch: int, method: str, seeds: int, budget: int
) -> tuple[list[float], float]:
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    if method == "optuna-gp":
        import torch

        torch.set_num_threads(1)
    problem = problems()[name]
    started = time.perf_counter()
    values = []
    for seed in range(seeds):
        best = run_method(method, problem, seed, budget, batch)
        values.append(max(best - problem.optimum, 0.0))
    return values, time.perf_counter() - started


def run_method(method: str, problem: Problem, seed: int, budget: int, batch: int) -> float:
    if method == "hpsearch":
        return run_hpsearch(problem, seed, budget, batch, "bayesian")
    if method == "random":
        return run_hpsearch(problem, seed, budget, batch, "random")
    if method == "optuna-gp":
        return run_optuna(problem, seed, budget, batch, "gp")
    if method == "optuna-tpe":
        return run_optuna(problem, seed, budget, batch, "tpe")
    if method == "kt-bo":
        return run_keras_tuner(problem, seed, budget, batch)
    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


# -- latency ----------------------------------------------------------------------------------
def latency(repeats: int, optuna_repeats: int, methods: list[str]) -> dict[str, list[float]]:
    space = Space(tuple(DoubleParam(f"x{i}", min=0.0, max=1.0) for i in range(10)))
    rng = np.random.default_rng(0)
    history = []
    for _ in range(500):
        params = space.sample(rng)
        x = np.array([params[f"x{i}"] for i in range(10)], dtype=float)
        history.append(
            Observation(params, float(np.sum((x - 0.3) ** 2) + 0.1 * np.sin(9 * x).sum()))
        )
    config = StudyConfig(name="latency", metric=Metric("loss", Goal.MINIMIZE), space=space, seed=0)
    out: dict[str, list[float]] = {}
    times = []
    suggest(config, history, [], 1, np.random.default_rng(0))  # warm imports
    for r in range(repeats):
        started = time.perf_counter()
        suggest(config, history, [], 1, np.random.default_rng(r))
        times.append(time.perf_counter() - started)
    out["hpsearch"] = times
    if "optuna-gp" in methods:
        import optuna
        import torch

        torch.set_num_threads(1)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        dists = _optuna_distributions(space)
        times = []
        for r in range(optuna_repeats):
            study = optuna.create_study(
                direction="minimize",
                sampler=optuna.samplers.GPSampler(seed=r, deterministic_objective=True),
            )
            study.add_trials(
                [
                    optuna.trial.create_trial(params=o.params, distributions=dists, value=o.value)
                    for o in history
                ]
            )
            started = time.perf_counter()
            study.ask(dists)
            times.append(time.perf_counter() - started)
        out["optuna-gp"] = times
    return out


# -- driver -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, budget 30: a smoke run")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per cell (default 5)")
    parser.add_argument("--budget", type=int, default=None, help="evaluations (default 60)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="trials in flight")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--problems", nargs="+", default=list(problems()), choices=list(problems())
    )
    parser.add_argument("--latency-repeats", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=1, help="cells run in parallel processes")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--save-cells", type=Path, default=None, help="also write every cell's regrets (JSON)"
    )
    parser.add_argument(
        "--load-cells",
        type=Path,
        nargs="+",
        default=[],
        help="add cells saved by --save-cells of earlier runs (same seeds and budget) to the "
        "report; cells run now take precedence",
    )
    args = parser.parse_args(argv)
    seeds = args.seeds or (2 if args.quick else 5)
    budget = args.budget or (30 if args.quick else 60)
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    methods = list(args.methods)
    if "optuna-gp" in methods and importlib.util.find_spec("torch") is None:
        print("optuna-gp skipped: torch is not installed (pip install torch)", file=sys.stderr)
        methods.remove("optuna-gp")

    started = time.perf_counter()
    all_problems = problems()
    # regret[(problem, batch, method)] = list over seeds
    regret: dict[tuple[str, int, str], list[float]] = {}
    seconds: dict[tuple[str, int, str], float] = {}
    cells = [(n, b, m) for n in args.problems for b in args.batch for m in methods]
    # Cells run in worker processes (--jobs); each cell runs its seeds in order, so the
    # regrets do not depend on the number of jobs, only the seconds do.
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        futures = {
            pool.submit(_run_cell, all_problems[n].name, b, m, seeds, budget): (n, b, m)
            for n, b, m in cells
        }
        for future in concurrent.futures.as_completed(futures):
            name, batch, method = futures[future]
            values, spent = future.result()
            regret[(name, batch, method)] = values
            seconds[(name, batch, method)] = spent
            print(
                f"{name:10s} batch={batch} {method:11s} median_regret="
                f"{np.median(values):.4g} seconds={spent:.1f}",
                flush=True,
            )
    if args.save_cells:
        cells_json = [
            {"problem": n, "batch": b, "method": m, "regrets": regret[(n, b, m)],
             "seconds": seconds[(n, b, m)], "seeds": seeds, "budget": budget}
            for n, b, m in regret
        ]  # fmt: skip
        args.save_cells.write_text(json.dumps(cells_json, indent=1))
    names, batches = list(args.problems), list(args.batch)
    for path in args.load_cells:
        for cell in json.loads(path.read_text()):
            if cell["seeds"] != seeds or cell["budget"] != budget:
                raise SystemExit(f"{path}: cells of another seeds/budget setting")
            key = (cell["problem"], cell["batch"], cell["method"])
            if key not in regret:
                regret[key], seconds[key] = cell["regrets"], cell["seconds"]
    if args.load_cells:
        # Report every problem, batch and method that has all of its cells.
        names = [n for n in problems() if any(k[0] == n for k in regret)]
        batches = sorted({k[1] for k in regret})
        methods = [m for m in METHODS if all((n, b, m) in regret for n in names for b in batches)]
    lat = {} if args.no_latency else latency(args.latency_repeats, 5, methods)
    command = "python benchmarks/search_quality.py " + " ".join(argv or sys.argv[1:])
    report = _report(names, batches, methods, regret, seconds, lat, seeds, budget, command.strip())
    report += f"\nTotal wall time: {time.perf_counter() - started:.0f} s.\n"
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    return 0


def _report(
    names: list[str],
    batches: list[int],
    methods: list[str],
    regret: dict[tuple[str, int, str], list[float]],
    seconds: dict[tuple[str, int, str], float],
    lat: dict[str, list[float]],
    seeds: int,
    budget: int,
    command: str,
) -> str:
    lines = [
        "# Search quality: hpsearch vs Optuna GP / TPE, Keras Tuner BO, random",
        "",
        f"Command: `{command}`  ",
        f"Budget {budget} evaluations, median over {seeds} seeds (0..{seeds - 1}) of the simple "
        "regret (best value found minus the optimum; lower is better). *batch 8* = 8 trials "
        "asked before any of their results come back. Bold: best in the column.  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} logical CPUs shared with other jobs; BLAS single-threaded.",
        "",
    ]
    for name in names:
        lines.append(f"## {name}")
        lines.append("")
        header = "| method | " + " | ".join(f"batch {b}: median regret" for b in batches)
        header += " | " + " | ".join(f"batch {b}: seconds/run" for b in batches) + " |"
        lines.append(header)
        lines.append("|---" * (1 + 2 * len(batches)) + "|")
        best = {b: min(np.median(regret[(name, b, m)]) for m in methods) for b in batches}
        for method in methods:
            cells = []
            for b in batches:
                med = float(np.median(regret[(name, b, method)]))
                text = f"{med:.3g}"
                cells.append(f"**{text}**" if med == best[b] else text)
            cells += [f"{seconds[(name, b, method)] / seeds:.1f}" for b in batches]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    if lat:
        lines += [
            "## Latency: one suggestion at 500 completed trials, 10 doubles, one thread",
            "",
            "| sampler | median ms | p90 ms | repeats |",
            "|---|---|---|---|",
        ]
        for method, times in lat.items():
            ms = np.array(times) * 1000.0
            lines.append(
                f"| {method} | {np.median(ms):.1f} | {np.percentile(ms, 90):.1f} | {len(ms)} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
