"""hpsearch.optimize on a study with two metrics and a constraint: an objective that raises
TrialInfeasible, one that breaks the constraint, and the front in the result and the CLI."""

from __future__ import annotations

import json
import math

import pytest

import hpsearch
from hpsearch.cli import main
from hpsearch.space import loads_study

STUDY = """
name: zdt-loop
seed: 5
metrics: [{name: f1, goal: minimize}, {name: f2, goal: minimize}]
constraints: ["memory_gb <= 8"]
parameters: {x: {type: double, min: 0, max: 1}, y: {type: double, min: 0, max: 1}}
"""


def objective(trial: hpsearch.RunningTrial) -> dict[str, float]:
    x, y = trial.params["x"], trial.params["y"]
    if y > 0.8:
        raise hpsearch.TrialInfeasible("out of memory", metrics={"memory_gb": 80.0})
    g = 1.0 + 9.0 * y
    return {"f1": x, "f2": g * (1.0 - math.sqrt(x / g)), "memory_gb": 20.0 * x}


def test_infeasible_trials_and_the_front(
    storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = hpsearch.optimize(objective, loads_study(STUDY), n_trials=24, storage=storage_url)
    trials = {t.number: t for t in result.trials}
    assert len(trials) == 24
    raised = [t for t in trials.values() if t.params["y"] > 0.8]
    broken = [t for t in trials.values() if t.params["y"] <= 0.8 and 20 * t.params["x"] > 8]
    assert raised and broken  # the Sobol design covers both kinds
    for t in raised:
        assert t.infeasible_reason == "out of memory; memory_gb = 80 breaks memory_gb <= 8"
        assert t.metrics == {"memory_gb": 80.0}
    for t in broken:
        assert t.infeasible_reason is not None and "breaks memory_gb <= 8" in t.infeasible_reason
    feasible = [t for t in trials.values() if t.feasible]
    assert len(feasible) == 24 - len(raised) - len(broken)

    def dominated(t: hpsearch.RunningTrial) -> bool:
        return any(
            o.metrics["f1"] <= t.metrics["f1"]
            and o.metrics["f2"] <= t.metrics["f2"]
            and o.metrics != t.metrics
            for o in feasible
        )

    front = {t.number for t in feasible if not dominated(t)}
    assert {t.number for t in result.best_trials} == front
    assert result.best_trial is not None and result.best_trial.number == min(
        front, key=lambda n: trials[n].metrics["f1"]
    )

    assert main(["best", "zdt-loop", "--format", "json", "--storage", storage_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["number"] for r in rows} == front
    assert all(r["infeasible"] is None for r in rows)
