"""Multi-objective search: hypervolume against trials, hpsearch vs Optuna's samplers.

Runs side by side, on the same problems, seeds and budget, with 1 or 8 trials in flight
(``--in-flight 8``: 8 trials are asked before any of their results come back, synchronous
batches, as in ``search_quality.py``):

* ``hpsearch``     -- hpsearch.search.suggest, algorithm ``bayesian``: a GP on a ParEGO
  scalarisation with fresh random weights per suggestion, times the probability of
  feasibility (constrained problems);
* ``optuna-nsga2`` -- Optuna's NSGAIISampler (default population 50);
* ``optuna-tpe``   -- Optuna's TPESampler (multi-objective; constant liar with 8 in flight);
* ``optuna-gp``    -- Optuna's GPSampler in multi-objective mode (needs torch).

Constraints reach Optuna the way Optuna 5 takes them (``trial.set_constraint``, <= 0 is
feasible); hpsearch gets them declared in the study (``constraints:``) and the metrics.

Problems (:func:`problems`), minimised:

* ``zdt1-6d``   -- ZDT1 in 6 variables (2 objectives, a convex front);
* ``dtlz2-5d``  -- DTLZ2 in 5 variables (3 objectives, a spherical front);
* ``constr-2d`` -- Deb's CONSTR (2 objectives, 2 constraints that cut off part of the
  unconstrained front); the hypervolume counts feasible trials only.

The hypervolume of the (feasible) front is computed against a fixed reference point per
problem (Optuna's ``compute_hypervolume``) after every trial.  Reported (``--report``):
per problem and in-flight count, the median hypervolume and its interquartile range over
seeds at budgets 20, 40 and the full budget, with the best median in bold.  Each run is
appended to ``--results`` as one JSON line and skipped when the command runs again.

Usage::

    nice -n 19 python benchmarks/multi_objective.py --seeds 10 --in-flight 1 8
    python benchmarks/multi_objective.py --report-only
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpsearch.search import Observation, suggest  # noqa: E402
from hpsearch.space import Params, StudyConfig  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "multi_objective.jsonl"
REPORT = REPO / "benchmarks" / "results" / "multi_objective.md"
METHODS = ("hpsearch", "optuna-nsga2", "optuna-tpe", "optuna-gp")
logger = logging.getLogger("multi_objective")


@dataclass(frozen=True)
class Problem:
    name: str
    dims: int
    bounds: tuple[tuple[float, float], ...]
    #: params -> (objectives, constraint values with <= 0 feasible)
    f: Callable[[np.ndarray], tuple[list[float], list[float]]]
    reference: tuple[float, ...]
    objectives: int

    def config(self, seed: int) -> StudyConfig:
        metrics = ", ".join(f"{{name: f{i}, goal: minimize}}" for i in range(self.objectives))
        params = ", ".join(
            f"x{i}: {{type: double, min: {lo}, max: {hi}}}"
            for i, (lo, hi) in enumerate(self.bounds)
        )
        constraints = self.constraint_names()
        text = f"name: mo-{self.name}\nseed: {seed}\nmetrics: [{metrics}]\n"
        if constraints:
            text += "constraints: [" + ", ".join(f"'{c} <= 0'" for c in constraints) + "]\n"
        text += f"parameters: {{{params}}}\n"
        from hpsearch.space import loads_study

        return loads_study(text)

    def constraint_names(self) -> list[str]:
        _, cons = self.f(np.array([(lo + hi) / 2 for lo, hi in self.bounds]))
        return [f"c{i}" for i in range(len(cons))]


def _zdt1(x: np.ndarray) -> tuple[list[float], list[float]]:
    g = 1.0 + 9.0 * float(np.mean(x[1:]))
    return [float(x[0]), g * (1.0 - math.sqrt(x[0] / g))], []


def _dtlz2(x: np.ndarray) -> tuple[list[float], list[float]]:
    g = float(np.sum((x[2:] - 0.5) ** 2))
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return [
        (1 + g) * math.cos(a) * math.cos(b),
        (1 + g) * math.cos(a) * math.sin(b),
        (1 + g) * math.sin(a),
    ], []


def _constr(x: np.ndarray) -> tuple[list[float], list[float]]:
    x1, x2 = float(x[0]), float(x[1])
    return [x1, (1.0 + x2) / x1], [6.0 - (x2 + 9.0 * x1), 1.0 - (-x2 + 9.0 * x1)]


def problems() -> dict[str, Problem]:
    suite = [
        Problem("zdt1-6d", 6, ((0.0, 1.0),) * 6, _zdt1, (1.1, 5.0), 2),
        Problem("dtlz2-5d", 5, ((0.0, 1.0),) * 5, _dtlz2, (1.5, 1.5, 1.5), 3),
        Problem("constr-2d", 2, ((0.1, 1.0), (0.0, 5.0)), _constr, (1.1, 10.0), 2),
    ]
    return {p.name: p for p in suite}


def _vector(params: Params, problem: Problem) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(problem.dims)])


def hypervolume_curve(
    problem: Problem, evaluations: list[tuple[list[float], bool]]
) -> list[float]:
    """The hypervolume of the feasible front after each evaluation."""
    from optuna._hypervolume import compute_hypervolume

    reference = np.array(problem.reference)
    points: list[list[float]] = []
    curve = []
    hv = 0.0
    for values, feasible in evaluations:
        if feasible and np.all(np.array(values) < reference):
            points.append(values)
            array = np.array(points)
            keep = [
                i
                for i in range(len(array))
                if not np.any(np.all(array <= array[i], axis=1) & np.any(array < array[i], axis=1))
            ]
            points = [points[i] for i in keep]
            hv = float(compute_hypervolume(np.array(points), reference))
        curve.append(hv)
    return curve


def run_hpsearch(
    problem: Problem, seed: int, budget: int, batch: int
) -> list[tuple[list[float], bool]]:
    config = problem.config(seed)
    rng = np.random.default_rng(seed)
    history: list[Observation] = []
    out = []
    while len(history) < budget:
        asked = suggest(config, history, [], min(batch, budget - len(history)), rng)
        if not asked:
            break
        for params in asked:
            values, cons = problem.f(_vector(params, problem))
            feasible = all(c <= 0 for c in cons)
            metrics = {f"f{i}": v for i, v in enumerate(values)}
            metrics |= {f"c{i}": c for i, c in enumerate(cons)}
            history.append(Observation(params, values[0], metrics=metrics, feasible=feasible))
            out.append((values, feasible))
    return out


def run_optuna(
    problem: Problem, seed: int, budget: int, batch: int, kind: str
) -> list[tuple[list[float], bool]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler: Any
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "nsga2":
            sampler = optuna.samplers.NSGAIISampler(seed=seed)
        elif kind == "gp":
            sampler = optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=batch > 1)
    study = optuna.create_study(directions=["minimize"] * problem.objectives, sampler=sampler)
    out: list[tuple[list[float], bool]] = []
    while len(out) < budget:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            asked = [study.ask() for _ in range(min(batch, budget - len(out)))]
            xs = [
                np.array(
                    [t.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(problem.bounds)]
                )
                for t in asked
            ]
            for trial, x in zip(asked, xs, strict=True):
                values, cons = problem.f(x)
                for i, c in enumerate(cons):
                    trial.set_constraint(f"c{i}", c)
                study.tell(trial, values)
                out.append((values, all(c <= 0 for c in cons)))
    return out


def run(
    method: str, problem: Problem, seed: int, budget: int, batch: int
) -> list[tuple[list[float], bool]]:
    if method == "hpsearch":
        return run_hpsearch(problem, seed, budget, batch)
    return run_optuna(problem, seed, budget, batch, method.removeprefix("optuna-"))


# -- report ---------------------------------------------------------------------------------
def _q(values: list[float]) -> tuple[float, float, float]:
    a = np.array(values)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def report(records: list[dict[str, Any]], out: Path, budget: int) -> str:
    by: dict[tuple[str, int], dict[str, list[list[float]]]] = {}
    for r in records:
        by.setdefault((r["problem"], r["in_flight"]), {}).setdefault(r["method"], []).append(
            r["hypervolume"]
        )
    marks = sorted({20, 40, budget})
    lines = [
        "# Multi-objective search: hypervolume against trials",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        "`benchmarks/multi_objective.py` (see its docstring for the methods, problems and "
        "reference points). Median hypervolume of the feasible front over seeds "
        "(higher is better), interquartile range in brackets; the best median of each "
        "column in bold.",
        "",
    ]
    wins = 0
    cells = 0
    for (name, in_flight), methods in sorted(by.items()):
        seeds = min(len(v) for v in methods.values())
        lines += [
            f"## {name}, {in_flight} in flight ({seeds} seeds, budget {budget})",
            "",
            "| method | " + " | ".join(f"after {m} trials" for m in marks) + " |",
            "|---|" + "---|" * len(marks),
        ]
        medians = {
            method: [_q([c[m - 1] for c in curves[:seeds]]) for m in marks]
            for method, curves in methods.items()
        }
        best = [max(medians[m][i][0] for m in medians) for i in range(len(marks))]
        for method in METHODS:
            if method not in medians:
                continue
            row = []
            for i, (med, lo, hi) in enumerate(medians[method]):
                text = f"{med:.4g} [{lo:.4g} - {hi:.4g}]"
                row.append(f"**{text}**" if med == best[i] else text)
            lines.append(f"| {method} | " + " | ".join(row) + " |")
        if "hpsearch" in medians:
            cells += 1
            wins += medians["hpsearch"][-1][0] == best[-1]
        lines.append("")
    lines.insert(
        5,
        f"hpsearch has the best median hypervolume at the full budget in {wins} of {cells} "
        "cells.\n",
    )
    text = "\n".join(lines)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=60)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--problems", nargs="+", default=list(problems()))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("hpsearch").setLevel(logging.WARNING)
    records = []
    if args.results.exists():
        records = [json.loads(line) for line in args.results.read_text().splitlines() if line]
    done = {(r["problem"], r["in_flight"], r["method"], r["seed"]) for r in records}
    suite = problems()
    if not args.report_only:
        for seed in range(args.seeds):
            for name in args.problems:
                for in_flight in args.in_flight:
                    for method in args.methods:
                        key = (name, in_flight, method, seed)
                        if key in done:
                            continue
                        started = time.perf_counter()
                        evaluations = run(method, suite[name], seed, args.budget, in_flight)
                        curve = hypervolume_curve(suite[name], evaluations)
                        record = {
                            "problem": name,
                            "in_flight": in_flight,
                            "method": method,
                            "seed": seed,
                            "budget": args.budget,
                            "hypervolume": curve,
                            "feasible": sum(f for _, f in evaluations),
                            "seconds": round(time.perf_counter() - started, 2),
                        }
                        records.append(record)
                        with args.results.open("a") as handle:
                            handle.write(json.dumps(record) + "\n")
                        logger.info(
                            "%s in_flight=%d seed=%d %s: hypervolume %.4g (%.1f s)",
                            name, in_flight, seed, method, curve[-1], record["seconds"],
                        )  # fmt: skip
    records = [r for r in records if r["problem"] in args.problems and r["budget"] == args.budget]
    print(report(records, args.report, args.budget))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
