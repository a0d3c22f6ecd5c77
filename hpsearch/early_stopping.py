"""Early stopping rules over intermediate measurements (pure functions).

The median stopping rule (Google Vizier's "median automated stopping", which Vertex AI
offers as ``median_automated_stopping_spec``): a running trial is stopped at step ``s``
when its best value up to ``s`` is strictly worse than the median, over the completed
trials, of each one's *running average* of the values it reported up to ``s``.

Nothing is stopped before ``min_trials`` completed trials have reported up to that step,
nor before the trial itself has reached ``min_steps``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from hpsearch.space import Goal

#: (step, value) pairs of one trial, in any order.
Curve = Sequence[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Decision:
    stop: bool
    reason: str = ""


def median_rule(
    running: Curve,
    completed: Sequence[Curve],
    goal: Goal,
    *,
    min_trials: int = 5,
    min_steps: int = 1,
) -> Decision:
    """Whether the trial with curve ``running`` should stop, given the completed curves."""
    if not running:
        return Decision(False)
    step = max(s for s, _ in running)
    if step < min_steps:
        return Decision(False)
    values = [v for s, v in running if s <= step]
    best = goal.best(values)
    averages = []
    for curve in completed:
        upto = [v for s, v in curve if s <= step]
        if upto:
            averages.append(sum(upto) / len(upto))
    if len(averages) < max(1, min_trials):
        return Decision(False)
    median = statistics.median(averages)
    if not goal.better(median, best):
        return Decision(False)
    return Decision(
        True,
        f"median stopping rule: best value {best:.6g} by step {step} is worse than the "
        f"median {median:.6g} of {len(averages)} completed trials' running averages",
    )
