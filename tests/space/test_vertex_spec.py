"""Vertex AI StudySpec JSON: what maps, what is refused, and the import back."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import (
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
    Scale,
    Space,
    StudyConfig,
    budget_to_vertex,
    load_study,
    parameter_specs_from_vertex,
    parameter_specs_to_vertex,
    space_from_keras_tuner,
    study_spec_to_vertex,
    values_from_vertex,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mnist_mlp.yaml"


def refused(match: str) -> Any:
    return pytest.raises(InvalidArgumentError, match=match)


def specs(*params: Any) -> list[dict[str, Any]]:
    return parameter_specs_to_vertex(Space(tuple(params)))


def test_example_study_spec() -> None:
    assert study_spec_to_vertex(load_study(EXAMPLE)) == {
        "metrics": [{"metricId": "val_accuracy", "goal": "MAXIMIZE"}],
        "parameters": [
            {
                "parameterId": "learning_rate",
                "doubleValueSpec": {"minValue": 0.0001, "maxValue": 0.1},
                "scaleType": "UNIT_LOG_SCALE",
            },
            {
                "parameterId": "n_hidden",
                "integerValueSpec": {"minValue": "0", "maxValue": "10"},
                "scaleType": "UNIT_LINEAR_SCALE",
            },
            {
                "parameterId": "n_neurons",
                "integerValueSpec": {"minValue": "1", "maxValue": "300"},
                "scaleType": "UNIT_LOG_SCALE",
            },
            {
                "parameterId": "optimizer",
                "categoricalValueSpec": {"values": ["sgd", "adam"]},
                "conditionalParameterSpecs": [
                    {
                        "parentCategoricalValues": {"values": ["sgd"]},
                        "parameterSpec": {
                            "parameterId": "momentum",
                            "doubleValueSpec": {"minValue": 0.0, "maxValue": 0.99},
                            "scaleType": "UNIT_LINEAR_SCALE",
                        },
                    }
                ],
            },
        ],
        "algorithm": "ALGORITHM_UNSPECIFIED",
        "measurementSelectionType": "BEST_MEASUREMENT",
    }


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [("bayesian", "ALGORITHM_UNSPECIFIED"), ("grid", "GRID_SEARCH"), ("random", "RANDOM_SEARCH")],
)
def test_algorithms(algorithm: str, expected: str) -> None:
    config = dataclasses.replace(load_study(EXAMPLE), algorithm=algorithm)
    assert study_spec_to_vertex(config)["algorithm"] == expected


def test_goal_measurement_and_median_stopping() -> None:
    config = dataclasses.replace(
        load_study(EXAMPLE),
        metric=Metric("val_loss", Goal.MINIMIZE),
        measurement=Measurement.LAST,
        early_stopping=EarlyStopping(rule="median"),
    )
    spec = study_spec_to_vertex(config)
    assert spec["metrics"] == [{"metricId": "val_loss", "goal": "MINIMIZE"}]
    assert spec["measurementSelectionType"] == "LAST_MEASUREMENT"
    assert spec["medianAutomatedStoppingSpec"] == {"useElapsedDuration": False}


def test_algorithm_vertex_lacks_is_refused() -> None:
    config = dataclasses.replace(load_study(EXAMPLE), algorithm="tpe")
    with refused("Vertex AI has no 'tpe' algorithm; set algorithm to one of bayesian, grid"):
        study_spec_to_vertex(config)


def test_empty_space_is_refused() -> None:
    with refused("declares no parameters and Vertex AI needs at least one"):
        study_spec_to_vertex(StudyConfig(name="kt", metric=Metric("m")))


def test_budget_counts() -> None:
    assert budget_to_vertex(Budget(max_trials=50, parallel_trials=5, max_failed_trials=3)) == {
        "maxTrialCount": 50,
        "parallelTrialCount": 5,
        "maxFailedTrialCount": 3,
    }
    assert "maxFailedTrialCount" not in budget_to_vertex(Budget())


def test_defaults_are_passed_on_only_when_asked() -> None:
    space = Space(
        (
            DoubleParam("lr", 1e-4, 1e-1, scale=Scale.REVERSE_LOG, default=0.01),
            IntegerParam("n", 1, 10, default=4),
            CategoricalParam("opt", values=("sgd", "adam"), default="adam"),
            DiscreteParam("bs", values=(32, 64), default=64),
        )
    )
    # A HyperparameterTuningJob does not take defaultValue (Vertex AI Vizier does).
    assert "defaultValue" not in str(parameter_specs_to_vertex(space))
    (lr, n, opt, bs) = parameter_specs_to_vertex(space, include_defaults=True)
    assert parameter_specs_from_vertex([lr, n, opt, bs]) == space
    assert lr["doubleValueSpec"]["defaultValue"] == 0.01
    assert lr["scaleType"] == "UNIT_REVERSE_LOG_SCALE"
    assert n["integerValueSpec"] == {"minValue": "1", "maxValue": "10", "defaultValue": "4"}
    assert opt["categoricalValueSpec"] == {"values": ["sgd", "adam"], "defaultValue": "adam"}
    assert bs["discreteValueSpec"] == {"values": [32, 64], "defaultValue": 64}


def test_kinds_vertex_lacks_are_translated() -> None:
    space = Space(
        (
            BooleanParam("flag", default=True),
            FixedParam("word", value="relu"),
            FixedParam("num", value=3),
            FixedParam("on", value=True),
            DiscreteParam("bs", values=(128, 32), ordered=False),
        )
    )
    (flag, word, num, on, bs) = parameter_specs_to_vertex(space, include_defaults=True)
    assert flag["categoricalValueSpec"] == {"values": ["false", "true"], "defaultValue": "true"}
    assert word["categoricalValueSpec"] == {"values": ["relu"]}
    assert num["discreteValueSpec"] == {"values": [3]}
    assert on["categoricalValueSpec"] == {"values": ["true"]}
    assert bs["discreteValueSpec"] == {"values": [32, 128]}  # Vertex wants increasing order


def test_stepped_numbers_become_discrete() -> None:
    (d, units, lr) = specs(
        DoubleParam("d", 0, 0.5, step=0.1),
        IntegerParam("units", 32, 128, step=32),
        DoubleParam("lr", 0.001, 10, scale=Scale.LOG, step=10),
    )
    assert d == {
        "parameterId": "d",
        "discreteValueSpec": {"values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]},
        "scaleType": "UNIT_LINEAR_SCALE",
    }
    assert units["discreteValueSpec"] == {"values": [32, 64, 96, 128]}
    assert lr["discreteValueSpec"] == {"values": [0.001, 0.01, 0.1, 1.0, 10.0]}
    assert lr["scaleType"] == "UNIT_LOG_SCALE"


def test_what_vertex_cannot_express_is_refused_with_a_fix() -> None:
    with refused(
        "parameter 'd': with step 1e-05 it has 100001 values and Vertex AI takes at most 1000 "
        "discrete values; raise the step or drop it"
    ):
        specs(DoubleParam("d", 0, 1, step=1e-5))
    with refused("parameter 'n': Vertex AI has no reverse-log scale for integers; use scale: log"):
        specs(IntegerParam("n", 1, 100, scale=Scale.REVERSE_LOG))
    a = CategoricalParam("a", values=("x", "y"))
    b = BooleanParam("b")
    child = IntegerParam("c", 1, 3, conditions=(Condition("a", ("x",)), Condition("b", (True,))))
    with refused("parameter 'c' depends on 'a', 'b', and Vertex AI allows one parent per"):
        specs(a, b, child)


def test_condition_on_a_double_parent_never_reaches_vertex() -> None:
    with refused("conditional on double parameter 'lr'"):
        specs(
            DoubleParam("lr", 0, 1), IntegerParam("n", 0, 2, conditions=(Condition("lr", (1,)),))
        )


def test_parent_values_follow_the_parent_kind() -> None:
    params = (
        IntegerParam("layers", 1, 3),
        IntegerParam("units", 32, 128, step=32),
        DiscreteParam("bs", values=(32, 64.5)),
        BooleanParam("bn"),
        FixedParam("epochs", value=3),
        FixedParam("act", value="relu"),
        DoubleParam("a", 0, 1, conditions=(Condition("layers", (2, 3)),)),
        DoubleParam("b", 0, 1, conditions=(Condition("units", (64,)),)),
        DoubleParam("c", 0, 1, conditions=(Condition("bs", (64.5,)),)),
        DoubleParam("d", 0, 1, conditions=(Condition("bn", (True,)),)),
        DoubleParam("e", 0, 1, conditions=(Condition("epochs", (3,)),)),
        DoubleParam("f", 0, 1, conditions=(Condition("act", ("relu",)),)),
    )
    top = {s["parameterId"]: s for s in specs(*params)}
    assert sorted(top) == ["act", "bn", "bs", "epochs", "layers", "units"]

    def condition(parent: str) -> dict[str, Any]:
        (nested,) = top[parent]["conditionalParameterSpecs"]
        return {k: v for k, v in nested.items() if k != "parameterSpec"}

    assert condition("layers") == {"parentIntValues": {"values": ["2", "3"]}}
    assert condition("units") == {"parentDiscreteValues": {"values": [64]}}
    assert condition("bs") == {"parentDiscreteValues": {"values": [64.5]}}
    assert condition("bn") == {"parentCategoricalValues": {"values": ["true"]}}
    assert condition("epochs") == {"parentDiscreteValues": {"values": [3]}}
    assert condition("act") == {"parentCategoricalValues": {"values": ["relu"]}}


def test_keras_tuner_nested_scopes_nest_under_the_inner_parent() -> None:
    # conditional_scope("opt", ["sgd"]) { Boolean nest; conditional_scope("nest", [True]) { k } }
    space = Space(
        (
            CategoricalParam("opt", values=("sgd", "adam")),
            BooleanParam("nest", conditions=(Condition("opt", ("sgd",)),)),
            IntegerParam(
                "k", 1, 3, conditions=(Condition("opt", ("sgd",)), Condition("nest", (True,)))
            ),
        )
    )
    (opt,) = parameter_specs_to_vertex(space)
    (nest,) = opt["conditionalParameterSpecs"]
    assert nest["parameterSpec"]["parameterId"] == "nest"
    (k,) = nest["parameterSpec"]["conditionalParameterSpecs"]
    assert k["parentCategoricalValues"] == {"values": ["true"]}
    assert k["parameterSpec"]["parameterId"] == "k"
    # Imported back, k depends on its inner parent only (the outer one is implied).
    back = parameter_specs_from_vertex(parameter_specs_to_vertex(space))
    assert back["k"].conditions == (Condition("nest", ("true",)),)


def test_a_space_from_keras_tuner_maps_to_vertex() -> None:
    def choice(name: str, values: list[Any], *conditions: Any) -> dict[str, Any]:
        config = {"name": name, "default": None, "conditions": list(conditions)}
        return {"class_name": "Choice", "config": {**config, "values": values, "ordered": None}}

    parent = {"class_name": "Parent", "config": {"name": "model", "values": ["cnn"]}}
    space = space_from_keras_tuner([choice("model", ["mlp", "cnn"]), choice("k", [3, 5], parent)])
    (model,) = parameter_specs_to_vertex(space)
    assert model["conditionalParameterSpecs"][0]["parameterSpec"]["discreteValueSpec"] == {
        "values": [3, 5]
    }


# -- import -------------------------------------------------------------------------------
def test_import_reads_camel_and_snake_case_and_whole_study_specs() -> None:
    camel = study_spec_to_vertex(load_study(EXAMPLE))
    assert parameter_specs_from_vertex(camel) == load_study(EXAMPLE).space
    snake: list[dict[str, Any]] = [
        {
            "parameter_id": "lr",
            "double_value_spec": {"min_value": 0.001, "max_value": 0.1},
            "scale_type": "UNIT_LOG_SCALE",
        },
        {
            "parameter_id": "bs",
            "discrete_value_spec": {"values": [32.0, 64.0], "default_value": 64.0},
            "conditional_parameter_specs": [
                {
                    "parent_discrete_values": {"values": [64.0]},
                    "parameter_spec": {
                        "parameter_id": "n",
                        "integer_value_spec": {"min_value": "1", "max_value": "4"},
                    },
                }
            ],
        },
    ]
    space = parameter_specs_from_vertex(snake)
    assert space["lr"] == DoubleParam("lr", 0.001, 0.1, scale=Scale.LOG)
    bs = space["bs"]
    assert isinstance(bs, DiscreteParam) and bs.values == (32, 64) and bs.default == 64
    assert all(type(v) is int for v in bs.values)
    assert space["n"] == IntegerParam("n", 1, 4, conditions=(Condition("bs", (64,)),))


def test_import_joins_a_child_repeated_under_several_parent_values() -> None:
    child = {"parameterId": "m", "doubleValueSpec": {"minValue": 0, "maxValue": 1}}
    spec = {
        "parameterId": "opt",
        "categoricalValueSpec": {"values": ["sgd", "rms", "adam"]},
        "conditionalParameterSpecs": [
            {"parentCategoricalValues": {"values": ["sgd"]}, "parameterSpec": child},
            {"parentCategoricalValues": {"values": ["rms"]}, "parameterSpec": child},
        ],
    }
    space = parameter_specs_from_vertex([spec])
    assert space["m"].conditions == (Condition("opt", ("sgd", "rms")),)
    other = dict(child, doubleValueSpec={"minValue": 0, "maxValue": 2})
    spec["conditionalParameterSpecs"][1]["parameterSpec"] = other  # type: ignore[index]
    with refused("Vertex AI parameter 'm' is declared twice with different specs"):
        parameter_specs_from_vertex([spec])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"parameterId": "x"}, "Vertex AI parameter 'x' has no doubleValueSpec"),
        ({"doubleValueSpec": {"minValue": 0, "maxValue": 1}}, "missing 'parameterId'"),
        (
            {"parameterId": "x", "doubleValueSpec": {"minValue": 0}},
            r"min \(0\) must be less than max \(0\)",
        ),
        (
            {"parameterId": "x", "scaleType": "CUBIC", "doubleValueSpec": {}},
            "Vertex AI parameter 'x': unknown scaleType 'CUBIC'",
        ),
        (
            {"parameterId": "x", "discreteValueSpec": {"values": ["big"]}},
            "Vertex AI parameter 'x': expected a number, got 'big'",
        ),
        (
            {
                "parameterId": "x",
                "categoricalValueSpec": {"values": ["a"]},
                "conditionalParameterSpecs": [{"parameterSpec": {"parameterId": "y"}}],
            },
            "a conditional parameter spec under 'x' needs parentIntValues",
        ),
    ],
)
def test_unreadable_specs_are_refused(spec: dict[str, Any], message: str) -> None:
    with refused(message):
        parameter_specs_from_vertex([spec])


def test_values_from_a_vertex_trial() -> None:
    space = Space(
        (
            IntegerParam("n", 1, 10),
            BooleanParam("bn"),
            DoubleParam("d", 0, 0.5, step=0.1),
            FixedParam("flag", value=True),
        )
    )
    got = values_from_vertex(
        space,
        [
            {"parameterId": "n", "value": 3.0},
            {"parameterId": "bn", "value": "true"},
            {"parameterId": "d", "value": 0.3},
            {"parameterId": "flag", "value": "true"},
        ],
    )
    assert got == {"n": 3, "bn": True, "d": pytest.approx(0.3), "flag": True}
    assert type(got["n"]) is int
    with refused("missing a value for parameter 'flag'"):
        values_from_vertex(
            space,
            [
                {"parameterId": "n", "value": 3},
                {"parameterId": "bn", "value": "false"},
                {"parameterId": "d", "value": 0},
            ],
        )


def test_bounds_left_out_by_proto3_json_mean_zero() -> None:
    # Vertex's JSON omits fields at their default, so a range starting at 0 has no minValue.
    from hpsearch.space.vertex import parameter_specs_from_vertex

    space = parameter_specs_from_vertex(
        [
            {"parameterId": "n_hidden", "integerValueSpec": {"maxValue": "10"}},
            {"parameterId": "dropout", "doubleValueSpec": {"maxValue": 0.5}},
            {"parameterId": "shift", "doubleValueSpec": {"minValue": -1.0}},
        ]
    )
    assert (space["n_hidden"].min, space["n_hidden"].max) == (0, 10)  # type: ignore[union-attr]
    assert (space["dropout"].min, space["dropout"].max) == (0.0, 0.5)  # type: ignore[union-attr]
    assert (space["shift"].min, space["shift"].max) == (-1.0, 0.0)  # type: ignore[union-attr]
