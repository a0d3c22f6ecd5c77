"""The name -> algorithm table and the traits the oracle schedules by."""

from __future__ import annotations

import numpy as np
import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.search import ALGORITHMS, Observation, get_algorithm, suggest
from hpsearch.space import ALGORITHMS as STUDY_FILE_ALGORITHMS
from hpsearch.space import DoubleParam, Metric, Space, StudyConfig


def test_every_algorithm_a_study_file_may_name_is_in_the_table() -> None:
    assert sorted(ALGORITHMS) == sorted(STUDY_FILE_ALGORITHMS)
    for name in ALGORITHMS:
        assert get_algorithm(name).name == name
        assert get_algorithm(name) is get_algorithm(name)  # one instance serves all studies


def test_an_unknown_algorithm_is_refused_with_the_known_ones() -> None:
    with pytest.raises(InvalidArgumentError, match="bayesian"):
        get_algorithm("hyperopt")


def test_traits_tell_cheap_from_model_based_search() -> None:
    assert not get_algorithm("random").model_based
    assert not get_algorithm("random").uses_history
    assert not get_algorithm("grid").model_based
    assert get_algorithm("bayesian").model_based and get_algorithm("bayesian").uses_history


def test_the_kept_state_of_random_search_is_what_it_would_build_from_the_history() -> None:
    config = StudyConfig(
        name="s",
        metric=Metric("m"),
        space=Space((DoubleParam("x", min=0.0, max=1.0),)),
        algorithm="random",
    )
    done = [Observation({"x": x}, x) for x in (0.1, 0.2, 0.3)]
    algorithm = get_algorithm("random")
    state = algorithm.initial_state()
    for observation in done:
        algorithm.observe(state, observation)
    assert state == algorithm.state_of(done)
    # Given the state, the history itself is not needed: same draws either way.
    from_history = suggest(config, done, [], 4, np.random.default_rng(3))
    from_state = suggest(config, [], [], 4, np.random.default_rng(3), state=state)
    assert from_history == from_state
