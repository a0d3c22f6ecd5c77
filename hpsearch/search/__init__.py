"""Search algorithms behind one pure interface.

``suggest(config, completed, pending, n, rng)`` returns ``n`` new parameter sets for a
study.  No storage, threads or network inside: the oracle gathers the history from the
store, calls this off the RPC threads, and stores what comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
) -> list[Params]:
    """Return ``n`` new parameter sets for ``config`` given the history.

    ``completed`` holds finished trials with their values (in the study's own goal: the
    algorithm reads ``config.metric.goal``); ``pending`` holds trials running now, which a
    batch-aware algorithm must not duplicate.  Deterministic for a given ``rng`` state.
    """
    # Placeholder dispatch: uniform random sampling until the algorithms land.
    return [config.space.sample(rng) for _ in range(n)]


__all__ = ["Observation", "suggest"]
