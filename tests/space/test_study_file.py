"""The study file: YAML and JSON, the example file, and every file-level error message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import (
    BooleanParam,
    Budget,
    CategoricalParam,
    Condition,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    Goal,
    IntegerParam,
    Measurement,
    Metric,
    Scale,
    Space,
    StudyConfig,
    dump_study,
    dumps_study,
    load_study,
    loads_study,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def refused(match: str):  # type: ignore[no-untyped-def]
    return pytest.raises(InvalidArgumentError, match=match)


def test_example_file_loads() -> None:
    config = load_study(EXAMPLES / "mnist_mlp.yaml")
    assert config.name == "mnist-mlp"
    assert config.metric == Metric("val_accuracy", Goal.MAXIMIZE)
    assert config.space.names == (
        "learning_rate",
        "n_hidden",
        "n_neurons",
        "optimizer",
        "momentum",
    )
    lr = config.space["learning_rate"]
    # Written 1e-4 in the file: PyYAML alone would read the string "1e-4".
    assert lr == DoubleParam("learning_rate", 0.0001, 0.1, scale=Scale.LOG)
    assert config.space["momentum"].conditions == (Condition("optimizer", ("sgd",)),)
    assert config.budget == Budget(max_trials=100, parallel_trials=20, max_failed_trials=10)
    assert config.algorithm == "bayesian" and config.measurement is Measurement.BEST


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.y*ml")) + sorted(EXAMPLES.glob("*.json")))
def test_every_example_file_loads_and_round_trips(path: Path) -> None:
    config = load_study(path)
    assert loads_study(dumps_study(config)) == config
    assert loads_study(dumps_study(config, fmt="json"), fmt="json") == config


def test_yaml_reads_exponent_floats_as_numbers() -> None:
    text = """
name: s
metric: val_loss
parameters:
  lr: {type: double, min: 1e-5, max: 1E-1, scale: log, default: 1e-3}
  wd: {type: discrete, values: [1e-4, 1e-3, 0]}
  f:  {type: fixed, value: 2e3}
  tag: {type: categorical, values: ['1e-4', b]}
"""
    config = loads_study(text)
    assert config.space["lr"] == DoubleParam("lr", 1e-5, 0.1, scale=Scale.LOG, default=1e-3)
    assert config.space["wd"] == DiscreteParam("wd", values=(0, 1e-4, 1e-3))
    assert config.space["f"] == FixedParam("f", value=2000.0)
    assert config.space["tag"] == CategoricalParam("tag", values=("1e-4", "b"))
    # And the quoted string stays a string on the way back out.
    assert loads_study(dumps_study(config)) == config
    assert "'1e-4'" in dumps_study(config)


def test_numeric_strings_are_accepted_for_numbers() -> None:
    data = {
        "name": "s",
        "metric": {"name": "m", "goal": "min"},
        "parameters": {
            "lr": {"type": "double", "min": "1e-4", "max": "0.1"},
            "n": {"type": "integer", "min": "1", "max": "1e2", "step": "3"},
        },
        "budget": {"max_trials": "50", "parallel_trials": 2.0},
    }
    config = loads_study(json.dumps(data), fmt="json")
    assert config.space["lr"] == DoubleParam("lr", 0.0001, 0.1)
    assert config.space["n"] == IntegerParam("n", 1, 100, step=3)
    assert config.budget.max_trials == 50 and config.budget.parallel_trials == 2
    assert config.metric.goal is Goal.MINIMIZE


def test_yaml_and_json_files_round_trip(tmp_path: Path) -> None:
    config = StudyConfig(
        name="all-kinds",
        metric=Metric("val_loss", Goal.MINIMIZE),
        space=Space(
            (
                DoubleParam("lr", 1e-4, 1e-1, scale=Scale.LOG, default=1e-3),
                DoubleParam("m", 0.5, 0.999, scale=Scale.REVERSE_LOG),
                DoubleParam("d", 0, 0.5, step=0.1),
                IntegerParam("units", 2, 256, scale=Scale.LOG, step=2),
                CategoricalParam("opt", values=("sgd", "adam", "true")),
                DiscreteParam("bs", values=(128, 32, 64), ordered=False, default=64),
                BooleanParam("bn", default=True),
                FixedParam("epochs", value=3),
                DoubleParam("momentum", 0, 0.99, conditions=(Condition("opt", ("sgd",)),)),
                IntegerParam("k", 1, 3, conditions=(Condition("bn", (True,)),)),
            )
        ),
        budget=Budget(max_trials=20, parallel_trials=4, max_failed_trials=None, max_attempts=2),
        algorithm="random",
        measurement=Measurement.LAST,
        lease_seconds=30,
        seed=7,
    )
    for name in ("study.yaml", "study.yml", "study.json"):
        path = tmp_path / name
        dump_study(config, path)
        assert load_study(path) == config
    assert json.loads((tmp_path / "study.json").read_text())["parameters"]["bs"] == {
        "type": "discrete",
        "values": [128, 32, 64],
        "ordered": False,
        "default": 64,
    }


def test_empty_parameters_are_valid() -> None:
    config = loads_study("name: kt\nmetric: val_accuracy\nparameters: {}\n")
    assert len(config.space) == 0


# -- errors ---------------------------------------------------------------------------------
BASE = "name: s\nmetric: {name: m, goal: maximize}\n"
P = BASE + "parameters: "


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            P + "{x: {type: float64, min: 0, max: 1}}",
            "parameter 'x': type must be one of double, integer",
        ),
        (P + "{x: {min: 0, max: 1}}", "parameter 'x': type must be one of .*got None"),
        (
            P + "{x: {type: double, min: 0, max: 1, stepp: 2}}",
            r"parameter 'x': unknown key\(s\) \['stepp'\] for type double; allowed:",
        ),
        (P + "{x: {type: double, min: 0}}", "parameter 'x': double needs max"),
        (
            P + "{x: {type: double, min: zero, max: 1}}",
            "parameter 'x' min must be a number, got 'zero'",
        ),
        (
            P + "{x: {type: categorical, values: sgd}}",
            "parameter 'x': categorical needs a list of values",
        ),
        (
            P + "{x: {type: categorical, values: [yes, no]}}",
            "categorical values are strings, got True; quote it",
        ),
        (P + "{x: {type: fixed}}", "parameter 'x': fixed needs a value"),
        (
            P + "{x: {type: discrete, values: [1, 2], ordered: maybe}}",
            "ordered must be true or false",
        ),
        (P + "{x: 3}", "parameter 'x': expected a mapping such as"),
        (
            P + "{x: {type: double, min: 0, max: 1, when: sgd}}",
            "when must map a parent to its values",
        ),
        (
            P + "{x: {type: double, min: 0, max: 1, when: {o: []}}}",
            "the condition on 'o' needs a list of parent values",
        ),
        (P + "[lr]", "parameters must be a mapping of name to spec"),
        (BASE + "colour: blue", r"unknown key\(s\) \['colour'\] in the study file; known keys:"),
        ("metric: m\n", "the study file needs a name"),
        ("name: s\n", "the study file needs a metric"),
        ("name: s\nmetric: {goal: max}", "metric must be a mapping with a name and a goal"),
        (
            "name: s\nmetric: {name: m, goal: up}",
            "metric goal must be maximize or minimize, got 'up'",
        ),
        ("name: 'bad name'\nmetric: m", "study name 'bad name' is not valid"),
        (BASE + "algorithm: annealing", "algorithm 'annealing' is unknown; use one of bayesian"),
        (BASE + "measurement: median", "measurement must be best or last"),
        (BASE + "budget: {max_trials: 0}", r"budget.max_trials must be an integer >= 1, got 0"),
        (
            BASE + "budget: {max_trials: 2.5}",
            r"budget.max_trials must be an integer >= 1, got 2.5",
        ),
        (
            BASE + "budget: {max_failed_trials: -1}",
            "budget.max_failed_trials must be an integer >= 0",
        ),
        (BASE + "budget: {trials: 3}", r"unknown budget key\(s\) \['trials'\]"),
        (BASE + "budget: 5", "budget must be a mapping"),
        (BASE + "lease_seconds: 0.5", "lease_seconds must be between 1 and 86400"),
        (BASE + "lease_seconds: soon", "lease_seconds must be a number"),
        (BASE + "early_stopping: {rule: mean}", "early_stopping.rule must be none or median"),
        (
            BASE + "early_stopping: {rule: median, patience: 3}",
            r"unknown early_stopping key\(s\) \['patience'\]",
        ),
        (
            BASE + "early_stopping: {min_trials: 0}",
            "early_stopping.min_trials must be an integer >= 1",
        ),
        (BASE + "seed: -1", "seed must be an integer >= 0"),
        ("- a\n- b\n", "a study file holds a mapping"),
        ("name: [unclosed", "is not valid YAML"),
    ],
)
def test_file_errors_name_the_problem(text: str, message: str) -> None:
    with refused(message):
        loads_study(text, source="study.yaml")


def test_errors_name_the_source() -> None:
    with refused("^study.yaml: the study file needs a name"):
        loads_study("metric: m\n", source="study.yaml")


def test_invalid_json_is_refused() -> None:
    with refused("<string> is not valid JSON"):
        loads_study("{name: s}", fmt="json")


def test_unknown_format_is_refused() -> None:
    with refused("unknown study file format 'toml'"):
        loads_study("name = 's'", fmt="toml")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with refused("study file .*nope.yaml' does not exist"):
        load_study(tmp_path / "nope.yaml")


def test_unicode_line_breaks_in_values_survive_yaml() -> None:
    # PyYAML folds NEL/LS/PS in plain scalars when emitting Unicode; found by hypothesis.
    from hpsearch.space import CategoricalParam, Metric, Space, StudyConfig, dumps_study

    for value in ("\x85", "\u2028", "a\u2029b", "données"):
        config = StudyConfig(
            name="u", metric=Metric("m"), space=Space((CategoricalParam("c", values=(value,)),))
        )
        assert loads_study(dumps_study(config)) == config
