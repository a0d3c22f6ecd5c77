"""Hypothesis strategies: random valid spaces and study configs (all kinds, scales, conditions)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from hpsearch.space import (
    ALGORITHMS,
    BooleanParam,
    Budget,
    CategoricalParam,
    Condition,
    DiscreteParam,
    DoubleParam,
    EarlyStopping,
    FixedParam,
    Goal,
    IntegerParam,
    Measurement,
    Metric,
    Parameter,
    Scale,
    Space,
    StudyConfig,
)
from hpsearch.space.params import PARENT_KINDS

# Names and strings that trip YAML (1.1 booleans, nulls, 1e-4 floats) are in the pool on purpose.
TRICKY_STRINGS = ["true", "no", "null", "1e-4", "1.5", "0x10", "~", "sgd", "adam", "a b", "é"]
NAME_ALPHABET = "abcxyzE019_-."


def names() -> st.SearchStrategy[str]:
    plain = st.text(NAME_ALPHABET, min_size=1, max_size=6).filter(lambda s: not s.startswith("--"))
    return st.one_of(plain, st.sampled_from(["true", "null", "1e-4", "on", "lr"]))


def finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def doubles(draw: st.DrawFn, name: str, *, vertex_exact: bool = False) -> DoubleParam:
    scale = draw(st.sampled_from(list(Scale)))
    if scale is Scale.LINEAR:
        lo = draw(finite(-1e6, 1e6))
        hi = lo + draw(finite(1e-3, 1e6))
    else:
        lo = draw(finite(1e-6, 1e3))
        hi = lo * draw(finite(1.01, 1e6))
    step = None
    if not vertex_exact and draw(st.booleans()):
        if scale is Scale.LINEAR:
            step = (hi - lo) / draw(st.integers(1, 50))
        else:
            step = draw(finite(1.1, 10.0))
    return DoubleParam(name, lo, hi, scale=scale, step=step)


@st.composite
def integers(draw: st.DrawFn, name: str, *, vertex_exact: bool = False) -> IntegerParam:
    scales = [Scale.LINEAR, Scale.LOG] if vertex_exact else list(Scale)
    scale = draw(st.sampled_from(scales))
    lo = draw(st.integers(-1000, 1000) if scale is Scale.LINEAR else st.integers(1, 1000))
    hi = lo + draw(st.integers(1, 2000))
    step = None
    if not vertex_exact and draw(st.booleans()):
        step = draw(st.integers(1, 20) if scale is Scale.LINEAR else st.integers(2, 5))
    return IntegerParam(name, lo, hi, scale=scale, step=step)


@st.composite
def categoricals(draw: st.DrawFn, name: str) -> CategoricalParam:
    pool = st.one_of(st.sampled_from(TRICKY_STRINGS), st.text(min_size=0, max_size=5))
    values = draw(st.lists(pool, min_size=1, max_size=5, unique=True))
    return CategoricalParam(name, values=tuple(values))


@st.composite
def discretes(draw: st.DrawFn, name: str, *, vertex_exact: bool = False) -> DiscreteParam:
    number = st.one_of(st.integers(-10_000, 10_000), finite(-1e6, 1e6))
    values = draw(
        st.lists(number, min_size=1, max_size=6, unique_by=lambda v: float(v))  # type: ignore[arg-type]
    )
    ordered = True if vertex_exact else draw(st.booleans())
    return DiscreteParam(name, values=tuple(values), ordered=ordered)


@st.composite
def fixeds(draw: st.DrawFn, name: str) -> FixedParam:
    value = draw(
        st.one_of(
            st.integers(-1000, 1000),
            finite(-1e6, 1e6),
            st.booleans(),
            st.sampled_from(TRICKY_STRINGS),
        )
    )
    return FixedParam(name, value=value)


@st.composite
def parameters(draw: st.DrawFn, name: str, *, vertex_exact: bool = False) -> Parameter:
    kinds: list[Any] = [doubles, integers, categoricals, discretes]
    if not vertex_exact:
        kinds += [BooleanParam, fixeds]
    kind = draw(st.sampled_from(kinds))
    if kind is BooleanParam:
        param: Parameter = BooleanParam(name)
    elif kind in (doubles, integers, discretes):
        param = draw(kind(name, vertex_exact=vertex_exact))
    else:
        param = draw(kind(name))
    if draw(st.booleans()):
        # A default drawn from the domain itself (from_unit always gives a valid value).
        default = param.from_unit(draw(finite(0.0, 1.0)))
        param = type(param)(**{**_fields(param), "default": default})
    return param


def _fields(param: Parameter) -> dict[str, Any]:
    return {f: getattr(param, f) for f in param.__dataclass_fields__}


@st.composite
def spaces(draw: st.DrawFn, *, vertex_exact: bool = False, max_size: int = 6) -> Space:
    """Random valid spaces: every kind and scale, defaults, and (nested) conditions."""
    chosen = draw(st.lists(names(), min_size=0, max_size=max_size, unique=True))
    params: list[Parameter] = []
    for name in chosen:
        param = draw(parameters(name, vertex_exact=vertex_exact))
        parents = [p for p in params if p.kind in PARENT_KINDS]
        conditional = draw(st.booleans())
        if parents and conditional:
            how_many = 1 if vertex_exact else draw(st.integers(1, min(2, len(parents))))
            picked = draw(
                st.lists(
                    st.sampled_from(parents),
                    min_size=how_many,
                    max_size=how_many,
                    unique_by=lambda p: p.name,
                )
            )
            conditions = []
            for parent in picked:
                us = draw(st.lists(finite(0.0, 1.0), min_size=1, max_size=3))
                values: list[Any] = []
                for u in us:
                    value = parent.from_unit(u)
                    if value not in values:
                        values.append(value)
                conditions.append(Condition(parent.name, tuple(values)))
            param = type(param)(**{**_fields(param), "conditions": tuple(conditions)})
        params.append(param)
    # Declared in a shuffled order: the space puts parents before children itself.
    order = draw(st.permutations(params))
    return Space(tuple(order))


@st.composite
def study_configs(draw: st.DrawFn) -> StudyConfig:
    return StudyConfig(
        name=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True)),
        metric=Metric(
            draw(st.one_of(st.sampled_from(["val_accuracy", "1e-4", "true"]), names())),
            draw(st.sampled_from(list(Goal))),
        ),
        space=draw(spaces()),
        budget=Budget(
            max_trials=draw(st.integers(1, 10_000)),
            parallel_trials=draw(st.integers(1, 64)),
            max_failed_trials=draw(st.none() | st.integers(0, 100)),
            max_attempts=draw(st.integers(1, 10)),
        ),
        algorithm=draw(st.sampled_from(ALGORITHMS)),
        measurement=draw(st.sampled_from(list(Measurement))),
        lease_seconds=draw(finite(1.0, 86400.0)),
        early_stopping=EarlyStopping(
            rule=draw(st.sampled_from(["none", "median"])),
            min_trials=draw(st.integers(1, 50)),
            min_steps=draw(st.integers(1, 50)),
        ),
        seed=draw(st.none() | st.integers(0, 2**32)),
    )
