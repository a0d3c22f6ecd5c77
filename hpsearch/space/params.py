"""Parameters and search spaces as plain immutable values.

A :class:`Space` is an ordered tuple of parameters.  Each parameter knows its own
domain, validates a value, and maps values to and from the unit interval (the warped
coordinates the search algorithms work in: log and reverse-log scales are honoured
there, so a uniform draw in [0, 1] is a uniform draw on the declared scale).

Conditional parameters carry ``conditions``: the parameter is *active* only when every
condition holds, i.e. its parent is active and has one of the listed values.  Parents
must be integer, categorical, discrete, boolean or fixed parameters (as Vertex AI allows).

Numeric parameters may carry a ``step``, with Keras Tuner's meaning: on a linear scale
the values are ``min, min + step, min + 2*step, ...``; on a log scale the step is a
factor (``min, min*step, min*step**2, ...``, so it must be > 1); on a reverse-log scale
the values mirror the log ones (``max + min - min*step**k``).

Every parameter may carry a ``default`` (Keras Tuner's: the value a model-building
function sees outside a trial).  Left out, it is the first value of the domain (``min``,
the first listed value, ``false``); a default equal to that first value is stored as
``None`` so that equal declarations compare equal however they were written.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Union

from hpsearch.errors import InvalidArgumentError

if TYPE_CHECKING:
    import numpy as np

ParamValue = Union[float, int, str, bool]
Params = dict[str, ParamValue]

# Above this many values a stepped or integer parameter refuses to list its values.
GRID_LIMIT = 100_000


class Scale(str, Enum):
    """How a numeric range is warped for search: linear, log, or reverse-log."""

    LINEAR = "linear"
    LOG = "log"
    REVERSE_LOG = "reverse_log"

    @classmethod
    def parse(cls, value: str | Scale | None, *, where: str) -> Scale:
        """Read a scale from its spelling (``log``, ``reverse-log``, ...); ``None`` is linear."""
        if value is None:
            return cls.LINEAR
        if isinstance(value, Scale):
            return value
        spelled = str(value).strip().lower().replace("-", "_")
        aliases = {
            "reverse_log": "reverse_log",
            "reverselog": "reverse_log",
            "rlog": "reverse_log",
        }
        spelled = aliases.get(spelled, spelled)
        for scale in cls:
            if scale.value == spelled:
                return scale
        raise InvalidArgumentError(
            f"{where}: unknown scale {value!r}; use one of linear, log, reverse_log"
        )


@dataclass(frozen=True, slots=True)
class Condition:
    """The child is active only when ``parent`` is active and takes one of ``values``."""

    parent: str
    values: tuple[ParamValue, ...]

    def __post_init__(self) -> None:
        values = self.values
        if isinstance(values, (str, bytes, bool, int, float)):
            values = (values,)
        object.__setattr__(self, "values", tuple(values))


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value it holds; anything else unchanged.

    NumPy is not imported here (a worker or client that loads the space need not load
    it): when the caller never imported NumPy, no value can be a NumPy scalar."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    return value


def _number(value: Any, *, where: str) -> float:
    """Accept ints, floats and numeric strings (PyYAML reads ``1e-4`` as a string)."""
    value = _plain(value)
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{where}: expected a number, got the boolean {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise InvalidArgumentError(f"{where}: expected a number, got {value!r}")


def _integer(value: Any, *, where: str) -> int:
    number = _number(value, where=where)
    if not math.isfinite(number) or number != int(number):
        raise InvalidArgumentError(f"{where}: expected an integer, got {value!r}")
    return int(number)


def _finite(value: float, *, where: str) -> float:
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{where}: expected a finite number, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class _Base:
    name: str
    conditions: tuple[Condition, ...] = field(default=(), kw_only=True)
    default: Any = field(default=None, kw_only=True)

    def _check_name(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidArgumentError(
                f"parameter name must be a non-empty string, got {self.name!r}"
            )
        if self.name != self.name.strip() or any(ch.isspace() for ch in self.name):
            raise InvalidArgumentError(
                f"parameter name {self.name!r} contains whitespace; use letters, digits, _ or -"
            )
        if self.name.startswith("--"):
            raise InvalidArgumentError(
                f"parameter name {self.name!r}: give the name without leading dashes"
            )
        conditions = self.conditions
        if isinstance(conditions, Condition):
            conditions = (conditions,)
        for condition in conditions:
            if not isinstance(condition, Condition):
                raise InvalidArgumentError(
                    f"parameter {self.name!r}: conditions must be Condition values, "
                    f"got {condition!r}"
                )
        object.__setattr__(self, "conditions", tuple(conditions))

    def _check_default(self) -> None:
        if self.default is None:
            return
        implicit = self._implicit_default()
        if _same(self.default, implicit):
            # Before validation: Keras Tuner reports min as the default even where min is
            # not on a (reverse-log) step grid and validation would snap it elsewhere.
            object.__setattr__(self, "default", None)
            return
        try:
            value = self.validate(self.default)  # type: ignore[attr-defined]
        except InvalidArgumentError as exc:
            raise InvalidArgumentError(
                f"default of parameter {self.name!r} is not one of its values: {exc}; "
                "change the default or leave it out"
            ) from None
        object.__setattr__(self, "default", None if _same(value, implicit) else value)

    def _implicit_default(self) -> ParamValue:
        raise NotImplementedError

    @property
    def effective_default(self) -> ParamValue:
        """The default, or the first value of the domain when none was given."""
        return self.default if self.default is not None else self._implicit_default()


def _warp(u: float, scale: Scale, lo: float, hi: float) -> float:
    """Map u in [0, 1] onto [lo, hi] on the given scale."""
    u = min(max(u, 0.0), 1.0)
    if scale is Scale.LINEAR:
        return lo + u * (hi - lo)
    if scale is Scale.LOG:
        return math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    # Reverse log: dense near hi (e.g. momentum in [0.9, 0.999]).
    return hi + lo - math.exp(math.log(lo) + (1.0 - u) * (math.log(hi) - math.log(lo)))


def _unwarp(x: float, scale: Scale, lo: float, hi: float) -> float:
    if hi == lo:
        return 0.5
    if scale is Scale.LINEAR:
        u = (x - lo) / (hi - lo)
    elif scale is Scale.LOG:
        u = (math.log(max(x, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    else:
        inner = max(hi + lo - x, lo)
        u = 1.0 - (math.log(inner) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return min(max(u, 0.0), 1.0)


def _check_range(name: str, lo: float, hi: float, scale: Scale) -> None:
    if not lo < hi:
        raise InvalidArgumentError(
            f"parameter {name!r}: min ({lo:g}) must be less than max ({hi:g}); "
            "swap them, or use a fixed parameter for a single value"
        )
    if scale is not Scale.LINEAR and lo <= 0:
        raise InvalidArgumentError(
            f"parameter {name!r}: {scale.value} scale needs min > 0, got min={lo:g}; "
            "raise min or use scale: linear"
        )


def _check_step(name: str, step: float, scale: Scale) -> None:
    if scale is Scale.LINEAR:
        if not (math.isfinite(step) and step > 0):
            raise InvalidArgumentError(f"parameter {name!r}: step must be > 0, got {step:g}")
    elif not (math.isfinite(step) and step > 1):
        raise InvalidArgumentError(
            f"parameter {name!r}: on a {scale.value} scale the step is a factor between "
            f"neighbouring values and must be > 1, got {step:g}; use e.g. step: 2 or "
            "scale: linear"
        )


@dataclass(frozen=True, slots=True)
class _Grid:
    """The finite values of a stepped numeric range, indexed in increasing order."""

    scale: Scale
    lo: float
    hi: float
    step: float

    @property
    def size(self) -> int:
        if self.scale is Scale.LINEAR:
            return math.floor((self.hi - self.lo) / self.step + 1e-9) + 1
        return math.floor(math.log(self.hi / self.lo) / math.log(self.step) + 1e-9) + 1

    def value(self, k: int) -> float:
        """The k-th smallest value."""
        if self.scale is Scale.LINEAR:
            x = self.lo + k * self.step
        elif self.scale is Scale.LOG:
            x = self.lo * self.step**k
        else:
            x = self.hi + self.lo - self.lo * self.step ** (self.size - 1 - k)
        return min(max(x, self.lo), self.hi)

    def nearest(self, x: float) -> int:
        """Index of the grid value nearest to ``x`` (clamped into the grid)."""
        n = self.size
        if self.scale is Scale.LINEAR:
            k = (x - self.lo) / self.step
        elif self.scale is Scale.LOG:
            k = math.log(max(x, self.lo) / self.lo) / math.log(self.step)
        else:
            inner = max(self.hi + self.lo - x, self.lo)
            k = n - 1 - math.log(inner / self.lo) / math.log(self.step)
        return min(max(round(k), 0), n - 1)


@dataclass(frozen=True, slots=True)
class DoubleParam(_Base):
    """A real number in [min, max] on a linear, log or reverse-log scale, optionally stepped."""

    min: float
    max: float
    scale: Scale = Scale.LINEAR
    step: float | None = None

    kind = "double"

    def __post_init__(self) -> None:
        self._check_name()
        where = f"parameter {self.name!r}"
        lo = _finite(_number(self.min, where=f"{where} min"), where=f"{where} min")
        hi = _finite(_number(self.max, where=f"{where} max"), where=f"{where} max")
        scale = Scale.parse(self.scale, where=where)
        object.__setattr__(self, "min", lo)
        object.__setattr__(self, "max", hi)
        object.__setattr__(self, "scale", scale)
        _check_range(self.name, lo, hi, scale)
        if self.step is not None:
            step = _number(self.step, where=f"{where} step")
            _check_step(self.name, step, scale)
            object.__setattr__(self, "step", step)
        self._check_default()

    def validate(self, value: Any) -> float:
        """Return ``value`` as a float in the domain (snapped to the step grid if stepped)."""
        number = _number(value, where=f"parameter {self.name!r}")
        if math.isfinite(number) and not self.min <= number <= self.max:
            # Accept rounding noise at the ends (Keras Tuner computes max as max + min - min).
            slack = 1e-12 * max(abs(self.min), abs(self.max), self.max - self.min)
            if self.min - slack <= number <= self.max + slack:
                number = min(max(number, self.min), self.max)
        if not math.isfinite(number) or not self.min <= number <= self.max:
            raise InvalidArgumentError(
                f"parameter {self.name!r} expects a float in [{self.min:g}, {self.max:g}], "
                f"got {value!r}"
            )
        grid = self._grid()
        if grid is None:
            return number
        snapped = grid.value(grid.nearest(number))
        if not math.isclose(snapped, number, rel_tol=1e-9, abs_tol=1e-12):
            raise InvalidArgumentError(
                f"parameter {self.name!r} expects a value on its step grid "
                f"({_describe_grid(grid)}), got {value!r}"
            )
        return snapped

    def from_unit(self, u: float) -> float:
        grid = self._grid()
        if grid is not None:
            return grid.value(_index(u, grid.size))
        x = _warp(u, self.scale, self.min, self.max)
        return float(min(max(x, self.min), self.max))

    def to_unit(self, value: ParamValue) -> float:
        grid = self._grid()
        if grid is not None:
            return (grid.nearest(float(value)) + 0.5) / grid.size
        return _unwarp(float(value), self.scale, self.min, self.max)

    @property
    def grid_size(self) -> int | None:
        """How many values a stepped parameter has; ``None`` for a continuous one."""
        grid = self._grid()
        return None if grid is None else grid.size

    def grid(self, limit: int = GRID_LIMIT) -> tuple[float, ...] | None:
        """All values in increasing order, or ``None`` when continuous (no step)."""
        grid = self._grid()
        if grid is None:
            return None
        _check_limit(self.name, grid.size, limit)
        return tuple(grid.value(k) for k in range(grid.size))

    def _grid(self) -> _Grid | None:
        return None if self.step is None else _Grid(self.scale, self.min, self.max, self.step)

    def _implicit_default(self) -> ParamValue:
        return self.min


@dataclass(frozen=True, slots=True)
class IntegerParam(_Base):
    """An integer in [min, max] (both included) on a linear, log or reverse-log scale."""

    min: int
    max: int
    scale: Scale = Scale.LINEAR
    step: int | None = None

    kind = "integer"

    def __post_init__(self) -> None:
        self._check_name()
        where = f"parameter {self.name!r}"
        object.__setattr__(self, "min", _integer(self.min, where=f"{where} min"))
        object.__setattr__(self, "max", _integer(self.max, where=f"{where} max"))
        scale = Scale.parse(self.scale, where=where)
        object.__setattr__(self, "scale", scale)
        _check_range(self.name, self.min, self.max, scale)
        if self.step is not None:
            step = _integer(self.step, where=f"{where} step")
            if scale is Scale.LINEAR and step < 1:
                raise InvalidArgumentError(f"{where}: step must be >= 1, got {step}")
            _check_step(self.name, step, scale)
            # A linear step of 1 is every integer: store it as no step (one spelling).
            object.__setattr__(self, "step", None if scale is Scale.LINEAR and step == 1 else step)
        self._check_default()

    def validate(self, value: Any) -> int:
        """Return ``value`` as an int in the domain (``3.0`` and ``"3"`` are accepted)."""
        where = f"parameter {self.name!r}"
        number = _number(value, where=where)
        if (
            not math.isfinite(number)
            or number != int(number)
            or not self.min <= number <= self.max
        ):
            raise InvalidArgumentError(
                f"{where} expects an integer in [{self.min}, {self.max}], got {value!r}"
            )
        grid = self._grid()
        if grid is not None and self._grid_int(grid, grid.nearest(number)) != int(number):
            raise InvalidArgumentError(
                f"{where} expects a value on its step grid ({_describe_grid(grid)}), got {value!r}"
            )
        return int(number)

    def from_unit(self, u: float) -> int:
        grid = self._grid()
        if grid is not None:
            return self._grid_int(grid, _index(u, grid.size))
        # Warp over [min - 0.5, max + 0.5] so every integer gets an equal share of [0, 1]
        # on the declared scale; the low end stays above zero for log scales.
        lo, hi = self._bounds()
        value = round(_warp(u, self.scale, lo, hi))
        return int(min(max(value, self.min), self.max))

    def to_unit(self, value: ParamValue) -> float:
        grid = self._grid()
        if grid is not None:
            return (grid.nearest(float(value)) + 0.5) / grid.size
        lo, hi = self._bounds()
        return _unwarp(float(value), self.scale, lo, hi)

    @property
    def grid_size(self) -> int:
        """How many values the parameter has."""
        grid = self._grid()
        return self.max - self.min + 1 if grid is None else grid.size

    def grid(self, limit: int = GRID_LIMIT) -> tuple[int, ...]:
        """All values in increasing order."""
        _check_limit(self.name, self.grid_size, limit)
        grid = self._grid()
        if grid is None:
            return tuple(range(self.min, self.max + 1))
        return tuple(self._grid_int(grid, k) for k in range(grid.size))

    def _grid(self) -> _Grid | None:
        if self.step is None:
            return None
        return _Grid(self.scale, float(self.min), float(self.max), float(self.step))

    @staticmethod
    def _grid_int(grid: _Grid, k: int) -> int:
        return round(grid.value(k))

    def _bounds(self) -> tuple[float, float]:
        lo, hi = self.min - 0.5, self.max + 0.5
        if self.scale is not Scale.LINEAR:
            lo = max(lo, self.min * 0.5)
        return lo, hi

    def _implicit_default(self) -> ParamValue:
        return self.min


@dataclass(frozen=True, slots=True)
class CategoricalParam(_Base):
    """One of a set of strings (unordered)."""

    values: tuple[str, ...]

    kind = "categorical"

    def __post_init__(self) -> None:
        self._check_name()
        values = tuple(self.values) if not isinstance(self.values, str) else (self.values,)
        if not values:
            raise InvalidArgumentError(
                f"parameter {self.name!r}: categorical needs at least one value, e.g. "
                "values: [sgd, adam]"
            )
        for value in values:
            if not isinstance(value, str):
                raise InvalidArgumentError(
                    f"parameter {self.name!r}: categorical values are strings, got {value!r}; "
                    "quote it in YAML, or use type: discrete for numbers"
                )
        _no_duplicates(self.name, values)
        object.__setattr__(self, "values", values)
        self._check_default()

    def validate(self, value: Any) -> str:
        """Return ``value`` if it is one of the declared strings."""
        if isinstance(value, str) and value in self.values:
            return value
        raise InvalidArgumentError(
            f"parameter {self.name!r} expects one of {list(self.values)}, got {value!r}"
        )

    def from_unit(self, u: float) -> str:
        return self.values[_index(u, len(self.values))]

    def to_unit(self, value: ParamValue) -> float:
        return (self.values.index(self.validate(value)) + 0.5) / len(self.values)

    @property
    def grid_size(self) -> int:
        return len(self.values)

    def grid(self, limit: int = GRID_LIMIT) -> tuple[str, ...]:
        return self.values

    def _implicit_default(self) -> ParamValue:
        return self.values[0]


@dataclass(frozen=True, slots=True)
class DiscreteParam(_Base):
    """One of a list of numbers, e.g. batch sizes 32, 64, 128.

    ``ordered`` (the default) says the numbers are ordered: they are kept sorted and the
    search may exploit their order.  ``ordered=False`` (Keras Tuner's
    ``Choice(..., ordered=False)``) keeps the declared order and treats them as labels.
    """

    values: tuple[float | int, ...]
    ordered: bool = True

    kind = "discrete"

    def __post_init__(self) -> None:
        self._check_name()
        where = f"parameter {self.name!r}"
        raw = list(self.values) if not isinstance(self.values, (str, bytes)) else [self.values]
        if not raw:
            raise InvalidArgumentError(
                f"{where}: discrete needs at least one value, e.g. values: [32, 64]"
            )
        if not isinstance(self.ordered, bool):
            raise InvalidArgumentError(f"{where}: ordered must be true or false")
        numbers: list[float | int] = []
        for value in raw:
            number = _finite(_number(value, where=where), where=where)
            is_int = isinstance(_plain(value), int) or (
                isinstance(value, str)
                and number == int(number)
                and "." not in value
                and "e" not in value.lower()
            )
            numbers.append(int(number) if is_int else number)
        _no_duplicates(self.name, tuple(float(n) for n in numbers))
        object.__setattr__(
            self, "values", tuple(sorted(numbers)) if self.ordered else tuple(numbers)
        )
        self._check_default()

    def validate(self, value: Any) -> float | int:
        """Return the declared number equal to ``value`` (keeping its int/float type)."""
        number = _number(value, where=f"parameter {self.name!r}")
        for allowed in self.values:
            if float(allowed) == number:
                return allowed
        raise InvalidArgumentError(
            f"parameter {self.name!r} expects one of {list(self.values)}, got {value!r}"
        )

    def from_unit(self, u: float) -> float | int:
        return self.values[_index(u, len(self.values))]

    def to_unit(self, value: ParamValue) -> float:
        number = float(value)
        index = min(range(len(self.values)), key=lambda i: abs(float(self.values[i]) - number))
        return (index + 0.5) / len(self.values)

    @property
    def grid_size(self) -> int:
        return len(self.values)

    def grid(self, limit: int = GRID_LIMIT) -> tuple[float | int, ...]:
        return self.values

    def _implicit_default(self) -> ParamValue:
        return self.values[0]


@dataclass(frozen=True, slots=True)
class BooleanParam(_Base):
    """True or false (Keras Tuner's ``hp.Boolean``)."""

    kind = "boolean"

    def __post_init__(self) -> None:
        self._check_name()
        self._check_default()

    def validate(self, value: Any) -> bool:
        """Accept booleans, ``"true"``/``"false"`` (any case) and 0/1."""
        value = _plain(value)
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise InvalidArgumentError(f"parameter {self.name!r} expects true or false, got {value!r}")

    def from_unit(self, u: float) -> bool:
        return u >= 0.5

    def to_unit(self, value: ParamValue) -> float:
        return 0.75 if self.validate(value) else 0.25

    @property
    def grid_size(self) -> int:
        return 2

    def grid(self, limit: int = GRID_LIMIT) -> tuple[bool, ...]:
        return (False, True)

    def _implicit_default(self) -> ParamValue:
        return False


@dataclass(frozen=True, slots=True)
class FixedParam(_Base):
    """A constant (Keras Tuner's ``hp.Fixed``): always this one value."""

    value: ParamValue

    kind = "fixed"

    def __post_init__(self) -> None:
        self._check_name()
        object.__setattr__(self, "value", _plain(self.value))
        if not isinstance(self.value, (bool, int, float, str)):
            raise InvalidArgumentError(
                f"parameter {self.name!r}: a fixed value must be a number, string or boolean, "
                f"got {self.value!r}"
            )
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise InvalidArgumentError(f"parameter {self.name!r}: fixed value must be finite")
        self._check_default()

    def validate(self, value: Any) -> ParamValue:
        """Return the fixed value if ``value`` spells it (``"32"`` for 32, ``"True"``...)."""
        if isinstance(self.value, bool):
            if (
                isinstance(value, bool)
                or (isinstance(value, str) and value.strip().lower() in ("true", "false"))
            ) and str(value).strip().lower() == str(self.value).lower():
                return self.value
        elif isinstance(self.value, (int, float)):
            if not isinstance(value, bool):
                try:
                    if _number(value, where=self.name) == float(self.value):
                        return self.value
                except InvalidArgumentError:
                    pass
        elif isinstance(value, str) and value == self.value:
            return self.value
        raise InvalidArgumentError(
            f"parameter {self.name!r} is fixed to {self.value!r}, got {value!r}"
        )

    def from_unit(self, u: float) -> ParamValue:
        return self.value

    def to_unit(self, value: ParamValue) -> float:
        return 0.5

    @property
    def grid_size(self) -> int:
        return 1

    def grid(self, limit: int = GRID_LIMIT) -> tuple[ParamValue, ...]:
        return (self.value,)

    def _implicit_default(self) -> ParamValue:
        return self.value


Parameter = Union[
    DoubleParam, IntegerParam, CategoricalParam, DiscreteParam, BooleanParam, FixedParam
]
PARENT_KINDS = ("integer", "categorical", "discrete", "boolean", "fixed")


def _index(u: float, n: int) -> int:
    return min(int(max(u, 0.0) * n), n - 1)


def _no_duplicates(name: str, values: tuple[Any, ...]) -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise InvalidArgumentError(f"parameter {name!r}: value {value!r} is listed twice")
        seen.add(value)


def _check_limit(name: str, size: int, limit: int) -> None:
    if size > limit:
        raise InvalidArgumentError(
            f"parameter {name!r} has {size} values, more than {limit} can be listed; "
            "raise its step or narrow its range"
        )


def _describe_grid(grid: _Grid) -> str:
    n = grid.size
    shown = [f"{grid.value(k):g}" for k in range(min(n, 3))]
    if n > 3:
        shown.append(f"... {grid.value(n - 1):g}")
    return ", ".join(shown)


@dataclass(frozen=True)
class Space:
    """An ordered, validated collection of parameters (parents before their children)."""

    parameters: tuple[Parameter, ...] = ()

    def __post_init__(self) -> None:
        params = tuple(self.parameters)
        by_name: dict[str, Parameter] = {}
        for param in params:
            if not isinstance(param, _Base):
                raise InvalidArgumentError(f"a space holds parameters, got {param!r}")
            if param.name in by_name:
                raise InvalidArgumentError(
                    f"parameter {param.name!r} is declared twice; "
                    "give each parameter a unique name"
                )
            by_name[param.name] = param
        checked = [self._checked_conditions(param, by_name) for param in params]
        by_name = {param.name: param for param in checked}
        object.__setattr__(self, "parameters", _topological(checked, by_name))

    @staticmethod
    def _checked_conditions(param: Parameter, by_name: Mapping[str, Parameter]) -> Parameter:
        """Check each condition of ``param``; return it with parent values normalised."""
        if not param.conditions:
            return param
        conditions: list[Condition] = []
        for condition in param.conditions:
            parent = by_name.get(condition.parent)
            if parent is None:
                raise InvalidArgumentError(
                    f"parameter {param.name!r} is conditional on {condition.parent!r}, which "
                    "is not declared; declare the parent or remove the condition"
                )
            if parent.kind not in PARENT_KINDS:
                raise InvalidArgumentError(
                    f"parameter {param.name!r} is conditional on {parent.kind} parameter "
                    f"{parent.name!r}; a parent must be integer, categorical, discrete, boolean "
                    "or fixed: make the parent discrete (list its values) or drop the condition"
                )
            if any(c.parent == parent.name for c in conditions):
                raise InvalidArgumentError(
                    f"parameter {param.name!r} has two conditions on {parent.name!r}; list all "
                    "the parent values in one condition"
                )
            if not condition.values:
                raise InvalidArgumentError(
                    f"parameter {param.name!r}: the condition on {parent.name!r} lists no values"
                )
            values: list[ParamValue] = []
            for value in condition.values:
                try:
                    normalised = parent.validate(value)
                except InvalidArgumentError as exc:
                    raise InvalidArgumentError(
                        f"parameter {param.name!r} is conditional on {parent.name!r} taking "
                        f"{value!r}, which it cannot: {exc}"
                    ) from None
                if any(_same(normalised, v) for v in values):
                    raise InvalidArgumentError(
                        f"parameter {param.name!r}: the condition on {parent.name!r} lists "
                        f"{value!r} twice"
                    )
                values.append(normalised)
            conditions.append(Condition(parent.name, tuple(values)))
        return replace(param, conditions=tuple(conditions))

    # -- lookup -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __contains__(self, name: object) -> bool:
        return any(p.name == name for p in self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        for param in self.parameters:
            if param.name == name:
                return param
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def merged(self, other: Space) -> Space:
        """This space plus the parameters of ``other`` it does not declare yet.

        A parameter declared in both must be declared identically (defaults aside: this
        space's default wins); a conflict is an error rather than a silent override
        (Keras Tuner's UpdateSpace uses this).
        """
        extra: list[Parameter] = []
        for param in other.parameters:
            if param.name in self:
                mine = self[param.name]
                if replace(mine, default=None) != replace(param, default=None):
                    raise InvalidArgumentError(
                        f"parameter {param.name!r} is declared as {mine!r} but the "
                        f"update declares {param!r}; rename one or make them agree"
                    )
            else:
                extra.append(param)
        return Space(self.parameters + tuple(extra)) if extra else self

    # -- values -------------------------------------------------------------------------
    def is_active(self, param: Parameter, params: Mapping[str, Any]) -> bool:
        """Whether ``param`` applies given the (already validated) values of its parents."""
        for condition in param.conditions:
            if condition.parent not in params:
                return False
            value = params[condition.parent]
            if not any(_same(value, allowed) for allowed in condition.values):
                return False
        return True

    def active_names(self, params: Mapping[str, Any]) -> list[str]:
        """Names of the parameters active for this assignment, in declaration order."""
        chosen: dict[str, Any] = {}
        names: list[str] = []
        for param in self.parameters:
            if self.is_active(param, chosen) and param.name in params:
                chosen[param.name] = params[param.name]
                names.append(param.name)
        return names

    def validate(self, params: Mapping[str, Any], *, allow_inactive: bool = False) -> Params:
        """Check a proposed trial and return it normalised (numbers typed, inactive dropped).

        Raises :class:`InvalidArgumentError` for an unknown parameter, a missing active one,
        a value out of its domain, or (unless ``allow_inactive``) a value for a parameter
        that is inactive under its parents' values.
        """
        if not isinstance(params, Mapping):
            raise InvalidArgumentError(
                f"parameters must be a mapping of name to value, got {params!r}"
            )
        unknown = sorted(str(k) for k in set(params) - set(self.names))
        if unknown:
            raise InvalidArgumentError(
                f"unknown parameter(s) {unknown}; the space declares {list(self.names)}"
            )
        result: Params = {}
        for param in self.parameters:
            if not self.is_active(param, result):
                if param.name in params and not allow_inactive:
                    raise InvalidArgumentError(
                        f"parameter {param.name!r} is inactive for these values of "
                        f"{[c.parent for c in param.conditions]}; leave it out"
                    )
                continue
            if param.name not in params:
                raise InvalidArgumentError(f"missing a value for parameter {param.name!r}")
            result[param.name] = param.validate(params[param.name])
        return result

    def sample(self, rng: np.random.Generator) -> Params:
        """Draw one assignment uniformly on each parameter's scale, honouring conditions."""
        params: Params = {}
        for param in self.parameters:
            if self.is_active(param, params):
                params[param.name] = param.from_unit(float(rng.random()))
        return params

    def from_unit(self, units: Mapping[str, float] | Sequence[float]) -> Params:
        """Decode unit-cube coordinates (one per parameter, in order) into an assignment."""
        if not isinstance(units, Mapping):
            units = dict(zip(self.names, units, strict=True))
        params: Params = {}
        for param in self.parameters:
            if self.is_active(param, params):
                params[param.name] = param.from_unit(float(units[param.name]))
        return params

    def to_unit(self, params: Mapping[str, Any]) -> list[float | None]:
        """Unit-cube coordinates of an assignment, ``None`` for inactive parameters."""
        return [
            param.to_unit(params[param.name]) if param.name in params else None
            for param in self.parameters
        ]

    def defaults(self) -> Params:
        """Each active parameter's default (Keras Tuner's initial ``HyperParameters.values``)."""
        params: Params = {}
        for param in self.parameters:
            if self.is_active(param, params):
                params[param.name] = param.effective_default
        return params


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(value, bool) or isinstance(allowed, bool):
        return str(value).lower() == str(allowed).lower()
    if isinstance(value, (int, float)) and isinstance(allowed, (int, float)):
        return float(value) == float(allowed)
    return bool(value == allowed)


def _topological(
    params: Iterable[Parameter], by_name: Mapping[str, Parameter]
) -> tuple[Parameter, ...]:
    """Order parameters so that parents precede children; reject cycles."""
    ordered: list[Parameter] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(param: Parameter, path: tuple[str, ...]) -> None:
        mark = state.get(param.name)
        if mark == 2:
            return
        if mark == 1:
            start = path.index(param.name) if param.name in path else 0
            cycle = " -> ".join((*path[start:], param.name))
            raise InvalidArgumentError(
                f"conditions form a cycle: {cycle}; a parameter cannot depend on itself, "
                "remove one of these conditions"
            )
        state[param.name] = 1
        for condition in param.conditions:
            visit(by_name[condition.parent], (*path, param.name))
        state[param.name] = 2
        ordered.append(param)

    for param in params:
        visit(param, ())
    return tuple(ordered)
