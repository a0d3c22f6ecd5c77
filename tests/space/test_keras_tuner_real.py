"""Round trips against the real keras_tuner.HyperParameters (slow import: Keras, TensorFlow)."""

from __future__ import annotations

import copy
import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from hpsearch.space import (
    Space,
    space_from_keras_tuner,
    space_to_keras_tuner,
    values_from_keras_tuner,
    values_to_keras_tuner,
)

from .strategies import spaces

pytestmark = [pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def kt() -> Any:
    # Imported here, not at collection: importing Keras Tuner imports TensorFlow (~5 s).
    return pytest.importorskip("keras_tuner", reason="needs keras-tuner (the tf extra)")


def kt_round_trip(kt: Any, config: dict[str, Any]) -> dict[str, Any]:
    # from_config rewrites the conditions of the dict it is given: hand it a copy.
    return kt.HyperParameters.from_config(copy.deepcopy(config)).get_config()  # type: ignore[no-any-return]


def declare_every_kind(kt: Any) -> Any:
    hp = kt.HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Float("lr_step", 1e-4, 1e-1, sampling="log", step=10)
    hp.Float("d", 0, 0.5, step=0.1, default=0.2)
    hp.Float("momentum", 0.5, 0.999, sampling="reverse_log", default=0.9)
    hp.Float("rls", 1, 100, sampling="reverse_log", step=3)
    hp.Int("n", 1, 10)
    hp.Int("n_default", 1, 10, default=4)
    hp.Int("m", 2, 32, step=2, sampling="log")
    hp.Int("q", 2, 300, sampling="log")
    hp.Int("units", 32, 512, step=32)
    hp.Choice("opt", ["sgd", "adam", "rmsprop"])
    hp.Choice("bs", [128, 32, 64], ordered=False, default=64)
    hp.Choice("drop", [0.1, 0.25, 0.5], default=0.25)
    hp.Boolean("bn")
    hp.Boolean("bias", default=True)
    hp.Fixed("epochs", 3)
    hp.Fixed("act", "relu")
    hp.Fixed("flag", True)
    hp.Fixed("scale", 0.5)
    with hp.conditional_scope("opt", ["sgd", "rmsprop"]):
        hp.Float("mom", 0, 0.99)
        hp.Boolean("nesterov")
        with hp.conditional_scope("nesterov", [True]):
            hp.Int("k", 1, 3)
    with hp.conditional_scope("bs", [32, 64]):
        hp.Int("accum", 1, 4)
    with hp.conditional_scope("units", [32, 64]):
        hp.Choice("small", ["a", "b"])
    with hp.conditional_scope("epochs", [3]):
        hp.Boolean("warm")
    return hp


def test_every_kind_round_trips_through_keras_tuner(kt: Any) -> None:
    config = declare_every_kind(kt).get_config()
    space = space_from_keras_tuner(config)
    assert len(space) == len(config["space"])
    assert space_to_keras_tuner(space) == config
    assert kt_round_trip(kt, space_to_keras_tuner(space)) == config


def test_explicit_int_default_equal_to_min_keeps_its_meaning(kt: Any) -> None:
    hp = kt.HyperParameters()
    hp.Int("n", 1, 10, default=1)
    ours = kt.HyperParameters.from_config(
        space_to_keras_tuner(space_from_keras_tuner(hp.get_config()))
    )
    assert ours.space[0].default == hp.space[0].default == 1
    assert ours.values == hp.values


def test_keras_tuner_samples_validate_in_the_converted_space(kt: Any) -> None:
    hp = declare_every_kind(kt)
    space = space_from_keras_tuner(hp.get_config())
    for seed in range(200):
        values = sample_like_keras_tuner(hp, seed)
        ours = values_from_keras_tuner(space, values)
        assert_same_values(values_to_keras_tuner(space, ours), values)


def assert_same_values(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal, up to the rounding noise of Keras Tuner's step arithmetic (snapped to the grid)."""
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert type(got[name]) is type(value), name
        if isinstance(value, float):
            assert got[name] == pytest.approx(value, rel=1e-12), name
        else:
            assert got[name] == value, name


def sample_like_keras_tuner(hp: Any, seed: int) -> dict[str, Any]:
    """What Keras Tuner's RandomSearch oracle draws: each active hyperparameter in order."""
    rng = random.Random(seed)
    values: dict[str, Any] = {}
    for param in hp.space:
        if all(c.is_active(values) for c in param.conditions):
            values[param.name] = param.random_sample(rng.randint(0, 2**31))
    return values


@settings(
    max_examples=int(os.environ.get("HPSEARCH_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(space=spaces())
def test_random_spaces_are_a_fixed_point_of_keras_tuner(kt: Any, space: Space) -> None:
    config = space_to_keras_tuner(space)
    assert kt_round_trip(kt, config) == config
    assert space_from_keras_tuner(kt_round_trip(kt, config)) == space
    hp = kt.HyperParameters.from_config(copy.deepcopy(config))
    for seed in range(3):
        values = sample_like_keras_tuner(hp, seed)
        ours = values_from_keras_tuner(space, values)
        assert_same_values(values_to_keras_tuner(space, ours), values)
