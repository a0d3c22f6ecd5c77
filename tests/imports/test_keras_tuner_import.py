"""Keras Tuner projects written by the real Keras Tuner (a tiny search on random data, in a
subprocess: it imports TensorFlow) imported through ``hpsearch import keras-tuner``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hpsearch.cli import main
from hpsearch.errors import InvalidArgumentError
from hpsearch.importers.keras_tuner import import_keras_tuner
from hpsearch.records import TrialState
from hpsearch.store import Store

pytestmark = [pytest.mark.tf, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("kt_project.py")


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Two projects (RandomSearch, Hyperband) and what Keras Tuner holds for their trials."""
    pytest.importorskip("keras_tuner", reason="needs keras-tuner (the tf extra)")
    out = tmp_path_factory.mktemp("keras-tuner")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads(done.stdout.strip().splitlines()[-1])


def test_a_random_search_project_round_trips(
    projects: tuple[Path, dict[str, Any]], sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out, held = projects
    argv = ["import", "keras-tuner", str(out / "random"), "--metric", "val_accuracy"]
    assert main([*argv, "--storage", sqlite_url]) == 0
    assert "into study 'random' (created)" in capsys.readouterr().out
    with Store(sqlite_url) as store:
        study = store.get_study("random")
        assert (study.config.metric.name, study.config.metric.goal.value) == (
            "val_accuracy",
            "maximize",
        )
        space = study.config.space
        assert {p.name: p.kind for p in space} == {
            "units": "integer",
            "activation": "categorical",
            "extra": "boolean",
            "batch": "discrete",
            "seed": "fixed",
            "lr": "double",
            "extra_units": "integer",
        }
        assert space["batch"].ordered is False and space["lr"].scale.value == "log"
        assert space["extra_units"].conditions[0].parent == "extra"
        trials = {t.tags["keras_tuner_trial_id"]: t for t in store.list_trials("random")}
        assert set(trials) == set(held["random"])
        for trial_id, expected in held["random"].items():
            trial = trials[trial_id]
            assert expected["status"] == "COMPLETED" and trial.state is TrialState.COMPLETED
            assert trial.params == expected["active"]  # inactive values dropped, as KT sees it
            assert trial.value == pytest.approx(expected["score"], rel=1e-12)
            assert trial.metrics["val_accuracy"] == trial.value
            assert trial.metrics["val_loss"] == pytest.approx(expected["val_loss"])
            assert trial.tags["imported_from"] == "keras_tuner"
            assert Path(trial.tags["trial_dir"]) == out / "random" / f"trial_{trial_id}"
            steps = store.list_measurements("random", trial.number)
            assert steps and all("val_accuracy" in m.metrics for m in steps)
    # Again: nothing new.
    assert main([*argv, "--storage", sqlite_url]) == 0
    assert "imported 0 trial(s)" in capsys.readouterr().out


def test_a_hyperband_project_drops_the_budget_values_and_infers_the_objective(
    projects: tuple[Path, dict[str, Any]], store: Store
) -> None:
    out, held = projects
    result = import_keras_tuner(store, out / "hyperband", into="hb")
    assert result.completed == len(held["hyperband"]) >= 2
    config = store.get_study("hb").config
    # The scores are val_loss at each trial's best step: found without --metric.
    assert (config.metric.name, config.metric.goal.value) == ("val_loss", "minimize")
    trials = {t.tags["keras_tuner_trial_id"]: t for t in store.list_trials("hb")}
    for trial_id, expected in held["hyperband"].items():
        trial = trials[trial_id]
        assert trial.params == {k: v for k, v in expected["active"].items()}
        assert not any(name.startswith("tuner/") for name in trial.params)
        budget = {k.removeprefix("tuner/"): v for k, v in expected["tuner"].items()}
        assert budget and trial.tags["keras_tuner_budget"] == budget
        assert trial.value == pytest.approx(expected["score"], rel=1e-12)
    # A wrong objective name, and a study that optimizes something else, are refused.
    with pytest.raises(InvalidArgumentError, match="no trial recorded a metric 'auc'"):
        import_keras_tuner(store, out / "hyperband", into="hb", metric="auc")
    with pytest.raises(InvalidArgumentError, match="optimizes val_loss"):
        import_keras_tuner(store, out / "random", into="hb", metric="val_accuracy")
    with pytest.raises(InvalidArgumentError, match=r"oracle\.json not found"):
        import_keras_tuner(store, out, into="nowhere")
