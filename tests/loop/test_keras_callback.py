"""``hpsearch.keras.TrialCallback`` on real ``model.fit`` runs over scikit-learn's digits: in
an objective of ``hpsearch.optimize``, with a ``Client`` of a chief, and in a trial script run
by ``hpsearch worker`` (cloudml-hypertune, stopped by the worker)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import hpsearch
from hpsearch.errors import InvalidArgumentError
from hpsearch.loop import RunningTrial
from hpsearch.records import AttemptState, TrialState
from hpsearch.space import Budget, EarlyStopping, Goal, IntegerParam, Metric, Space, StudyConfig
from hpsearch.store import Store

pytestmark = [
    pytest.mark.tf,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None
        or importlib.util.find_spec("sklearn") is None,
        reason="needs TensorFlow and scikit-learn (the tf extra)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
#: Learns digits in an epoch or two; the other cannot learn at all, so the median rule stops it
#: at its first report.
GOOD_LR, BAD_LR = 1e-2, 1e-6


def _config(lease_seconds: float = 60.0) -> StudyConfig:
    return StudyConfig(
        name="digits",
        metric=Metric("val_accuracy", Goal.MAXIMIZE),
        space=Space((IntegerParam("units", 16, 32),)),
        budget=Budget(max_trials=2, parallel_trials=1),
        algorithm="random",
        early_stopping=EarlyStopping("median", min_trials=1, min_steps=1),
        lease_seconds=lease_seconds,
        seed=1,
    )


@pytest.fixture(scope="module")
def digits() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return x[:1400], y[:1400], x[1400:], y[1400:]


def _fit(digits: Any, lr: float, units: int, epochs: int, callbacks: list[Any]) -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((64,)),
            tf.keras.layers.Dense(units, activation="relu"),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=tf.keras.optimizers.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    x, y, x_val, y_val = digits
    return model.fit(
        x,
        y,
        validation_data=(x_val, y_val) if x_val is not None else None,
        epochs=epochs,
        batch_size=64,
        verbose=0,
        callbacks=callbacks,
    )


def test_in_an_objective_it_stops_fit_when_the_median_rule_says_so(
    storage_url: str, digits: Any
) -> None:
    from hpsearch.keras import TrialCallback

    fits: dict[int, tuple[Any, TrialCallback]] = {}

    def objective(trial: RunningTrial) -> None:
        callback = TrialCallback(trial)
        good = trial.number == 0
        history = _fit(
            digits, GOOD_LR if good else BAD_LR, trial.params["units"], 3 if good else 20,
            [callback],
        )  # fmt: skip
        fits[trial.number] = (history.history, callback)
        # None: the value is the best reported val_accuracy (measurement: best)

    result = hpsearch.optimize(objective, _config(), storage=storage_url)

    first, stopped = fits[0], fits[1]
    assert len(first[0]["loss"]) == 3 and first[1].stopped_epoch is None
    assert len(stopped[0]["loss"]) == 1 and stopped[1].stopped_epoch == 1
    assert "median stopping rule" in stopped[1].stop_reason
    with Store(storage_url) as store:
        trials = store.list_trials("digits")
        measurements = store.list_measurements("digits")
    assert [t.state for t in trials] == [TrialState.COMPLETED, TrialState.STOPPED]
    assert trials[0].value == pytest.approx(max(first[0]["val_accuracy"]))
    assert trials[1].value == pytest.approx(stopped[0]["val_accuracy"][0])
    assert [(m.trial_number, m.step) for m in measurements] == [(0, 1), (0, 2), (0, 3), (1, 1)]
    # Every finite Keras log is reported, under its own name.
    assert set(measurements[0].metrics) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert measurements[2].metrics["val_loss"] == pytest.approx(first[0]["val_loss"][2])
    assert result.best_trial is not None and result.best_trial.number == 0


def test_with_a_client_it_reports_renews_the_lease_and_stops_when_the_chief_says(
    chief: Any, client: Any, digits: Any
) -> None:
    import tensorflow as tf

    from hpsearch.keras import TrialCallback

    lease = 3.0
    client.create_study(_config(lease_seconds=lease))
    (first,) = client.ask("digits", worker_id="gpu-box")
    callback = TrialCallback(first, client=client, study="digits")
    # The first epoch outlasts two leases: only the callback's heartbeats keep the attempt.
    slow_start = tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: time.sleep(2.5 * lease) if epoch == 0 else None
    )
    history = _fit(digits, GOOD_LR, first.params["units"], 2, [slow_start, callback])
    done = client.tell("digits", first.number, first.attempt)  # the value: from the reports
    assert done.state is TrialState.COMPLETED and done.attempt == 1
    assert done.value == pytest.approx(max(history.history["val_accuracy"]))
    attempts = chief.store.list_attempts("digits", first.number)
    assert [a.state for a in attempts] == [AttemptState.COMPLETED]

    (second,) = client.ask("digits", worker_id="gpu-box")
    callback = TrialCallback(second, client=client, study="digits")
    history = _fit(digits, BAD_LR, second.params["units"], 20, [callback])
    assert len(history.history["loss"]) == 1 and callback.stopped_epoch == 1
    assert "median stopping rule" in callback.stop_reason
    stopped = client.tell("digits", second.number, second.attempt, state=TrialState.STOPPED)
    assert stopped.state is TrialState.STOPPED
    assert [m.step for m in chief.store.list_measurements("digits", second.number)] == [1]


def test_mistakes_say_what_to_do(sqlite_url: str, digits: Any) -> None:
    from hpsearch.keras import TrialCallback

    with pytest.raises(InvalidArgumentError, match=r"TrialCallback\(metric='val_accuracy'\)"):
        TrialCallback()
    with pytest.raises(InvalidArgumentError, match="pass client= and study= too"):
        TrialCallback(object())
    with pytest.raises(InvalidArgumentError, match="the study's name"):
        TrialCallback(object(), client=object())  # type: ignore[arg-type]

    def objective(trial: RunningTrial) -> None:
        if trial.number == 0:
            TrialCallback(trial, metric="accuracy")
        x, y, _, _ = digits
        _fit((x, y, None, None), GOOD_LR, 16, 1, [TrialCallback(trial)])  # no validation

    result = hpsearch.optimize(
        objective, _config(), storage=sqlite_url, catch=(InvalidArgumentError,)
    )
    messages = [t.failure_message or "" for t in result.trials]
    assert [t.state for t in result.trials] == [TrialState.FAILED] * 2
    assert "metric='accuracy' but the study's metric is 'val_accuracy'" in messages[0]
    assert "'val_accuracy' is not a Keras log of this fit" in messages[1]
    assert "pass validation_data" in messages[1]


TRIAL_SCRIPT = """\
import argparse, json, os, sys

import tensorflow as tf
from sklearn.datasets import load_digits

from hpsearch.keras import TrialCallback

trial = os.environ["CLOUD_ML_TRIAL_ID"]
parser = argparse.ArgumentParser()
parser.add_argument("--units", type=lambda text: int(float(text)))
units = parser.parse_known_args()[0].units
x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
tf.keras.utils.set_random_seed(0)
model = tf.keras.Sequential([
    tf.keras.Input((64,)),
    tf.keras.layers.Dense(units, activation="relu"),
    tf.keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=tf.keras.optimizers.Adam({good} if trial == "0" else {bad}),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x[:1400], y[:1400], validation_data=(x[1400:], y[1400:]), batch_size=64, verbose=0,
          epochs=3 if trial == "0" else {long}, callbacks=[TrialCallback(metric="val_accuracy")])
loaded = sorted(m for m in sys.modules if m.startswith(("hpsearch", "sqlalchemy")))
with open(os.path.join(os.environ["AIP_MODEL_DIR"], "modules.json"), "w") as f:
    json.dump(loaded, f)
"""


@pytest.mark.slow
def test_in_a_trial_script_it_writes_hypertune_and_the_worker_stops_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    from hpsearch.chief import Chief

    long = 200
    script = tmp_path / "trial.py"
    script.write_text(TRIAL_SCRIPT.format(good=GOOD_LR, bad=BAD_LR, long=long))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CLOUD_ML_", "AIP_", "KERASTUNER_", "HPSEARCH_"))
    }
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    output = tmp_path / "out"
    with Chief(sqlite_url, host="127.0.0.1", port=0, hold_seconds=1.0) as chief:
        assert chief.oracle is not None
        chief.oracle.create_study(_config())
        worker = subprocess.run(
            [sys.executable, "-m", "hpsearch", "--log-level", "WARNING", "worker",
             "--oracle", chief.address, "--study", "digits", "--worker-id", "w",
             "--gpus-per-trial", "0", "--output-dir", str(output), "--",
             sys.executable, str(script)],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert chief.store is not None
        trials = chief.store.list_trials("digits")
        steps = {
            t.number: [m.step for m in chief.store.list_measurements("digits", t.number)]
            for t in trials
        }
    assert [t.state for t in trials] == [TrialState.COMPLETED, TrialState.STOPPED]
    assert steps[0] == [1, 2, 3] and trials[0].value is not None
    # Stopped by the worker (SIGTERM) well before its last epoch.
    assert 1 <= len(steps[1]) < long and steps[1][0] == 1
    # The script stayed a plain Vertex trial: no hpsearch client, no store.
    loaded = json.loads((output / "digits" / "0" / "model" / "modules.json").read_text())
    assert "hpsearch.keras" in loaded
    assert not [
        m for m in loaded if m.startswith(("hpsearch.client", "hpsearch.store", "sqlalchemy"))
    ]
