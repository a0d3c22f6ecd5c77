"""Random search: independent uniform draws on each parameter's declared scale."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hpsearch.search.encoding import params_key
from hpsearch.space import Params, StudyConfig

if TYPE_CHECKING:
    from hpsearch.search import Observation

logger = logging.getLogger(__name__)

MAX_RETRIES = 100


def suggest_random(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
) -> list[Params]:
    """``n`` uniform draws that repeat no completed, pending or earlier draw.

    Returns fewer than ``n`` only when ``MAX_RETRIES`` draws in a row were all seen
    before, i.e. a small finite space is (nearly) exhausted.
    """
    seen = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
    out: list[Params] = []
    for _ in range(n):
        for _ in range(MAX_RETRIES):
            params = config.space.sample(rng)
            key = params_key(params)
            if key not in seen:
                seen.add(key)
                out.append(params)
                break
        else:
            logger.info("random search exhausted study=%s returned=%d", config.name, len(out))
            break
    return out
