"""Search algorithms behind one pure interface.

``suggest(config, completed, pending, n, rng)`` returns ``n`` new parameter sets for a
study.  No storage, threads or network inside: the oracle gathers the history from the
store, calls this off the RPC threads, and stores what comes back.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import Params, StudyConfig


@dataclass(frozen=True, slots=True)
class Observation:
    """A finished trial as the search sees it: its parameters and objective value."""

    params: Params
    value: float


def suggest(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
    seen: Collection[object] = (),
) -> list[Params]:
    """Return ``n`` new parameter sets for ``config`` given the history.

    ``completed`` holds finished trials with their values (in the study's own goal: the
    algorithm reads ``config.metric.goal``); ``pending`` holds trials running now, which a
    batch-aware algorithm must not duplicate.  Deterministic for a given ``rng`` state.
    ``seen`` (random search only): the :func:`~hpsearch.search.encoding.params_key` of
    parameter sets tried before, for a caller that keeps them instead of passing a large
    history in ``completed`` on every call.

    No suggestion repeats a completed or pending parameter set, or another suggestion of
    the same call.  Fewer than ``n`` come back only when the space is exhausted (a
    finished grid, a small finite space fully tried).  Algorithms: ``bayesian`` (GP
    Bayesian optimisation, the default), ``random``, ``grid``, and Optuna's ``tpe`` and
    ``cmaes`` (the optional ``optuna`` extra).
    """
    if n <= 0:
        return []
    algorithm = config.algorithm
    if algorithm == "random":
        from hpsearch.search.random import suggest_random

        return suggest_random(config, completed, pending, n, rng, seen)
    if algorithm == "grid":
        from hpsearch.search.grid import suggest_grid

        return suggest_grid(config, completed, pending, n, rng)
    if algorithm in ("tpe", "cmaes"):
        from hpsearch.search.optuna_samplers import suggest_optuna

        return suggest_optuna(config, completed, pending, n, rng)
    if algorithm == "bayesian":
        from hpsearch.search.bayesian import suggest_bayesian

        return suggest_bayesian(config, completed, pending, n, rng)
    raise InvalidArgumentError(
        f"algorithm {algorithm!r} is unknown; use one of bayesian, random, grid, tpe, cmaes"
    )


__all__ = ["Observation", "suggest"]
