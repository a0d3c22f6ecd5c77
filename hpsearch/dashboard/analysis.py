"""What the dashboard computes from a study's trials: best value so far, the parameters
to plot, parameter importances and measurement curves.

Plain values in, plain values out: no SQL, no engine, no caching (the read model,
:mod:`hpsearch.dashboard.queries`, reads the rows and caches the answers).  Rows are
sequences in the column order each function names.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from hpsearch.space import Goal, StudyConfig
from hpsearch.space.pareto import pareto_front

#: Completed trials (with the parameter set) below which no importance is given.
MIN_TRIALS_FOR_IMPORTANCE = 10
NUMERIC_KINDS = ("double", "integer", "discrete")


def history_columns(
    rows: Iterable[Sequence[Any]], goal: Goal
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """COMPLETED trials' numbers, values and best value so far, and STOPPED trials'
    numbers and values, in columns.  ``rows`` are (number, state, value) or (number,
    state, value, infeasible reason) in trial order, values not None; an infeasible
    trial is in ``completed["infeasible"]`` (True) and never the best so far."""
    completed: dict[str, list[Any]] = {"number": [], "value": [], "best": [], "infeasible": []}
    stopped: dict[str, list[Any]] = {"number": [], "value": []}
    best = math.nan
    for number, state, raw, *rest in rows:
        value = float(raw or 0.0)
        infeasible = bool(rest and rest[0] is not None)
        if state == "COMPLETED" and infeasible:
            completed["number"].append(number)
            completed["value"].append(value)
            completed["best"].append(None if math.isnan(best) else best)
            completed["infeasible"].append(True)
        elif state == "COMPLETED":
            completed["infeasible"].append(False)
            if math.isnan(best) or goal.better(value, best):
                best = value
            completed["number"].append(number)
            completed["value"].append(value)
            completed["best"].append(best)
        else:
            stopped["number"].append(number)
            stopped["value"].append(value)
    return completed, stopped


def parameter_specs(
    config: StudyConfig, sample: Iterable[Mapping[str, Any]] = ()
) -> list[dict[str, Any]]:
    """The declared parameters, then any found only in the ``sample`` of trials' parameters
    (Keras Tuner spaces grow); each with ``numeric``: whether it is plotted on an axis."""
    specs: list[dict[str, Any]] = []
    for param in config.space:
        spec: dict[str, Any] = {"name": param.name, "kind": param.kind}
        if param.kind in ("double", "integer"):
            spec.update(min=param.min, max=param.max, scale=param.scale.value)  # type: ignore[union-attr]
        elif param.kind in ("categorical", "discrete"):
            spec["values"] = list(param.values)  # type: ignore[union-attr]
        elif param.kind == "boolean":
            spec["values"] = [False, True]
        elif param.kind == "fixed":
            spec["values"] = [param.value]  # type: ignore[union-attr]
        specs.append(spec)
    known = {s["name"] for s in specs}
    for params in sample:
        for key, value in params.items():
            if key not in known:
                known.add(key)
                numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
                specs.append({"name": key, "kind": "double" if numeric else "categorical"})
    for spec in specs:
        spec["numeric"] = spec["kind"] in NUMERIC_KINDS
    return specs


def importances(
    specs: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Sequence[Any]],
    values: Sequence[float],
) -> dict[str, tuple[float | None, float | None]]:
    """Each parameter's (variance explained, importance): the share of the objective's
    variance it explains on its own (:func:`variance_explained`), and those shares
    normalised to sum to 1.  Fast and model-free, but blind to interactions between
    parameters.  ``columns`` holds each parameter's value per trial (None where a trial
    lacks it), aligned with ``values``."""
    raw = {
        spec["name"]: variance_explained(columns[spec["name"]], values, spec["numeric"])
        for spec in specs
    }
    total = sum(v for v in raw.values() if v is not None)
    return {
        name: (share, None if share is None or total <= 0 else share / total)
        for name, share in raw.items()
    }


def variance_explained(
    column: Sequence[Any], values: Sequence[float], numeric: bool
) -> float | None:
    """Epsilon-squared of the objective grouped by one parameter's value: numeric
    parameters binned by quantile (up to 10 bins), others grouped by value.  None below
    :data:`MIN_TRIALS_FOR_IMPORTANCE` trials with the parameter, or with no variance.

    Unlike plain eta-squared it subtracts what ``k`` groups explain by chance, so a
    parameter with a distinct value per trial does not look perfectly important.
    """
    keep = [i for i, x in enumerate(column) if x is not None and math.isfinite(values[i])]
    if len(keep) < MIN_TRIALS_FOR_IMPORTANCE:
        return None
    y = np.array([values[i] for i in keep], dtype=float)
    total = float(np.sum((y - y.mean()) ** 2))
    if total <= 0.0:
        return None
    xs = [column[i] for i in keep]
    bins = max(2, min(10, len(xs) // 5))
    groups: np.ndarray[Any, Any]
    if numeric and len(set(xs)) > bins:
        x = np.array(xs, dtype=float)
        edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
        groups = np.searchsorted(edges[1:-1], x, side="right")
    else:
        _, groups = np.unique(np.array([str(v) for v in xs]), return_inverse=True)
    sizes = np.bincount(groups)
    sums = np.bincount(groups, weights=y)
    occupied = sizes > 0
    k, n = int(occupied.sum()), len(y)
    if k < 2:
        return 0.0
    if n <= k:
        return None
    means = sums[occupied] / sizes[occupied]
    between = float(np.sum(sizes[occupied] * (means - y.mean()) ** 2))
    within_mean_square = (total - between) / (n - k)
    return max(0.0, (between - (k - 1) * within_mean_square) / total)


def latest_attempt_curves(
    rows: Iterable[Sequence[Any]], metric: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each trial's curve of ``metric`` by step from its latest attempt that reported it,
    by trial number, and every metric name seen.  ``rows`` are (number, state, attempt,
    step, metrics) ordered by number, attempt descending, then step."""
    curves: dict[int, dict[str, Any]] = {}
    names: set[str] = set()
    for number, state, attempt, step, metrics in rows:
        names.update(metrics)
        value = metrics.get(metric)
        if value is None:
            continue
        curve = curves.setdefault(
            number,
            {"number": number, "state": state, "attempt": attempt, "step": [], "value": []},
        )
        if curve["attempt"] != attempt:  # an earlier attempt: the latest one is shown
            continue
        curve["step"].append(step)
        curve["value"].append(value)
    return [curves[n] for n in sorted(curves)], sorted(names)


__all__ = [
    "MIN_TRIALS_FOR_IMPORTANCE",
    "NUMERIC_KINDS",
    "history_columns",
    "importances",
    "latest_attempt_curves",
    "parameter_specs",
    "variance_explained",
]


def front_columns(config: StudyConfig, rows: Iterable[Sequence[Any]]) -> dict[str, list[Any]]:
    """COMPLETED trials of a study with several metrics (or constraints), in columns:
    ``number``, ``values`` (one list per objective; None where not reported),
    ``feasible``, ``reason`` (why infeasible) and ``on_front`` (on the Pareto front).
    ``rows`` are (number, metrics, infeasible reason) in trial order."""
    items = [(int(n), dict(m or {}), r) for n, m, r in rows]
    front = {n for n, _, _ in pareto_front(config, items, lambda i: i[1], lambda i: i[2] is None)}
    return {
        "number": [n for n, _, _ in items],
        "values": [[m.get(metric.name) for _, m, _ in items] for metric in config.metrics],
        "feasible": [r is None for _, _, r in items],
        "reason": [r for _, _, r in items],
        "on_front": [n in front for n, _, _ in items],
    }
