"""Random search: independent uniform draws on each parameter's declared scale."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from hpsearch.search.algorithm import Algorithm, Observation
from hpsearch.search.encoding import params_key
from hpsearch.space import Params, StudyConfig

logger = logging.getLogger(__name__)

MAX_RETRIES = 100


def suggest_random(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
    seen: Collection[object] = (),
) -> list[Params]:
    """``n`` uniform draws that repeat no completed, pending or earlier draw, nor any
    parameter set whose :func:`params_key` is in ``seen`` (a caller that keeps the keys
    of a large history passes them here instead of the history itself).

    Returns fewer than ``n`` only when ``MAX_RETRIES`` draws in a row were all seen
    before, i.e. a small finite space is (nearly) exhausted.
    """
    drawn = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
    out: list[Params] = []
    for _ in range(n):
        for _ in range(MAX_RETRIES):
            params = config.space.sample(rng)
            key = params_key(params)
            if key not in drawn and key not in seen:
                drawn.add(key)
                out.append(params)
                break
        else:
            logger.info("random search exhausted study=%s returned=%d", config.name, len(out))
            break
    return out


class RandomSearch(Algorithm):
    """``random``: cheap draws that need no model, only the keys of what was tried.

    Its kept state is the set of :func:`params_key` of the completed trials, so the
    oracle hands it that set (kept live, only ever added to) instead of a copy of the
    history on every refill: O(n) per refill, not O(study size)."""

    name = "random"
    model_based = False
    uses_history = False

    def initial_state(self) -> set[object]:
        return set()

    def observe(self, state: Any, observation: Observation) -> None:
        state.add(params_key(observation.params))

    def suggest(
        self,
        config: StudyConfig,
        completed: Sequence[Observation],
        pending: Sequence[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> list[Params]:
        return suggest_random(config, completed, pending, n, rng, state)
