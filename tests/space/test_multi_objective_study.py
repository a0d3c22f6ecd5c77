"""Study files with several metrics and constraints, and the Pareto front rule."""

from __future__ import annotations

import itertools

import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import Constraint, StudyConfig, loads_study
from hpsearch.space.pareto import pareto_front

MO = """
name: mo
metrics: [{name: val_accuracy, goal: maximize}, {name: latency_ms, goal: min}]
constraints: ["model_mb <= 50", {metric: throughput, min: 100}]
parameters: {x: {type: double, min: 0, max: 1}}
"""


def test_metrics_and_constraints_load_and_round_trip() -> None:
    config = loads_study(MO)
    assert config.multi_objective
    assert [(m.name, m.goal.value) for m in config.metrics] == [
        ("val_accuracy", "maximize"),
        ("latency_ms", "minimize"),
    ]
    assert config.metric == config.metrics[0]
    assert config.constraints == (
        Constraint("model_mb", "<=", 50.0),
        Constraint("throughput", ">=", 100.0),
    )
    assert StudyConfig.from_dict(config.to_dict()) == config
    assert "metrics" in config.to_dict() and "metric" not in config.to_dict()
    one = loads_study("name: one\nmetric: {name: loss, goal: minimize}\n")
    assert not one.multi_objective and one.metrics == (one.metric,)
    assert "metric" in one.to_dict() and "metrics" not in one.to_dict()


def test_violations_name_each_broken_or_missing_constraint() -> None:
    config = loads_study(MO)
    assert config.violations({"model_mb": 50.0, "throughput": 100.0}) == []  # bounds kept
    assert config.violations({"model_mb": 50.5, "throughput": 99.0}) == [
        "model_mb = 50.5 breaks model_mb <= 50",
        "throughput = 99 breaks throughput >= 100",
    ]
    assert config.violations({"model_mb": 1.0}) == [
        "throughput was not reported (constraint throughput >= 100)"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics: []", "non-empty list"),
        ("metrics: [{name: a}, {name: a}]", "twice"),
        ("metric: a\nmetrics: [{name: b}, {name: c}]", "both metric and metrics"),
        ("metrics: [{name: a, goal: up}, {name: b}]", "maximize or minimize"),
        ("metric: a\nconstraints: ['a <= 2']", "is on an objective"),
        ("metric: a\nconstraints: ['b < 2']", "'metric <= bound'"),
        ("metric: a\nconstraints: ['b <= lots']", "must be a number"),
        ("metric: a\nconstraints: [{metric: b, max: 1, min: 0}]", "exactly one of max or min"),
        ("metric: a\nconstraints: [{metric: b, below: 1}]", "exactly one of max or min"),
        ("metrics: [{name: a}, {name: b}]\nalgorithm: cmaes", "optimises one metric"),
        ("metrics: [{name: a}, {name: b}]\nalgorithm: hyperband", "optimises one metric"),
        ("metric: a\nconstraints: ['b <= 1']\nalgorithm: cmaes", "cannot learn constraints"),
        ("metrics: [{name: a}, {name: b}]\nearly_stopping: median", "set early_stopping: none"),
    ],
)
def test_bad_declarations_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        loads_study("name: bad\n" + text)


def _front(config: StudyConfig, points: dict[int, dict[str, float]], feasible=lambda n: True):
    return [n for n in pareto_front(config, list(points), points.__getitem__, feasible)]


def test_the_front_under_mixed_goals_is_the_brute_force_front() -> None:
    """Every point of a 5 x 5 x 3 grid of (accuracy, latency) values, some duplicated: the
    front is exactly the set no other point beats, computed here by definition."""
    config = loads_study(MO)
    points = {}
    for n, (acc, lat, _) in enumerate(
        itertools.product([0.5, 0.6, 0.7, 0.8, 0.9], [10, 20, 30, 40, 50], range(3))
    ):
        # a diagonal band keeps a non-trivial front: accuracy costs latency
        points[n] = {"val_accuracy": acc, "latency_ms": float(lat) + 100 * acc + (n % 7)}

    def beats(a: dict[str, float], b: dict[str, float]) -> bool:
        no_worse = a["val_accuracy"] >= b["val_accuracy"] and a["latency_ms"] <= b["latency_ms"]
        return no_worse and (a != b)

    expected = {n for n, p in points.items() if not any(beats(q, p) for q in points.values())}
    front = _front(config, points)
    assert set(front) == expected and 2 < len(expected) < len(points)
    accuracies = [points[n]["val_accuracy"] for n in front]
    assert accuracies == sorted(accuracies, reverse=True)  # best first by the first metric


def test_infeasible_and_incomplete_trials_are_never_on_the_front() -> None:
    config = loads_study(MO)
    points = {
        0: {"val_accuracy": 0.9, "latency_ms": 10.0},
        1: {"val_accuracy": 0.99, "latency_ms": 1.0},  # dominates 0, but infeasible
        2: {"val_accuracy": 0.999},  # no latency: not on the front
        3: {"val_accuracy": 0.8, "latency_ms": 5.0},
    }
    assert _front(config, points, feasible=lambda n: n != 1) == [0, 3]
    assert _front(config, points) == [1]
