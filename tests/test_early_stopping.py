"""The median stopping rule, as Vizier and Vertex AI define it."""

from __future__ import annotations

from hpsearch.early_stopping import median_rule
from hpsearch.space import Goal

COMPLETED = [
    [(1, 0.5), (2, 0.6), (3, 0.7)],  # running averages at step 2: 0.55
    [(1, 0.6), (2, 0.7), (3, 0.8)],  # 0.65
    [(1, 0.7), (2, 0.8), (3, 0.9)],  # 0.75  -> median 0.65
]


def test_a_trial_below_the_median_of_running_averages_stops() -> None:
    decision = median_rule([(1, 0.3), (2, 0.4)], COMPLETED, Goal.MAXIMIZE, min_trials=3)
    assert decision.stop
    assert "median 0.65" in decision.reason and "by step 2" in decision.reason


def test_a_trial_whose_best_beats_the_median_goes_on() -> None:
    # its last value is poor but its best so far (0.66) beats the median (0.65)
    decision = median_rule([(1, 0.66), (2, 0.1)], COMPLETED, Goal.MAXIMIZE, min_trials=3)
    assert not decision.stop


def test_minimize_flips_the_comparison() -> None:
    losses = [[(s, -v) for s, v in curve] for curve in COMPLETED]  # median at step 2: -0.65
    assert median_rule([(1, -0.3), (2, -0.4)], losses, Goal.MINIMIZE, min_trials=3).stop
    assert not median_rule([(1, -0.9)], losses, Goal.MINIMIZE, min_trials=3).stop


def test_no_decision_before_enough_completed_trials_or_steps() -> None:
    running = [(1, 0.0), (2, 0.0)]
    assert not median_rule(running, COMPLETED, Goal.MAXIMIZE, min_trials=4).stop
    assert not median_rule(running, COMPLETED, Goal.MAXIMIZE, min_trials=3, min_steps=3).stop
    assert not median_rule([], COMPLETED, Goal.MAXIMIZE, min_trials=1).stop
    # completed trials that reported nothing up to this step do not count
    late = [[(5, 1.0)], [(6, 1.0)], [(7, 1.0)]]
    assert not median_rule([(1, 0.0)], late, Goal.MAXIMIZE, min_trials=1).stop
