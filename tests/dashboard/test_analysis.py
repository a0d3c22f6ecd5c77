"""The dashboard's analysis on plain values: no store, no server."""

from __future__ import annotations

import random

import pytest

from hpsearch.dashboard.analysis import (
    MIN_TRIALS_FOR_IMPORTANCE,
    history_columns,
    importances,
    latest_attempt_curves,
    parameter_specs,
    variance_explained,
)
from hpsearch.space import Goal, loads_study

STUDY = """
name: s
metric: {name: loss, goal: minimize}
parameters:
  lr: {type: double, min: 0.0001, max: 0.1, scale: log}
  units: {type: integer, min: 1, max: 300}
  optimizer: {type: categorical, values: [sgd, adam]}
  batch: {type: discrete, values: [32, 64]}
  shuffle: {type: boolean}
"""


def test_history_keeps_the_best_so_far_of_completed_trials_only() -> None:
    rows = [(0, "COMPLETED", 3.0), (1, "STOPPED", 0.5), (2, "COMPLETED", 2.0), (3, "COMPLETED", 4)]
    completed, stopped = history_columns(rows, Goal.MINIMIZE)
    assert completed == {
        "number": [0, 2, 3],
        "value": [3.0, 2.0, 4.0],
        "best": [3.0, 2.0, 2.0],
        "infeasible": [False, False, False],
    }
    assert stopped == {"number": [1], "value": [0.5]}
    assert history_columns(rows, Goal.MAXIMIZE)[0]["best"] == [3.0, 3.0, 4.0]


def test_an_infeasible_trial_is_flagged_and_never_the_best_so_far() -> None:
    rows = [
        (0, "COMPLETED", 3.0, None),
        (1, "COMPLETED", 0.5, "memory_gb = 9 breaks memory_gb <= 8"),
        (2, "COMPLETED", 2.0, None),
    ]
    completed, _ = history_columns(rows, Goal.MINIMIZE)
    assert completed["infeasible"] == [False, True, False]
    assert completed["best"] == [3.0, 3.0, 2.0]


def test_parameter_specs_declared_first_then_those_found_in_trials() -> None:
    config = loads_study(STUDY)
    sample = [{"lr": 0.01, "dropout": 0.2}, {"act": "relu", "dropout": 0.3, "flag": True}]
    specs = parameter_specs(config, sample)
    assert [(s["name"], s["kind"], s["numeric"]) for s in specs] == [
        ("lr", "double", True),
        ("units", "integer", True),
        ("optimizer", "categorical", False),
        ("batch", "discrete", True),
        ("shuffle", "boolean", False),
        ("dropout", "double", True),
        ("act", "categorical", False),
        ("flag", "categorical", False),
    ]
    assert specs[0]["scale"] == "log"
    assert specs[2]["values"] == ["sgd", "adam"]


def test_importance_ranks_the_driving_parameter_and_sums_to_one() -> None:
    rng = random.Random(1)
    lr = [rng.uniform(0, 1) for _ in range(60)]
    noise = [rng.uniform(0, 1) for _ in range(60)]
    values = [x * 10 + rng.gauss(0, 0.1) for x in lr]
    specs = [{"name": "lr", "numeric": True}, {"name": "noise", "numeric": True}]
    shares = importances(specs, {"lr": lr, "noise": noise}, values)
    assert shares["lr"][1] is not None and shares["lr"][1] > 0.9
    assert sum(share for _, share in shares.values() if share is not None) == pytest.approx(1.0)
    assert shares["lr"][0] == variance_explained(lr, values, True)


def test_variance_explained_needs_enough_trials_and_variance() -> None:
    few = MIN_TRIALS_FOR_IMPORTANCE - 1
    assert variance_explained(list(range(few)), [float(i) for i in range(few)], True) is None
    assert variance_explained(list(range(20)), [1.0] * 20, True) is None
    # Missing values and non-finite objectives are left out before counting.
    column = [None] * 5 + list(range(9))
    assert variance_explained(column, [float(i) for i in range(14)], True) is None
    # One distinct value explains nothing; a distinct value per trial is no better.
    assert variance_explained(["a"] * 20, [float(i) for i in range(20)], False) == 0.0
    assert variance_explained([str(i) for i in range(20)], [0.0, 1.0] * 10, False) is None


def test_curves_show_each_trials_latest_attempt_that_reported_the_metric() -> None:
    rows = [
        (1, "COMPLETED", 2, 0, {"loss": 0.9, "acc": 0.1}),
        (1, "COMPLETED", 2, 1, {"loss": 0.8}),
        (1, "COMPLETED", 1, 0, {"loss": 5.0}),
        (2, "STOPPED", 1, 0, {"acc": 0.3}),
        (3, "RUNNING", 2, 0, {"acc": 0.4}),
        (3, "RUNNING", 1, 0, {"loss": 0.7}),
    ]
    curves, names = latest_attempt_curves(rows, "loss")
    assert names == ["acc", "loss"]
    assert curves == [
        {"number": 1, "state": "COMPLETED", "attempt": 2, "step": [0, 1], "value": [0.9, 0.8]},
        {"number": 3, "state": "RUNNING", "attempt": 1, "step": [0], "value": [0.7]},
    ]
