"""Search algorithms behind one pure interface.

``suggest(config, completed, pending, n, rng)`` returns ``n`` new parameter sets for a
study.  No storage, threads or network inside: the oracle gathers the history from the
store, calls this off the RPC threads, and stores what comes back.  Each algorithm is an
object with traits the oracle schedules by (:mod:`hpsearch.search.algorithm`), found by
name in one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hpsearch.search.algorithm import ALGORITHMS, Algorithm, Observation, get_algorithm
from hpsearch.space import Params, StudyConfig


def suggest(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
    state: Any = None,
) -> list[Params]:
    """Return ``n`` new parameter sets for ``config`` given the history.

    ``completed`` holds finished trials with their values (in the study's own goal: the
    algorithm reads ``config.metric.goal``); ``pending`` holds trials running now, which a
    batch-aware algorithm must not duplicate.  Deterministic for a given ``rng`` state.
    ``state``: the algorithm's kept state (:meth:`Algorithm.state_of`), for a caller that
    keeps it as results arrive; None builds it from ``completed``.  An algorithm that does
    not read the history (``uses_history`` False: random search) then needs only ``state``.

    No suggestion repeats a completed or pending parameter set, or another suggestion of
    the same call.  Fewer than ``n`` come back only when the space is exhausted (a
    finished grid, a small finite space fully tried).  Algorithms: ``bayesian`` (GP
    Bayesian optimisation, the default), ``random``, ``grid``, and Optuna's ``tpe`` and
    ``cmaes`` (the optional ``optuna`` extra).
    """
    if n <= 0:
        return []
    algorithm = get_algorithm(config.algorithm)
    if state is None:
        state = algorithm.state_of(completed)
    return algorithm.suggest(config, completed, pending, n, rng, state)


__all__ = ["ALGORITHMS", "Algorithm", "Observation", "get_algorithm", "suggest"]
