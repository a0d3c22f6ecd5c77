"""Parameters and search spaces as plain immutable values.

A :class:`Space` is an ordered tuple of parameters.  Each parameter knows its own
domain, validates a value, and maps values to and from the unit interval (the warped
coordinates the search algorithms work in: log and reverse-log scales are honoured
there, so a uniform draw in [0, 1] is a uniform draw on the declared scale).

Conditional parameters carry ``conditions``: the parameter is *active* only when every
condition holds, i.e. its parent is active and has one of the listed values.  Parents
must be integer, categorical, discrete, boolean or fixed parameters (as Vertex AI allows).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

import numpy as np

from hpsearch.errors import InvalidArgumentError

ParamValue = Union[float, int, str, bool]
Params = dict[str, ParamValue]


class Scale(str, Enum):
    """How a numeric range is warped for search: linear, log, or reverse-log."""

    LINEAR = "linear"
    LOG = "log"
    REVERSE_LOG = "reverse_log"

    @classmethod
    def parse(cls, value: str | Scale | None, *, where: str) -> Scale:
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


def _number(value: Any, *, where: str) -> float:
    """Accept ints, floats and numeric strings (PyYAML reads ``1e-4`` as a string)."""
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
        u = (math.log(x) - math.log(lo)) / (math.log(hi) - math.log(lo))
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


@dataclass(frozen=True, slots=True)
class DoubleParam(_Base):
    """A real number in [min, max] on a linear, log or reverse-log scale."""

    min: float
    max: float
    scale: Scale = Scale.LINEAR
    step: float | None = None

    kind = "double"

    def __post_init__(self) -> None:
        self._check_name()
        object.__setattr__(
            self, "min", _finite(float(self.min), where=f"parameter {self.name!r} min")
        )
        object.__setattr__(
            self, "max", _finite(float(self.max), where=f"parameter {self.name!r} max")
        )
        _check_range(self.name, self.min, self.max, self.scale)
        if self.step is not None:
            step = float(self.step)
            if not step > 0:
                raise InvalidArgumentError(
                    f"parameter {self.name!r}: step must be > 0, got {step}"
                )
            object.__setattr__(self, "step", step)

    def validate(self, value: Any) -> float:
        number = _number(value, where=f"parameter {self.name!r}")
        if not math.isfinite(number) or not self.min <= number <= self.max:
            raise InvalidArgumentError(
                f"parameter {self.name!r} expects a float in [{self.min:g}, {self.max:g}], "
                f"got {value!r}"
            )
        return number

    def from_unit(self, u: float) -> float:
        x = _warp(u, self.scale, self.min, self.max)
        if self.step is not None:
            x = self.min + round((x - self.min) / self.step) * self.step
        return float(min(max(x, self.min), self.max))

    def to_unit(self, value: ParamValue) -> float:
        return _unwarp(float(value), self.scale, self.min, self.max)


@dataclass(frozen=True, slots=True)
class IntegerParam(_Base):
    """An integer in [min, max] (both included) on a linear or log scale."""

    min: int
    max: int
    scale: Scale = Scale.LINEAR
    step: int | None = None

    kind = "integer"

    def __post_init__(self) -> None:
        self._check_name()
        object.__setattr__(self, "min", _integer(self.min, where=f"parameter {self.name!r} min"))
        object.__setattr__(self, "max", _integer(self.max, where=f"parameter {self.name!r} max"))
        _check_range(self.name, self.min, self.max, self.scale)
        if self.step is not None:
            step = _integer(self.step, where=f"parameter {self.name!r} step")
            if step < 1:
                raise InvalidArgumentError(
                    f"parameter {self.name!r}: step must be >= 1, got {step}"
                )
            object.__setattr__(self, "step", step)

    def validate(self, value: Any) -> int:
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
        if self.step is not None and (int(number) - self.min) % self.step:
            raise InvalidArgumentError(
                f"{where} expects min + k*{self.step} (min={self.min}), got {value!r}"
            )
        return int(number)

    def from_unit(self, u: float) -> int:
        # Warp over [min - 0.5, max + 0.5] so every integer gets an equal share of [0, 1]
        # on the declared scale; clamp the low end above zero for log scales.
        lo, hi = self._bounds()
        x = _warp(u, self.scale, lo, hi)
        value = int(round(x))
        if self.step is not None:
            value = self.min + int(round((value - self.min) / self.step)) * self.step
        return int(
            min(max(value, self.min), self.max - ((self.max - self.min) % (self.step or 1)))
        )

    def to_unit(self, value: ParamValue) -> float:
        lo, hi = self._bounds()
        return _unwarp(float(value), self.scale, lo, hi)

    def _bounds(self) -> tuple[float, float]:
        lo, hi = self.min - 0.5, self.max + 0.5
        if self.scale is not Scale.LINEAR:
            lo = max(lo, self.min * 0.5)
        return lo, hi


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
                    "use type: discrete for numbers"
                )
        _no_duplicates(self.name, values)
        object.__setattr__(self, "values", values)

    def validate(self, value: Any) -> str:
        if isinstance(value, str) and value in self.values:
            return value
        raise InvalidArgumentError(
            f"parameter {self.name!r} expects one of {list(self.values)}, got {value!r}"
        )

    def from_unit(self, u: float) -> str:
        return self.values[_index(u, len(self.values))]

    def to_unit(self, value: ParamValue) -> float:
        return (self.values.index(str(value)) + 0.5) / len(self.values)


@dataclass(frozen=True, slots=True)
class DiscreteParam(_Base):
    """One of a sorted list of numbers (ordered, e.g. batch sizes 32, 64, 128)."""

    values: tuple[float | int, ...]

    kind = "discrete"

    def __post_init__(self) -> None:
        self._check_name()
        where = f"parameter {self.name!r}"
        raw = list(self.values) if not isinstance(self.values, (str, bytes)) else [self.values]
        if not raw:
            raise InvalidArgumentError(
                f"{where}: discrete needs at least one value, e.g. [32, 64]"
            )
        numbers: list[float | int] = []
        for value in raw:
            number = _finite(_number(value, where=where), where=where)
            is_int = isinstance(value, int) or (
                isinstance(value, str)
                and number == int(number)
                and "." not in value
                and "e" not in value.lower()
            )
            numbers.append(int(number) if is_int else number)
        _no_duplicates(self.name, tuple(float(n) for n in numbers))
        object.__setattr__(self, "values", tuple(sorted(numbers)))

    def validate(self, value: Any) -> float | int:
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


@dataclass(frozen=True, slots=True)
class BooleanParam(_Base):
    """True or false (Keras Tuner's ``hp.Boolean``)."""

    kind = "boolean"

    def __post_init__(self) -> None:
        self._check_name()

    def validate(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise InvalidArgumentError(f"parameter {self.name!r} expects true or false, got {value!r}")

    def from_unit(self, u: float) -> bool:
        return u >= 0.5

    def to_unit(self, value: ParamValue) -> float:
        return 0.75 if self.validate(value) else 0.25


@dataclass(frozen=True, slots=True)
class FixedParam(_Base):
    """A constant (Keras Tuner's ``hp.Fixed``): always this one value."""

    value: ParamValue

    kind = "fixed"

    def __post_init__(self) -> None:
        self._check_name()
        if not isinstance(self.value, (bool, int, float, str)):
            raise InvalidArgumentError(
                f"parameter {self.name!r}: a fixed value must be a number, string or boolean, "
                f"got {self.value!r}"
            )
        if isinstance(self.value, float) and not math.isfinite(self.value):
            raise InvalidArgumentError(f"parameter {self.name!r}: fixed value must be finite")

    def validate(self, value: Any) -> ParamValue:
        if value == self.value and type(value) is type(self.value):
            return self.value
        if isinstance(self.value, (int, float)) and not isinstance(self.value, bool):
            try:
                if _number(value, where=self.name) == float(self.value):
                    return self.value
            except InvalidArgumentError:
                pass
        if str(value) == str(self.value):
            return self.value
        raise InvalidArgumentError(
            f"parameter {self.name!r} is fixed to {self.value!r}, got {value!r}"
        )

    def from_unit(self, u: float) -> ParamValue:
        return self.value

    def to_unit(self, value: ParamValue) -> float:
        return 0.5


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


@dataclass(frozen=True)
class Space:
    """An ordered, validated collection of parameters (parents before their children)."""

    parameters: tuple[Parameter, ...] = ()

    def __post_init__(self) -> None:
        params = tuple(self.parameters)
        by_name: dict[str, Parameter] = {}
        for param in params:
            if param.name in by_name:
                raise InvalidArgumentError(
                    f"parameter {param.name!r} is declared twice; give each parameter a unique name"
                )
            by_name[param.name] = param
        for param in params:
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
                        f"{parent.name!r}; a parent must be integer, categorical, discrete or "
                        "boolean"
                    )
                if not condition.values:
                    raise InvalidArgumentError(
                        f"parameter {param.name!r}: the condition on {parent.name!r} lists no "
                        "values"
                    )
                for value in condition.values:
                    parent.validate(value)
        object.__setattr__(self, "parameters", _topological(params, by_name))

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

        A parameter declared in both must be declared identically; a conflict is an error
        rather than a silent override (Keras Tuner's UpdateSpace uses this).
        """
        extra: list[Parameter] = []
        for param in other.parameters:
            if param.name in self:
                if self[param.name] != param:
                    raise InvalidArgumentError(
                        f"parameter {param.name!r} is declared as {self[param.name]!r} but the "
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
        unknown = sorted(set(params) - set(self.names))
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


def _same(value: Any, allowed: Any) -> bool:
    if isinstance(value, bool) or isinstance(allowed, bool):
        return value is allowed or str(value).lower() == str(allowed).lower()
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
            cycle = " -> ".join(path + (param.name,))
            raise InvalidArgumentError(
                f"conditions form a cycle: {cycle}; a parameter cannot depend on itself"
            )
        state[param.name] = 1
        for condition in param.conditions:
            visit(by_name[condition.parent], path + (param.name,))
        state[param.name] = 2
        ordered.append(param)

    for param in params:
        visit(param, ())
    return tuple(ordered)
