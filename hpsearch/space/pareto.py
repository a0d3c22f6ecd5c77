"""The best of a study with several objectives: its Pareto front.

One trial dominates another when it is at least as good on every objective and strictly
better on one (each under its own goal).  The front is the feasible trials no other
feasible trial dominates: what ``hpsearch best``, hpsearch.v1's GetBestTrials, Keras
Tuner's GetBestTrials and the dashboard return for a multi-objective study.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from hpsearch.errors import InvalidArgumentError
from hpsearch.space.study import StudyConfig

T = TypeVar("T")


def minimised(config: StudyConfig, vectors: Sequence[Sequence[float]]) -> np.ndarray:
    """Objective vectors turned into losses (maximised objectives negated): an (n, k)
    array where lower is better in every column."""
    signs = np.array([m.goal.sign for m in config.metrics], dtype=float)
    array = np.asarray(vectors, dtype=float).reshape(len(vectors), len(signs))
    return -signs * array


def non_dominated(losses: np.ndarray) -> np.ndarray:
    """A boolean mask of the rows of ``losses`` (lower is better) no other row dominates;
    of identical rows, each is kept."""
    n = len(losses)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        no_worse = np.all(losses <= losses[i], axis=1)
        better = np.any(losses < losses[i], axis=1)
        if np.any(no_worse & better):
            keep[i] = False
    return keep


def pareto_front(
    config: StudyConfig,
    items: Sequence[T],
    metrics_of: Callable[[T], Mapping[str, float]],
    feasible: Callable[[T], bool] = lambda item: True,
) -> list[T]:
    """The items on the Pareto front of ``config``'s objectives, best first by the first
    objective (ties keep the input order).  Items that are infeasible or lack an
    objective are never on the front."""
    candidates: list[T] = []
    vectors: list[tuple[float, ...]] = []
    for item in items:
        vector = config.objectives(metrics_of(item))
        if vector is not None and feasible(item):
            candidates.append(item)
            vectors.append(vector)
    if not candidates:
        return []
    losses = minimised(config, vectors)
    mask = non_dominated(losses)
    order = np.argsort(losses[:, 0], kind="stable")
    return [candidates[i] for i in order if mask[i]]


def choose(
    config: StudyConfig,
    front: Sequence[T],
    metrics_of: Callable[[T], Mapping[str, float]],
    rule: str,
) -> T:
    """One member of a Pareto front by ``rule``: ``best:<metric>`` (the best on that
    metric; ties go to the earlier member) or ``knee`` (the closest to the ideal point,
    every objective scaled to [0, 1] over the front: the most balanced trade-off).
    InvalidArgumentError for another rule or an empty front."""
    if not front:
        raise InvalidArgumentError("the front is empty: no feasible trial has every metric")
    names = [m.name for m in config.metrics]
    if rule.startswith("best:"):
        name = rule.removeprefix("best:")
        if name not in names:
            raise InvalidArgumentError(
                f"rule {rule!r}: {name!r} is not a metric of the study; use best:{names[0]}, "
                f"best:{names[1]}, ... or knee"
            )
        metric = config.metrics[names.index(name)]
        return metric.goal.best_of(front, key=lambda t: float(metrics_of(t)[name]))
    if rule == "knee":
        losses = minimised(config, [config.objectives(metrics_of(t)) for t in front])  # type: ignore[misc]
        low, high = losses.min(axis=0), losses.max(axis=0)
        scaled = (losses - low) / np.where(high - low > 0, high - low, 1.0)
        return front[int(np.argmin(np.linalg.norm(scaled, axis=1)))]
    raise InvalidArgumentError(
        f"unknown rule {rule!r}; use best:<metric> (e.g. best:{names[0]}) or knee"
    )


__all__ = ["choose", "minimised", "non_dominated", "pareto_front"]
