"""trials/keras_tuner_mnist.py: a stock Keras Tuner search, alone and driven by env vars."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None
        or importlib.util.find_spec("keras_tuner") is None,
        reason="needs TensorFlow and Keras Tuner (the tf extra)",
    ),
]

SCRIPT = Path(__file__).resolve().parents[2] / "trials" / "keras_tuner_mnist.py"
HYPERPARAMETERS = {"learning_rate", "n_hidden", "n_neurons", "optimizer"}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any distributed-tuning variables, plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KERASTUNER_", "CLOUD_ML_", "AIP_", "HPSEARCH_"))
    }
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def finished_trials(project_dir: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(project_dir.glob("trial_*/trial.json"))]


def check_trial(trial: dict[str, object]) -> None:
    """A completed trial with the hypermodel's parameters; momentum only under SGD."""
    assert trial["status"] == "COMPLETED"
    values = trial["hyperparameters"]["values"]  # type: ignore[index]
    assert set(values) - {"momentum"} == HYPERPARAMETERS
    assert ("momentum" in values) == (values["optimizer"] == "sgd")
    assert 1e-4 <= values["learning_rate"] <= 1e-1
    assert 0 <= values["n_hidden"] <= 10 and 1 <= values["n_neurons"] <= 300
    accuracy = trial["metrics"]["metrics"]["val_accuracy"]["observations"]  # type: ignore[index]
    assert 0.0 <= accuracy[0]["value"][0] <= 1.0


def test_standalone_search_runs_the_requested_trials(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--dataset=digits",
            "--tuner=bayesian",
            "--max_trials=2",
            "--epochs=1",
            f"--directory={tmp_path}",
            "--project_name=digits_mlp",
        ],
        env=clean_env(HPSEARCH_CPU_REPLICAS="2"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replicas=2" in proc.stderr
    assert "best hyperparameters=" in proc.stderr
    trials = finished_trials(tmp_path / "digits_mlp")
    assert len(trials) == 2
    for trial in trials:
        check_trial(trial)


def test_worker_runs_unchanged_against_the_hpsearch_chief(tmp_path: Path) -> None:
    # The worker gets nothing but Keras Tuner's own KERASTUNER_* variables. The study
    # file's conditional momentum (when: {optimizer: [sgd]}) meets the hypermodel's
    # hp.conditional_scope over Keras Tuner's gRPC protocol.
    from hpsearch.chief import Chief
    from hpsearch.records import TrialState

    example = Path(__file__).resolve().parents[2] / "examples" / "mnist_mlp.yaml"
    study = example.read_text()
    study = study.replace("name: mnist-mlp", "name: kt-digits")
    study = study.replace(
        "budget: {max_trials: 100, parallel_trials: 20, max_failed_trials: 10}",
        "budget: {max_trials: 2, parallel_trials: 1, max_failed_trials: 2}",
    )
    study = study.replace("algorithm: bayesian", "algorithm: random")
    assert "max_trials: 2" in study and "kt-digits" in study
    study_file = tmp_path / "study.yaml"
    study_file.write_text(study)

    chief = Chief(
        f"sqlite:///{tmp_path / 'chief.db'}",
        study=str(study_file),
        host="127.0.0.1",
        port=0,
        hold_seconds=1.0,
    )
    with chief:
        host, port = chief.address.rsplit(":", 1)
        worker = subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                "--dataset=digits",
                "--epochs=1",
                f"--directory={tmp_path / 'worker'}",
            ],
            env=clean_env(
                KERASTUNER_TUNER_ID="tuner0",
                KERASTUNER_ORACLE_IP=host,
                KERASTUNER_ORACLE_PORT=port,
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert chief.store is not None
        trials = chief.store.list_trials("kt-digits")
    assert worker.returncode == 0, worker.stderr[-3000:]
    assert f"tuner_id=tuner0 oracle={host}:{port}" in worker.stderr
    assert "best hyperparameters=" in worker.stderr
    assert [t.state for t in trials] == [TrialState.COMPLETED, TrialState.COMPLETED]
    for trial in trials:
        assert trial.value is not None and 0.0 <= trial.value <= 1.0
        assert ("momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
        assert 1e-4 <= float(trial.params["learning_rate"]) <= 1e-1
