"""Property tests over random valid spaces and study configs."""

from __future__ import annotations

import math
import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import (
    DoubleParam,
    Space,
    StudyConfig,
    dumps_study,
    loads_study,
    parameter_specs_from_vertex,
    parameter_specs_to_vertex,
    space_from_keras_tuner,
    space_to_keras_tuner,
    study_spec_to_vertex,
)

from .strategies import spaces, study_configs

# Moderate by default so the file runs in seconds; raise for a thorough run:
# HPSEARCH_HYPOTHESIS_EXAMPLES=2000 pytest tests/space
FAST = settings(
    max_examples=int(os.environ.get("HPSEARCH_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
units = st.floats(0.0, 1.0, allow_nan=False)


@FAST
@given(space=spaces(), seed=st.integers(0, 2**32 - 1))
def test_validate_returns_every_sample_unchanged(space: Space, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(5):
        sample = space.sample(rng)
        assert space.validate(sample) == sample
        assert set(sample) == set(space.active_names(sample))


@FAST
@given(config=study_configs())
def test_study_file_round_trip_yaml(config: StudyConfig) -> None:
    assert loads_study(dumps_study(config)) == config


@FAST
@given(config=study_configs())
def test_study_file_round_trip_json(config: StudyConfig) -> None:
    assert loads_study(dumps_study(config, fmt="json"), fmt="json") == config


@FAST
@given(space=spaces())
def test_keras_tuner_round_trip(space: Space) -> None:
    config = space_to_keras_tuner(space)
    assert space_from_keras_tuner(config) == space
    # The values a fresh Keras Tuner HyperParameters holds: the active defaults.
    assert set(config["values"]) == set(space.defaults())


@FAST
@given(space=spaces(), data=st.data())
def test_from_unit_of_any_point_validates(space: Space, data: st.DataObject) -> None:
    corners = data.draw(st.sampled_from(["random", "zeros", "ones"]))
    if corners == "random":
        us = [data.draw(units) for _ in space.names]
    else:
        us = [0.0 if corners == "zeros" else 1.0] * len(space)
    params = space.from_unit(us)
    assert space.validate(params) == params


@FAST
@given(space=spaces(), data=st.data())
def test_to_unit_from_unit_round_trip(space: Space, data: st.DataObject) -> None:
    for param in space:
        u = data.draw(units)
        value = param.from_unit(u)
        back = param.from_unit(param.to_unit(value))
        if isinstance(param, DoubleParam) and param.step is None:
            tolerance = 1e-9 * (param.max - param.min)
            assert math.isclose(float(back), float(value), rel_tol=1e-7, abs_tol=tolerance)
            assert abs(param.to_unit(value) - u) < 1e-6
        else:
            assert back == value
            assert type(back) is type(value)
        assert 0.0 <= param.to_unit(value) <= 1.0
    # The space-level coordinates decode back to the same assignment.
    params = space.sample(np.random.default_rng(data.draw(st.integers(0, 1000))))
    coords = space.to_unit(params)
    assert [c is None for c in coords] == [p.name not in params for p in space]
    decoded = space.from_unit([0.5 if c is None else c for c in coords])
    assert decoded.keys() == params.keys()
    for name, value in params.items():
        param = space[name]
        if isinstance(param, DoubleParam) and param.step is None:
            tolerance = 1e-9 * (param.max - param.min)
            got = float(decoded[name])
            assert math.isclose(got, float(value), rel_tol=1e-7, abs_tol=tolerance)
        else:
            assert decoded[name] == value


@FAST
@given(space=spaces(vertex_exact=True, max_size=5).filter(lambda s: len(s) > 0))
def test_vertex_round_trip_of_what_vertex_can_express(space: Space) -> None:
    back = parameter_specs_from_vertex(parameter_specs_to_vertex(space, include_defaults=True))
    # Vertex nests children under parents, so only the order may differ.
    assert sorted(back.names) == sorted(space.names)
    for param in space:
        assert back[param.name] == param


@FAST
@given(config=study_configs())
def test_vertex_spec_is_built_or_refused_cleanly(config: StudyConfig) -> None:
    try:
        spec = study_spec_to_vertex(config)
    except InvalidArgumentError as exc:
        assert str(exc)
        return
    seen: list[str] = []

    def walk(specs: list[dict]) -> None:  # type: ignore[type-arg]
        for item in specs:
            seen.append(item["parameterId"])
            kinds = [k for k in item if k.endswith("ValueSpec")]
            assert len(kinds) == 1
            if kinds[0] == "integerValueSpec":
                assert isinstance(item["integerValueSpec"]["minValue"], str)
            for child in item.get("conditionalParameterSpecs", []):
                assert len([k for k in child if k.startswith("parent")]) == 1
                walk([child["parameterSpec"]])

    walk(spec["parameters"])
    assert sorted(seen) == sorted(config.space.names)
