"""Every validation message of the space: what is refused, and that the message says what to do."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import (
    BooleanParam,
    CategoricalParam,
    Condition,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    IntegerParam,
    Scale,
    Space,
    finite_metrics,
    loads_study,
)


def refused(match: str) -> Any:
    return pytest.raises(InvalidArgumentError, match=match)


# -- declarations ---------------------------------------------------------------------------
@pytest.mark.parametrize("scale", ["linear", "log", "reverse_log"])
@pytest.mark.parametrize("cls", [DoubleParam, IntegerParam])
@pytest.mark.parametrize(("lo", "hi"), [(1, 1), (2, 1)])
def test_min_not_below_max_is_refused(cls: type, lo: int, hi: int, scale: str) -> None:
    """On every scale: a log range with min > max (both positive) passes the min > 0 check,
    so only the order check can refuse it."""
    with refused(rf"parameter 'x': min \({lo}\) must be less than max \({hi}\); swap them"):
        cls("x", lo, hi, scale=scale)


@pytest.mark.parametrize("scale", ["log", "reverse_log"])
def test_a_study_file_with_a_reversed_log_range_is_refused(scale: str) -> None:
    text = (
        "name: rev\nmetric: m\n"
        f"parameters: {{lr: {{type: double, min: 0.1, max: 0.001, scale: {scale}}}}}\n"
    )
    with refused(r"parameter 'lr': min \(0.1\) must be less than max \(0.001\)"):
        loads_study(text)


@pytest.mark.parametrize("scale", ["log", "reverse_log"])
@pytest.mark.parametrize("cls", [DoubleParam, IntegerParam])
def test_log_scale_with_min_not_positive_is_refused(cls: type, scale: str) -> None:
    with refused(rf"parameter 'lr': {scale} scale needs min > 0, got min=0; raise min"):
        cls("lr", 0, 1, scale=scale)
    with refused("needs min > 0"):
        cls("lr", -1, 1, scale=scale)


def test_unknown_scale_is_refused() -> None:
    with refused("unknown scale 'cubic'; use one of linear, log, reverse_log"):
        DoubleParam("x", 0, 1, scale="cubic")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cls", "args", "message"),
    [
        (IntegerParam, ("n", 1.5, 3), "parameter 'n' min: expected an integer, got 1.5"),
        (IntegerParam, ("n", 1, "x"), "parameter 'n' max: expected a number, got 'x'"),
        (IntegerParam, ("n", 1, 3, "cubic"), "parameter 'n': unknown scale 'cubic'; use one of"),
        (DoubleParam, ("x", "a", 3), "parameter 'x' min: expected a number, got 'a'"),
        (DoubleParam, ("x", 0, 1, "cubic"), "parameter 'x': unknown scale 'cubic'; use one of"),
        (DoubleParam, ("x", math.inf, 1), "parameter 'x' min: expected a finite number, got inf"),
        (DoubleParam, ("x", 0, math.nan), "parameter 'x' max: expected a finite number, got nan"),
        (DoubleParam, ("x", 0, "b"), "parameter 'x' max: expected a number, got 'b'"),
        (DoubleParam, ("x", 0, 1, "linear", "s"), "parameter 'x' step: expected a number, got"),
        (DoubleParam, ("x", 0, 1, "linear", -1), "parameter 'x': step must be > 0, got -1"),
        (IntegerParam, ("n", 0, 5, "linear", 1.5), "parameter 'n' step: expected an integer, got"),
        (IntegerParam, ("n", 0, 5, "linear", 0), "parameter 'n': step must be >= 1, got 0"),
        (IntegerParam, ("n", 1, 64, "log", 1), "parameter 'n': on a log scale the step is a"),
    ],
    ids=[
        *("int-min", "int-max", "int-scale", "double-min", "double-scale", "double-min-inf"),
        *("double-max-nan", "double-max-type", "double-step-type", "double-step-negative"),
        *("int-step-fraction", "int-step-zero", "int-log-step-one"),
    ],
)
def test_a_bad_bound_or_scale_names_the_parameter(cls: type, args: tuple, message: str) -> None:
    with refused(f"^{message}"):
        cls(*args)


def test_scale_spellings_are_parsed() -> None:
    assert DoubleParam("x", 1, 2, scale="reverse-log").scale is Scale.REVERSE_LOG  # type: ignore[arg-type]
    assert DoubleParam("x", 1, 2, scale="LOG").scale is Scale.LOG  # type: ignore[arg-type]


def test_empty_categorical_is_refused() -> None:
    with refused(r"parameter 'opt': categorical needs at least one value, e.g. values: \[sgd"):
        CategoricalParam("opt", values=())


def test_empty_discrete_is_refused() -> None:
    with refused("discrete needs at least one value"):
        DiscreteParam("bs", values=())


def test_numbers_in_a_categorical_are_refused_with_a_hint() -> None:
    with refused(
        "categorical values are strings, got 32; quote it in YAML, or use type: discrete"
    ):
        CategoricalParam("bs", values=(32, 64))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: CategoricalParam("opt", values=("sgd", "sgd")),
        lambda: DiscreteParam("bs", values=(32, 32.0)),
    ],
)
def test_duplicate_values_are_refused(make) -> None:  # type: ignore[no-untyped-def]
    with refused("is listed twice"):
        make()


def test_duplicate_parameter_names_are_refused() -> None:
    with refused("parameter 'lr' is declared twice; give each parameter a unique name"):
        Space((DoubleParam("lr", 0, 1), IntegerParam("lr", 0, 3)))


@pytest.mark.parametrize("name", ["", " lr", "learning rate", "--lr"])
def test_bad_parameter_names_are_refused(name: str) -> None:
    with refused("parameter name"):
        DoubleParam(name, 0, 1)


@pytest.mark.parametrize(("value", "what"), [(float("nan"), "finite"), (float("inf"), "finite")])
def test_non_finite_bounds_are_refused(value: float, what: str) -> None:
    with refused(what):
        DoubleParam("x", 0, value)


def test_bad_steps_are_refused() -> None:
    with refused("step must be > 0"):
        DoubleParam("x", 0, 1, step=0)
    with refused("step must be >= 1"):
        IntegerParam("n", 0, 10, step=0)
    with refused(
        "on a log scale the step is a factor between neighbouring values and must be > 1"
    ):
        DoubleParam("lr", 1e-4, 1, scale=Scale.LOG, step=0.5)
    for scale in (Scale.LOG, Scale.REVERSE_LOG):  # a factor of 1 never reaches max
        with refused(
            rf"{scale.value} scale .* must be > 1, got 1; use e.g. step: 2 or scale: linear"
        ):
            IntegerParam("n", 1, 64, scale=scale, step=1)


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"": 0.5}, "metric names must be non-empty strings"),
        ({1: 0.5}, "metric names must be non-empty strings"),
        ({"acc": True}, "metric 'acc' must be a number, got True"),
        ({"acc": "0.5"}, "metric 'acc' must be a number, got '0.5'"),
        (
            {"acc": float("nan")},
            r"metric 'acc' is nan; report finite numbers only \(fail the trial instead if "
            r"training diverged\)$",
        ),
        ({"acc": -float("inf")}, "metric 'acc' is -inf; report finite numbers only"),
    ],
    ids=["empty-name", "number-name", "boolean", "string", "nan", "minus-inf"],
)
def test_reported_metrics_must_be_named_finite_numbers(
    metrics: dict[Any, Any], message: str
) -> None:
    with refused(f"^trial 3: {message}"):
        finite_metrics(metrics, where="trial 3")
    assert finite_metrics({"acc": 1, "loss": 0.25}, where="x") == {"acc": 1.0, "loss": 0.25}


def test_fixed_value_must_be_a_scalar() -> None:
    with refused("a fixed value must be a number, string or boolean"):
        FixedParam("f", value=[1, 2])  # type: ignore[arg-type]


def test_default_outside_the_domain_is_refused() -> None:
    with refused("default of parameter 'lr' is not one of its values: .*change the default"):
        DoubleParam("lr", 0.1, 1, default=5)
    with refused("default of parameter 'opt'"):
        CategoricalParam("opt", values=("sgd",), default="adam")


def test_default_equal_to_the_first_value_means_no_default() -> None:
    assert DoubleParam("x", 0, 1, default=0.0) == DoubleParam("x", 0, 1)
    assert CategoricalParam("o", values=("a", "b"), default="a").default is None
    assert BooleanParam("b", default=False).default is None
    assert BooleanParam("b", default="true").default is True
    assert IntegerParam("n", 1, 9, default="4").default == 4
    assert IntegerParam("n", 1, 9, default=4).effective_default == 4
    assert IntegerParam("n", 1, 9).effective_default == 1


# -- conditions -----------------------------------------------------------------------------
def _optimizer() -> CategoricalParam:
    return CategoricalParam("optimizer", values=("sgd", "adam"))


def test_condition_on_an_undeclared_parent_is_refused() -> None:
    child = DoubleParam("momentum", 0, 1, conditions=(Condition("opt", ("sgd",)),))
    with refused("conditional on 'opt', which is not declared; declare the parent or remove"):
        Space((child,))


def test_condition_on_a_double_parent_is_refused() -> None:
    parent = DoubleParam("lr", 0, 1)
    child = IntegerParam("n", 0, 3, conditions=(Condition("lr", (0.5,)),))
    with refused(
        "'n' is conditional on double parameter 'lr'; a parent must be integer, categorical, "
        "discrete, boolean or fixed: make the parent discrete"
    ):
        Space((parent, child))


def test_condition_value_the_parent_cannot_take_is_refused() -> None:
    child = DoubleParam("momentum", 0, 1, conditions=(Condition("optimizer", ("rmsprop",)),))
    with refused("'momentum' is conditional on 'optimizer' taking 'rmsprop', which it cannot"):
        Space((_optimizer(), child))


def test_condition_without_values_is_refused() -> None:
    child = DoubleParam("momentum", 0, 1, conditions=(Condition("optimizer", ()),))
    with refused("the condition on 'optimizer' lists no values"):
        Space((_optimizer(), child))


def test_two_conditions_on_one_parent_are_refused() -> None:
    child = DoubleParam(
        "m", 0, 1, conditions=(Condition("optimizer", ("sgd",)), Condition("optimizer", ("adam",)))
    )
    with refused("two conditions on 'optimizer'; list all the parent values in one condition"):
        Space((_optimizer(), child))


def test_cycle_is_refused() -> None:
    a = CategoricalParam("a", values=("x", "y"), conditions=(Condition("b", ("u",)),))
    b = CategoricalParam("b", values=("u", "v"), conditions=(Condition("a", ("x",)),))
    with refused(r"conditions form a cycle: (a -> b -> a|b -> a -> b); .*remove one"):
        Space((a, b))


def test_self_condition_is_a_cycle() -> None:
    a = CategoricalParam("a", values=("x", "y"), conditions=(Condition("a", ("x",)),))
    with refused("conditions form a cycle: a -> a"):
        Space((a,))


def test_parents_are_put_before_children_and_condition_values_normalised() -> None:
    flag = BooleanParam("flag")
    bs = DiscreteParam("bs", values=(64, 32))
    child = IntegerParam(
        "n", 0, 3, conditions=(Condition("flag", ("true",)), Condition("bs", ("32",)))
    )
    space = Space((child, flag, bs))
    assert space.names == ("flag", "bs", "n")
    assert space["n"].conditions == (Condition("flag", (True,)), Condition("bs", (32,)))
    assert bs.values == (32, 64)


# -- proposed trials ------------------------------------------------------------------------
@pytest.fixture
def space() -> Space:
    return Space(
        (
            DoubleParam("lr", 1e-4, 1e-1, scale=Scale.LOG),
            IntegerParam("units", 8, 512, step=8),
            _optimizer(),
            DoubleParam("momentum", 0, 0.99, conditions=(Condition("optimizer", ("sgd",)),)),
            DiscreteParam("bs", values=(32, 64, 128)),
            BooleanParam("bn"),
            FixedParam("epochs", value=3),
        )
    )


def _trial(**changes: object) -> dict[str, object]:
    trial: dict[str, object] = {
        "lr": 0.01,
        "units": 64,
        "optimizer": "sgd",
        "momentum": 0.9,
        "bs": 64,
        "bn": True,
        "epochs": 3,
    }
    trial.update(changes)
    return {k: v for k, v in trial.items() if v is not None}


def test_a_good_trial_is_normalised(space: Space) -> None:
    got = space.validate(
        _trial(lr="1e-2", units=64.0, momentum="0.9", bs="64", bn="True", epochs="3")
    )
    assert got == _trial()
    assert type(got["units"]) is int and type(got["bs"]) is int and got["bn"] is True


def test_value_outside_range_is_refused(space: Space) -> None:
    with refused(r"parameter 'lr' expects a float in \[0.0001, 0.1\], got 3.0"):
        space.validate(_trial(lr=3.0))
    with refused(r"parameter 'units' expects an integer in \[8, 512\], got 1000"):
        space.validate(_trial(units=1000))
    with refused(r"parameter 'units' expects an integer in \[8, 512\], got 8.5"):
        space.validate(_trial(units=8.5))
    with refused(r"parameter 'units' expects a value on its step grid \(8, 16, 24, ... 512\)"):
        space.validate(_trial(units=9))
    with refused(r"parameter 'optimizer' expects one of \['sgd', 'adam'\], got 'rmsprop'"):
        space.validate(_trial(optimizer="rmsprop"))
    with refused(r"parameter 'bs' expects one of \[32, 64, 128\], got 48"):
        space.validate(_trial(bs=48))
    with refused("parameter 'bn' expects true or false, got 'maybe'"):
        space.validate(_trial(bn="maybe"))
    with refused("parameter 'epochs' is fixed to 3, got 4"):
        space.validate(_trial(epochs=4))
    with refused("parameter 'lr' expects a float"):
        space.validate(_trial(lr=float("nan")))
    with refused("expected a number, got the boolean True"):
        space.validate(_trial(lr=True))


def test_missing_parameter_is_refused(space: Space) -> None:
    trial = _trial()
    del trial["bs"]
    with refused("missing a value for parameter 'bs'"):
        space.validate(trial)


def test_unknown_parameter_is_refused(space: Space) -> None:
    with refused(r"unknown parameter\(s\) \['dropout'\]; the space declares \['lr'"):
        space.validate(_trial(dropout=0.5))


def test_inactive_parameter_is_refused_unless_allowed(space: Space) -> None:
    trial = _trial(optimizer="adam")
    with refused(r"parameter 'momentum' is inactive for these values of \['optimizer'\]; leave"):
        space.validate(trial)
    assert "momentum" not in space.validate(trial, allow_inactive=True)
    del trial["momentum"]
    assert space.validate(trial)["optimizer"] == "adam"


def test_trial_must_be_a_mapping(space: Space) -> None:
    with refused("parameters must be a mapping of name to value"):
        space.validate([("lr", 0.1)])  # type: ignore[arg-type]


def test_stepped_values_follow_keras_tuner(space: Space) -> None:
    assert IntegerParam("m", 2, 32, scale=Scale.LOG, step=2).grid() == (2, 4, 8, 16, 32)
    assert IntegerParam("m", 6, 13, step=3).grid() == (6, 9, 12)
    lr = DoubleParam("lr", 0.001, 10, scale=Scale.LOG, step=10)
    assert lr.grid() == pytest.approx((0.001, 0.01, 0.1, 1, 10))
    assert lr.validate(0.01) == pytest.approx(0.01)
    with refused("expects a value on its step grid"):
        lr.validate(0.02)
    d = DoubleParam("d", 0, 1, step=0.1)
    assert d.grid_size == 11 and d.validate(0.3) == pytest.approx(0.3)
    r = DoubleParam("r", 1, 100, scale=Scale.REVERSE_LOG, step=10)
    assert r.grid() == pytest.approx((1, 91, 100))
    assert IntegerParam("n", 0, 10, step=1) == IntegerParam("n", 0, 10)


def test_sample_is_reproducible_and_honours_conditions(space: Space) -> None:
    a = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    b = [space.sample(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    draws = [space.sample(np.random.default_rng(seed)) for seed in range(200)]
    assert all(("momentum" in d) == (d["optimizer"] == "sgd") for d in draws)
    assert {d["optimizer"] for d in draws} == {"sgd", "adam"}
    lrs = np.array([d["lr"] for d in draws])
    # Log scale: about half the draws fall below the geometric midpoint 1e-2.5.
    assert 0.35 < float(np.mean(lrs < 10**-2.5)) < 0.65


def test_merged_adds_new_parameters_and_refuses_conflicts(space: Space) -> None:
    extra = Space((DoubleParam("dropout", 0, 0.5), DoubleParam("lr", 1e-4, 1e-1, scale="log")))  # type: ignore[arg-type]
    merged = space.merged(extra)
    assert merged.names[-1] == "dropout" and len(merged) == len(space) + 1
    assert (
        space.merged(Space((DoubleParam("lr", 1e-4, 1e-1, scale=Scale.LOG, default=0.01),)))
        == space
    )
    with refused("parameter 'lr' is declared as .* but the update declares .*; rename one"):
        space.merged(Space((DoubleParam("lr", 1e-5, 1e-1),)))


def test_defaults_follow_conditions(space: Space) -> None:
    defaults = space.defaults()
    assert defaults["optimizer"] == "sgd" and "momentum" in defaults
    assert defaults["units"] == 8 and defaults["bn"] is False and defaults["epochs"] == 3
