"""The median stopping rule, as Vizier and Vertex AI define it."""

from __future__ import annotations

import pytest

from hpsearch.early_stopping import Decision, median_rule
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
    go_on = Decision(False)
    assert median_rule(running, COMPLETED, Goal.MAXIMIZE, min_trials=4) == go_on
    assert median_rule(running, COMPLETED, Goal.MAXIMIZE, min_trials=3, min_steps=3) == go_on
    assert median_rule([], COMPLETED, Goal.MAXIMIZE, min_trials=1) == go_on
    # completed trials that reported nothing up to this step do not count
    late = [[(5, 1.0)], [(6, 1.0)], [(7, 1.0)]]
    assert median_rule([(1, 0.0)], late, Goal.MAXIMIZE, min_trials=1) == go_on


def test_by_default_five_completed_trials_are_needed() -> None:
    five = [[(1, 0.5)]] * 5
    assert not median_rule([(1, 0.1)], five[:4], Goal.MAXIMIZE).stop
    assert median_rule([(1, 0.1)], five, Goal.MAXIMIZE).stop


# Skewed: the running averages at step 1 are 0.25, 0.5 and 4.0, so the median (0.5) is far
# from the mean (1.58); every value is exact in binary, so "equal to the median" is exact.
SKEWED = [[(1, 0.25), (2, 9.0)], [(1, 0.5)], [(1, 4.0), (2, -9.0)]]


def _signed(curve: list[tuple[int, float]], goal: Goal) -> list[tuple[int, float]]:
    """``curve`` as a maximized metric, or as its negation for a minimized one."""
    return [(s, goal.sign * v) for s, v in curve]


@pytest.mark.parametrize("goal", [Goal.MAXIMIZE, Goal.MINIMIZE])
@pytest.mark.parametrize(
    ("best", "stops"),
    [
        (0.375, True),  # worse than the median
        (0.5, False),  # equal to the median: only a strictly worse trial stops
        (0.75, False),  # better than the median, worse than the mean (1.58)
    ],
)
def test_the_rule_compares_with_the_median_not_the_mean(
    goal: Goal, best: float, stops: bool
) -> None:
    completed = [_signed(curve, goal) for curve in SKEWED]
    running = _signed([(1, best)], goal)
    decision = median_rule(running, completed, goal, min_trials=3)
    assert decision.stop is stops, decision
    if stops:
        assert f"median {goal.sign * 0.5:.6g} of 3 completed" in decision.reason


@pytest.mark.parametrize("goal", [Goal.MAXIMIZE, Goal.MINIMIZE])
def test_completed_curves_count_by_their_running_average_up_to_the_step(goal: Goal) -> None:
    # At step 2 the averages are 0.5, 0.5 and 0.5 (their values after step 2 do not count):
    # a best of 0.4 is behind, 0.6 ahead.  Last values (0, 0, 0) or best values (1, 1, 1)
    # instead of averages would decide the other way round.
    curves = [[(1, 1.0), (2, 0.0), (3, 100.0)], [(2, 0.0), (1, 1.0)], [(1, 1.0), (2, 0.0)]]
    completed = [_signed(curve, goal) for curve in curves]
    assert median_rule(_signed([(1, 0.1), (2, 0.4)], goal), completed, goal, min_trials=3).stop
    assert not median_rule(_signed([(1, 0.1), (2, 0.6)], goal), completed, goal, min_trials=3).stop


def test_the_trial_is_judged_by_its_best_value_so_far() -> None:
    # median of the averages at step 3: 0.5.  Best 0.6 (at step 1) goes on although its last
    # value (0.1) and its average (0.3) are behind.
    completed = [[(3, 0.5)], [(3, 0.5)], [(3, 0.5)]]
    running = [(1, 0.6), (2, 0.2), (3, 0.1)]
    assert not median_rule(running, completed, Goal.MAXIMIZE, min_trials=3).stop
    assert not median_rule(running, completed, Goal.MINIMIZE, min_trials=3).stop
    assert median_rule([(3, 0.6)], completed, Goal.MINIMIZE, min_trials=3).stop


def test_the_thresholds_are_inclusive() -> None:
    """min_trials completed trials and a trial at min_steps are enough to decide."""
    behind = [(1, 0.3), (2, 0.4)]
    assert median_rule(behind, COMPLETED, Goal.MAXIMIZE, min_trials=3, min_steps=2).stop
    assert not median_rule(behind, COMPLETED, Goal.MAXIMIZE, min_trials=3, min_steps=3).stop
    assert not median_rule(behind, COMPLETED[:2], Goal.MAXIMIZE, min_trials=3).stop
    assert median_rule(behind, COMPLETED[:1], Goal.MAXIMIZE, min_trials=0).stop
