"""The GP's view of a search space: a matrix encoding of parameter sets.

Every parameter gets columns in a feature matrix whose values live in [0, 1]:

* ``double`` (no step): one continuous column, the parameter's warped unit coordinate
  (log and reverse-log scales honoured by ``Parameter.to_unit``).
* ``integer``, ``discrete``, ``boolean`` and stepped ``double``: one *ordinal* column whose
  value is always one of the parameter's levels (the unit coordinates of its allowed
  values).  The acquisition optimiser relaxes it to a continuous value and snaps back to
  a level, then searches the neighbouring levels, so integers are never blindly rounded.
* ``categorical``: one-hot columns that share one length scale (a Hamming-type kernel
  over the category, equivalent to Optuna's and CoCaBO's categorical kernels).
* ``fixed``: no column.

An inactive conditional parameter gets a constant encoding (0.5 on a numeric column,
all zeros on one-hot columns, which no active value can take).  Whether a parameter is
active is a function of its parents' values, which the kernel already sees, so an extra
indicator column would only duplicate information.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hpsearch.space import (
    BooleanParam,
    CategoricalParam,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    IntegerParam,
    Parameter,
    Params,
    Space,
)

INACTIVE = 0.5
# An ordinal parameter with more levels than this snaps through from_unit/to_unit per
# value instead of a precomputed level table.
MAX_LEVELS = 4096

CONTINUOUS = "continuous"
ORDINAL = "ordinal"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Block:
    """The columns of one parameter."""

    param: Parameter
    kind: str  # CONTINUOUS | ORDINAL | CATEGORICAL
    start: int
    width: int
    levels: np.ndarray | None  # sorted unit coordinates of an ordinal's values
    # Activity: (parent block index, allowed encodings) per condition.
    conditions: tuple[tuple[int, np.ndarray], ...]

    @property
    def stop(self) -> int:
        return self.start + self.width


class Encoder:
    """Maps parameter sets of one space to rows of a [0, 1] matrix and back."""

    def __init__(self, space: Space) -> None:
        self.space = space
        blocks: list[Block] = []
        index_of: dict[str, int] = {}
        start = 0
        for param in space:
            if isinstance(param, FixedParam):
                continue
            kind, width, levels = _layout(param)
            conditions = []
            for condition in param.conditions:
                parent_index = index_of.get(condition.parent)
                if parent_index is None:
                    # A fixed parent: Space validated every listed value against the fixed
                    # one, so the condition always holds.
                    continue
                parent_block = blocks[parent_index]
                allowed = [_code(parent_block, v) for v in condition.values]
                conditions.append((parent_index, np.asarray(allowed, dtype=float)))
            blocks.append(Block(param, kind, start, width, levels, tuple(conditions)))
            index_of[param.name] = len(blocks) - 1
            start += width
        self.blocks: tuple[Block, ...] = tuple(blocks)
        self.dim = start
        self.continuous = np.zeros(self.dim, dtype=bool)
        self.ordinal = np.zeros(self.dim, dtype=bool)
        for block in self.blocks:
            if block.kind == CONTINUOUS:
                self.continuous[block.start] = True
            elif block.kind == ORDINAL:
                self.ordinal[block.start] = True
        # Hyperparameter groups: one length scale per parameter (one-hot columns share).
        self.groups = np.zeros(self.dim, dtype=int)
        for i, block in enumerate(self.blocks):
            self.groups[block.start : block.stop] = i
        self.n_groups = len(self.blocks)
        self.discrete_blocks = tuple(b for b in self.blocks if b.kind != CONTINUOUS)

    # -- rows from and to parameter sets ---------------------------------------------------
    def encode(self, params: Mapping[str, object]) -> np.ndarray:
        """One row for a (validated) parameter set; inactive parameters get constants."""
        row = np.empty(self.dim)
        for block in self.blocks:
            value = params.get(block.param.name)
            if value is None:
                _fill_inactive(row, block)
            elif block.kind == CATEGORICAL:
                assert isinstance(block.param, CategoricalParam)
                row[block.start : block.stop] = 0.0
                row[block.start + block.param.values.index(str(value))] = 1.0
            else:
                row[block.start] = block.param.to_unit(value)  # type: ignore[arg-type]
        return row

    def encode_many(self, many: Sequence[Mapping[str, object]]) -> np.ndarray:
        if not many:
            return np.empty((0, self.dim))
        return np.stack([self.encode(p) for p in many])

    def decode(self, row: np.ndarray) -> Params:
        """The parameter set of one (snapped) row; inactive parameters are left out."""
        units: dict[str, float] = {}
        for param in self.space:
            units[param.name] = 0.5
        for block in self.blocks:
            if block.kind == CATEGORICAL:
                assert isinstance(block.param, CategoricalParam)
                index = int(np.argmax(row[block.start : block.stop]))
                units[block.param.name] = (index + 0.5) / len(block.param.values)
            else:
                units[block.param.name] = float(row[block.start])
        return self.space.from_unit(units)

    # -- matrices ---------------------------------------------------------------------------
    def random(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` rows drawn uniformly on each parameter's scale, snapped and made consistent."""
        X = rng.random((m, self.dim))
        for block in self.blocks:
            if block.kind == CATEGORICAL:
                k = block.width
                choice = rng.integers(0, k, size=m)
                X[:, block.start : block.stop] = np.eye(k)[choice]
        return self.snap(X)

    def snap(self, X: np.ndarray) -> np.ndarray:
        """Snap relaxed rows onto the space: ordinals to a level, one-hot to a category,
        inactive parameters to their constant encoding.  Returns a new array."""
        X = np.array(X, dtype=float, copy=True)
        np.clip(X, 0.0, 1.0, out=X)
        for block in self.blocks:
            cols = slice(block.start, block.stop)
            if block.kind == ORDINAL:
                X[:, block.start] = self.snap_ordinal(block, X[:, block.start])
            elif block.kind == CATEGORICAL:
                sub = X[:, cols]
                choice = np.argmax(sub, axis=1)
                X[:, cols] = np.eye(block.width)[choice]
        return self.apply_activity(X)

    def snap_ordinal(self, block: Block, u: np.ndarray) -> np.ndarray:
        """Nearest level of an ordinal parameter for each unit value in ``u``."""
        levels = block.levels
        if levels is None:
            param = block.param
            return np.array([param.to_unit(param.from_unit(float(v))) for v in u])
        pos = np.clip(np.searchsorted(levels, u), 1, len(levels) - 1)
        left, right = levels[pos - 1], levels[pos]
        return np.where(np.abs(u - left) <= np.abs(right - u), left, right)

    def active_mask(self, X: np.ndarray) -> np.ndarray:
        """Boolean (m, n_blocks): whether each block's parameter is active in each row."""
        m = X.shape[0]
        active = np.ones((m, len(self.blocks)), dtype=bool)
        for i, block in enumerate(self.blocks):
            for parent_index, allowed in block.conditions:
                parent = self.blocks[parent_index]
                ok = active[:, parent_index].copy()
                if parent.kind == CATEGORICAL:
                    hot = np.argmax(X[:, parent.start : parent.stop], axis=1)
                    ok &= np.isin(hot, allowed.astype(int))
                else:
                    values = X[:, parent.start]
                    ok &= np.any(np.abs(values[:, None] - allowed[None, :]) < 1e-9, axis=1)
                active[:, i] &= ok
        return active

    def apply_activity(self, X: np.ndarray) -> np.ndarray:
        """Set the columns of inactive parameters to their constants (in place)."""
        if not any(block.conditions for block in self.blocks):
            return X
        active = self.active_mask(X)
        for i, block in enumerate(self.blocks):
            inactive = ~active[:, i]
            if inactive.any():
                X[inactive, block.start : block.stop] = (
                    0.0 if block.kind == CATEGORICAL else INACTIVE
                )
        return X


def _layout(param: Parameter) -> tuple[str, int, np.ndarray | None]:
    if isinstance(param, CategoricalParam):
        return CATEGORICAL, len(param.values), None
    if isinstance(param, DoubleParam) and param.step is None:
        return CONTINUOUS, 1, None
    return ORDINAL, 1, _levels(param)


def _levels(param: Parameter) -> np.ndarray | None:
    units: list[float]
    if isinstance(param, DiscreteParam):
        units = [param.to_unit(v) for v in param.values]
    elif isinstance(param, BooleanParam):
        units = [param.to_unit(False), param.to_unit(True)]
    elif isinstance(param, IntegerParam):
        step = param.step or 1
        if (param.max - param.min) // step + 1 > MAX_LEVELS:
            return None
        units = [param.to_unit(v) for v in range(param.min, param.max + 1, step)]
    elif isinstance(param, DoubleParam) and param.step is not None:
        count = int(np.floor((param.max - param.min) / param.step + 1e-9)) + 1
        if count > MAX_LEVELS:
            return None
        units = [param.to_unit(min(param.min + i * param.step, param.max)) for i in range(count)]
    else:  # pragma: no cover - fixed parameters have no column
        return None
    return np.unique(np.asarray(units, dtype=float))


def _code(block: Block, value: object) -> float:
    """The encoding of a parent value used in an activity test."""
    param = block.param
    if block.kind == CATEGORICAL:
        assert isinstance(param, CategoricalParam)
        return float(param.values.index(str(value)))
    return float(param.to_unit(param.validate(value)))


def _fill_inactive(row: np.ndarray, block: Block) -> None:
    row[block.start : block.stop] = 0.0 if block.kind == CATEGORICAL else INACTIVE


def params_key(params: Mapping[str, object]) -> frozenset[tuple[str, object]]:
    """A hashable identity of a parameter set, for duplicate checks.

    Python's numeric equality makes ``1``, ``1.0`` and ``numpy.float64(1.0)`` the same key.
    """
    return frozenset(params.items())
