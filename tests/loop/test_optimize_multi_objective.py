"""hpsearch.optimize on a study with two metrics and a constraint: an objective that raises
TrialInfeasible, one that breaks the constraint, and the front in the result and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import hpsearch
from hpsearch.cli import main
from hpsearch.space import loads_study
from hpsearch.store import Store

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


def test_export_asks_which_front_member_or_takes_a_rule(
    storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Four trials, three on the front: ``export best`` without a choice lists the front
    and exports nothing; ``--rule best:<metric>`` and ``--rule knee`` pick by the rule."""
    output = tmp_path / "out"
    serving = tmp_path / "serving"
    results = {  # x -> (f1, f2): 0.0, 0.5 and 1.0 on the front, 0.9 dominated by 1.0
        0.0: (0.0, 1.0),
        0.5: (0.3, 0.3),
        1.0: (1.0, 0.0),
        0.9: (1.2, 0.1),
    }
    store = Store(storage_url)
    store.create_study(loads_study(STUDY.replace("zdt-loop", "export-mo")))
    for x, (f1, f2) in results.items():
        trial = store.create_trial("export-mo", {"x": x, "y": 0.0}, worker_id="w")
        store.complete_trial(
            "export-mo", trial.number, trial.attempt, f1, {"f1": f1, "f2": f2, "memory_gb": 1}
        )
        version = output / "export-mo" / str(trial.number) / "model" / "1"
        version.mkdir(parents=True)
        (version / "saved_model.pb").write_text(f"trial {trial.number}")
    store.close()
    base = ["export", "best", "export-mo", "--to", str(serving), "--from", str(output)]
    base += ["--storage", storage_url]

    assert main(base) != 0
    err = capsys.readouterr().err
    assert "3 trials on its Pareto front" in err and "--rule knee" in err
    assert not serving.exists() or not any(serving.iterdir())

    expected = {"best:f1": 0, "best:f2": 2, "knee": 1}
    for version, (rule, number) in enumerate(expected.items(), start=1):
        assert main([*base, "--rule", rule]) == 0, capsys.readouterr().err
        assert f"exported trial {number} " in capsys.readouterr().out
        exported = serving / str(version)
        assert (exported / "saved_model.pb").read_text() == f"trial {number}"
        assert json.loads((exported / "hpsearch.json").read_text())["trial"] == number

    assert main([*base, "--rule", "best:latency"]) != 0
    assert "not a metric of the study" in capsys.readouterr().err
