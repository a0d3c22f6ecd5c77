"""Grid search: a deterministic enumeration of a grid over the space.

Categorical, discrete and boolean parameters take every value; an integer takes every
value when it has at most ``resolution`` of them, else ``resolution`` values evenly spaced
on its scale; a double takes ``resolution`` values evenly spaced on its scale (log and
reverse-log honoured), both ends included.  The resolution is the smallest number in
[``MIN_RESOLUTION``, ``MAX_RESOLUTION``] whose grid covers ``budget.max_trials`` (so a
budget of 100 over two doubles gives a 10 x 10 grid), and never changes during a study.

Points are enumerated in lexicographic order of the declared parameters (the last
parameter varies fastest); a conditional parameter is enumerated only under the parent
values that activate it.  A suggestion is the first grid point that is neither completed
nor pending nor suggested earlier in the same call; once the grid is exhausted, fewer
than ``n`` points (possibly none) come back.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from hpsearch.search.algorithm import Algorithm, Observation
from hpsearch.search.encoding import params_key
from hpsearch.space import (
    CategoricalParam,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    IntegerParam,
    Parameter,
    Params,
    ParamValue,
    Space,
    StudyConfig,
)

logger = logging.getLogger(__name__)

MIN_RESOLUTION = 3
MAX_RESOLUTION = 32


def suggest_grid(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
) -> list[Params]:
    """The next ``n`` unseen grid points (``rng`` is unused: the grid is deterministic)."""
    seen = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
    out: list[Params] = []
    if n <= 0:
        return out
    for params in grid_points(config.space, grid_resolution(config)):
        key = params_key(params)
        if key in seen:
            continue
        seen.add(key)
        out.append(params)
        if len(out) == n:
            return out
    logger.info("grid exhausted study=%s returned=%d", config.name, len(out))
    return out


def grid_resolution(config: StudyConfig) -> int:
    """Points per double (and per wide integer) so that the grid covers the budget."""
    space = config.space
    for resolution in range(MIN_RESOLUTION, MAX_RESOLUTION + 1):
        size = 1
        for param in space:
            size *= len(levels(param, resolution))
        if size >= config.budget.max_trials:
            return resolution
    return MAX_RESOLUTION


def levels(param: Parameter, resolution: int) -> list[ParamValue]:
    """The grid values of one parameter at a given resolution, in increasing order."""
    if isinstance(param, CategoricalParam):
        return list(param.values)
    if isinstance(param, DiscreteParam):
        return list(param.values)
    if isinstance(param, FixedParam):
        return [param.value]
    if isinstance(param, IntegerParam):
        step = param.step or 1
        count = (param.max - param.min) // step + 1
        if count <= resolution:
            return list(range(param.min, param.max + 1, step))
        units = np.linspace(0.0, 1.0, resolution)
        # Integers warp over [min - 0.5, max + 0.5]: map the ends onto min and max exactly.
        values = {param.min, param.max - (param.max - param.min) % step}
        values.update(param.from_unit(float(u)) for u in units[1:-1])
        return sorted(values)
    if isinstance(param, DoubleParam):
        return sorted({param.from_unit(float(u)) for u in np.linspace(0.0, 1.0, resolution)})
    return [False, True]  # boolean


def grid_points(space: Space, resolution: int) -> Iterator[Params]:
    """Every grid point of ``space`` in lexicographic order, honouring conditions."""
    yield from _expand(space, list(space.parameters), {}, resolution)


def _expand(
    space: Space, remaining: list[Parameter], prefix: Params, resolution: int
) -> Iterator[Params]:
    # Group runs of unconditional parameters into one product for speed; branch on the rest.
    if not remaining:
        yield dict(prefix)
        return
    param, rest = remaining[0], remaining[1:]
    if not space.is_active(param, prefix):
        yield from _expand(space, rest, prefix, resolution)
        return
    if not any(p.conditions for p in rest):
        active = [param, *rest]
        for values in itertools.product(*(levels(p, resolution) for p in active)):
            point = dict(prefix)
            point.update(zip((p.name for p in active), values, strict=True))
            yield point
        return
    for value in levels(param, resolution):
        yield from _expand(space, rest, {**prefix, param.name: value}, resolution)


class GridSearch(Algorithm):
    """``grid``: a deterministic enumeration; the next points do not depend on results,
    but which points are left does, so it reads the history."""

    name = "grid"
    model_based = False

    def suggest(
        self,
        config: StudyConfig,
        completed: Sequence[Observation],
        pending: Sequence[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> list[Params]:
        return suggest_grid(config, completed, pending, n, rng)
