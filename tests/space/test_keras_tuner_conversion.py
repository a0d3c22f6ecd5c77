"""Keras Tuner config conversion on plain dicts (no Keras Tuner import here)."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

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
    space_from_keras_tuner,
    space_to_keras_tuner,
    values_from_keras_tuner,
    values_to_keras_tuner,
)


def refused(match: str) -> Any:
    return pytest.raises(InvalidArgumentError, match=match)


def parent(name: str, *values: Any) -> dict[str, Any]:
    return {"class_name": "Parent", "config": {"name": name, "values": list(values)}}


# What keras_tuner 1.4.8's HyperParameters.get_config() printed for a space declaring every
# kind (hp.Float(...), hp.Int(...), conditional_scope blocks, ...).
KT_CONFIG: dict[str, Any] = {
    "space": [
        {
            "class_name": "Float",
            "config": {
                "name": "lr",
                "default": 0.0001,
                "conditions": [],
                "min_value": 0.0001,
                "max_value": 0.1,
                "step": None,
                "sampling": "log",
            },
        },
        {
            "class_name": "Float",
            "config": {
                "name": "d",
                "default": 0.0,
                "conditions": [],
                "min_value": 0.0,
                "max_value": 1.0,
                "step": 0.1,
                "sampling": "linear",
            },
        },
        {
            "class_name": "Float",
            "config": {
                "name": "rl",
                "default": 0.9,
                "conditions": [],
                "min_value": 0.5,
                "max_value": 0.999,
                "step": None,
                "sampling": "reverse_log",
            },
        },
        {
            "class_name": "Int",
            "config": {
                "name": "n",
                "default": None,
                "conditions": [],
                "min_value": 1,
                "max_value": 10,
                "step": 1,
                "sampling": "linear",
            },
        },
        {
            "class_name": "Int",
            "config": {
                "name": "m",
                "default": None,
                "conditions": [],
                "min_value": 2,
                "max_value": 32,
                "step": 2,
                "sampling": "log",
            },
        },
        {
            "class_name": "Choice",
            "config": {
                "name": "opt",
                "default": "sgd",
                "conditions": [],
                "values": ["sgd", "adam"],
                "ordered": False,
            },
        },
        {
            "class_name": "Choice",
            "config": {
                "name": "bs",
                "default": 64,
                "conditions": [],
                "values": [128, 32, 64],
                "ordered": False,
            },
        },
        {
            "class_name": "Choice",
            "config": {
                "name": "fl",
                "default": 0.1,
                "conditions": [],
                "values": [0.1, 0.5],
                "ordered": True,
            },
        },
        {"class_name": "Boolean", "config": {"name": "b", "default": False, "conditions": []}},
        {"class_name": "Fixed", "config": {"name": "f", "conditions": [], "value": 3}},
        {
            "class_name": "Float",
            "config": {
                "name": "mom",
                "default": 0.0,
                "conditions": [parent("opt", "sgd")],
                "min_value": 0.0,
                "max_value": 0.99,
                "step": None,
                "sampling": "linear",
            },
        },
        {
            "class_name": "Boolean",
            "config": {"name": "nest", "default": False, "conditions": [parent("opt", "sgd")]},
        },
        {
            "class_name": "Int",
            "config": {
                "name": "k",
                "default": None,
                "conditions": [parent("opt", "sgd"), parent("nest", True)],
                "min_value": 1,
                "max_value": 3,
                "step": 1,
                "sampling": "linear",
            },
        },
        {
            "class_name": "Int",
            "config": {
                "name": "k2",
                "default": None,
                "conditions": [parent("b", True)],
                "min_value": 1,
                "max_value": 3,
                "step": 1,
                "sampling": "linear",
            },
        },
    ],
    "values": {
        "lr": 0.0001,
        "d": 0.0,
        "rl": 0.9,
        "n": 1,
        "m": 2,
        "opt": "sgd",
        "bs": 64,
        "fl": 0.1,
        "b": False,
        "f": 3,
        "mom": 0.0,
        "nest": False,
    },
}


def test_every_kind_maps_to_its_parameter() -> None:
    space = space_from_keras_tuner(KT_CONFIG)
    assert space["lr"] == DoubleParam("lr", 1e-4, 0.1, scale=Scale.LOG)
    assert space["d"] == DoubleParam("d", 0, 1, step=0.1)
    assert space["rl"] == DoubleParam("rl", 0.5, 0.999, scale=Scale.REVERSE_LOG, default=0.9)
    assert space["n"] == IntegerParam("n", 1, 10)
    assert space["m"] == IntegerParam("m", 2, 32, scale=Scale.LOG, step=2)
    assert space["opt"] == CategoricalParam("opt", values=("sgd", "adam"))
    assert space["bs"] == DiscreteParam("bs", values=(128, 32, 64), ordered=False, default=64)
    assert space["fl"] == DiscreteParam("fl", values=(0.1, 0.5))
    assert space["b"] == BooleanParam("b")
    assert space["f"] == FixedParam("f", value=3)
    assert space["mom"].conditions == (Condition("opt", ("sgd",)),)
    assert space["k"].conditions == (Condition("opt", ("sgd",)), Condition("nest", (True,)))


def test_config_round_trips_exactly() -> None:
    original = copy.deepcopy(KT_CONFIG)
    assert space_to_keras_tuner(space_from_keras_tuner(KT_CONFIG)) == original
    assert original == KT_CONFIG  # the input is not modified


def test_bare_space_list_is_accepted() -> None:
    assert space_from_keras_tuner(KT_CONFIG["space"]) == space_from_keras_tuner(KT_CONFIG)


def test_int_default_equal_to_min_is_no_default() -> None:
    entry = copy.deepcopy(KT_CONFIG["space"][3])
    entry["config"]["default"] = 1
    (param,) = space_from_keras_tuner([entry])
    assert param.default is None and param.effective_default == 1


def test_equivalent_declarations_are_converted() -> None:
    space = space_from_keras_tuner(
        [
            {
                "class_name": "Choice",
                "config": {
                    "name": "c",
                    "default": None,
                    "conditions": [],
                    "values": [True, False],
                    "ordered": None,
                },
            },
            {
                "class_name": "Choice",
                "config": {
                    "name": "one",
                    "default": None,
                    "conditions": [],
                    "values": [True],
                    "ordered": None,
                },
            },
            {
                "class_name": "Float",
                "config": {
                    "name": "same",
                    "default": None,
                    "conditions": [],
                    "min_value": 2.0,
                    "max_value": 2.0,
                    "step": None,
                    "sampling": None,
                },
            },
            {
                "class_name": "Choice",
                "config": {
                    "name": "sorted",
                    "default": None,
                    "conditions": [],
                    "values": [64, 32],
                    "ordered": True,
                },
            },
        ]
    )
    assert space["c"] == BooleanParam("c", default=True)
    assert space["one"] == FixedParam("one", value=True)
    assert space["same"] == FixedParam("same", value=2.0)
    # Keras Tuner's default (its first value) survives the sorting.
    assert space["sorted"] == DiscreteParam("sorted", values=(32, 64), default=64)


def test_a_name_declared_under_two_parent_values_becomes_one_parameter() -> None:
    def units(value: str) -> dict[str, Any]:
        return {
            "class_name": "Int",
            "config": {
                "name": "units",
                "default": None,
                "conditions": [parent("model", value)],
                "min_value": 1,
                "max_value": 8,
                "step": 1,
                "sampling": "linear",
            },
        }

    model = {
        "class_name": "Choice",
        "config": {
            "name": "model",
            "default": "a",
            "conditions": [],
            "values": ["a", "b", "c"],
            "ordered": False,
        },
    }
    space = space_from_keras_tuner([model, units("a"), units("b")])
    assert space.names == ("model", "units")
    assert space["units"].conditions == (Condition("model", ("a", "b")),)
    different = units("c")
    different["config"]["max_value"] = 9
    with refused("declares 'units' twice with different domains or conditions"):
        space_from_keras_tuner([model, units("a"), different])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"class_name": "Uniform", "config": {"name": "x"}},
            "unknown Keras Tuner hyperparameter class 'Uniform'",
        ),
        ({"config": {"name": "x"}}, "a mapping with 'class_name' and 'config'"),
        (
            {"class_name": "Float", "config": {"default": 0}},
            "must be a mapping with a string 'name'",
        ),
        (
            {"class_name": "Float", "config": {"name": "x", "max_value": 1}},
            "Keras Tuner Float 'x': min_value is missing",
        ),
        (
            {
                "class_name": "Float",
                "config": {"name": "x", "min_value": 0, "max_value": 1, "sampling": "cubic"},
            },
            "unknown scale 'cubic'",
        ),
        (
            {"class_name": "Float", "config": {"name": "x", "min_value": 2, "max_value": 1}},
            r"min \(2\) must be less than max \(1\)",
        ),
        (
            {"class_name": "Choice", "config": {"name": "x", "values": []}},
            "values must be a non-empty list",
        ),
        (
            {"class_name": "Choice", "config": {"name": "x", "values": ["a", 1]}},
            "values must be all strings, all numbers or all booleans",
        ),
        (
            {"class_name": "Choice", "config": {"name": "x", "values": ["a"], "ordered": True}},
            "ordered must be false for string values",
        ),
        (
            {"class_name": "Fixed", "config": {"name": "x"}},
            "Keras Tuner Fixed 'x': value is missing",
        ),
        (
            {"class_name": "Boolean", "config": {"name": "x", "default": "yes"}},
            "default must be true or false",
        ),
        (
            {
                "class_name": "Boolean",
                "config": {"name": "x", "conditions": [{"class_name": "Sibling", "config": {}}]},
            },
            "only Parent conditions are supported",
        ),
    ],
)
def test_unreadable_entries_are_refused(entry: dict[str, Any], message: str) -> None:
    with refused(message):
        space_from_keras_tuner([entry])


def test_config_without_space_is_refused() -> None:
    with refused("a Keras Tuner config holds a 'space' list"):
        space_from_keras_tuner({"values": {}})


def test_values_are_typed_for_keras_tuner() -> None:
    space = Space(
        (
            IntegerParam("n", 1, 10),
            DoubleParam("lr", 0, 1),
            DiscreteParam("mixed", values=(1, 2.5)),
            BooleanParam("b"),
            DoubleParam("x", 0, 1, conditions=(Condition("b", (True,)),)),
        )
    )
    values = values_to_keras_tuner(space, {"n": 3.0, "lr": 1, "mixed": 1, "b": "false"})
    assert values == {"n": 3, "lr": 1.0, "mixed": 1.0, "b": False}
    assert [type(v) for v in values.values()] == [int, float, float, bool]
    # Keras Tuner's Choice holds one type, and so do the Parent conditions on it.
    child = DoubleParam("y", 0, 1, conditions=(Condition("mixed", (1,)),))
    config = space_to_keras_tuner(Space((*space.parameters, child)))
    mixed = next(e for e in config["space"] if e["config"]["name"] == "mixed")
    assert mixed["config"]["values"] == [1.0, 2.5]
    y = next(e for e in config["space"] if e["config"]["name"] == "y")
    assert y["config"]["conditions"] == [parent("mixed", 1.0)]


def test_values_from_keras_tuner_drop_inactive_and_refuse_unknown() -> None:
    space = space_from_keras_tuner(KT_CONFIG)
    values = dict(KT_CONFIG["values"], opt="adam")
    got = values_from_keras_tuner(space, values)
    assert "mom" not in got and "nest" not in got and got["opt"] == "adam"
    with refused(r"unknown parameter\(s\) \['dropout'\]"):
        values_from_keras_tuner(space, dict(values, dropout=0.1))
    with refused("parameter 'n' expects an integer"):
        values_from_keras_tuner(space, dict(values, n=0))


def test_conversion_module_does_not_import_keras_tuner_or_tensorflow() -> None:
    code = (
        "import sys, hpsearch.space as s; "
        "s.space_to_keras_tuner(s.space_from_keras_tuner({'space': [], 'values': {}})); "
        "print(sorted(m for m in ('keras_tuner', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
