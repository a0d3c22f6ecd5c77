"""hpsearch.v1 RecordArtifacts: where an attempt's files are, kept in its trial's tags."""

from __future__ import annotations

import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError

from .conftest import study_yaml


def test_artifacts_are_merged_into_the_tags_of_the_running_attempt(
    chief: Chief, client: Client
) -> None:
    client.create_study(study_yaml("art", budget="{max_trials: 2, parallel_trials: 1}"))
    (trial,) = client.ask("art", "w0")
    client.record_artifacts(
        "art", trial.number, trial.attempt, {"model_dir": "/m/", "log_dir": "gs://b/logs/"}
    )
    client.record_artifacts("art", trial.number, trial.attempt, {"log_dir": "/l/"})
    assert chief.store is not None
    tags = chief.store.get_trial("art", trial.number).tags
    assert tags["model_dir"] == "/m/" and tags["log_dir"] == "/l/"  # merged, last one wins
    # The trial goes on as before: completing it keeps them.
    client.tell("art", trial.number, trial.attempt, value=1.0)
    done = chief.store.get_trial("art", trial.number)
    assert done.value == 1.0 and done.tags["model_dir"] == "/m/"


def test_bad_names_another_attempt_and_unknown_trials_are_refused(
    chief: Chief, client: Client
) -> None:
    client.create_study(study_yaml("refused", budget="{max_trials: 2, parallel_trials: 1}"))
    (trial,) = client.ask("refused", "w0")
    with pytest.raises(InvalidArgumentError, match="must end in _dir, _path or _uri"):
        client.record_artifacts("refused", trial.number, trial.attempt, {"fidelity": "x"})
    with pytest.raises(InvalidArgumentError, match="at least one"):
        client.record_artifacts("refused", trial.number, trial.attempt, {})
    with pytest.raises(FailedPreconditionError, match="at attempt 1; attempt 2"):
        client.record_artifacts("refused", trial.number, trial.attempt + 1, {"model_dir": "/x"})
    with pytest.raises(NotFoundError):
        client.record_artifacts("refused", 99, 1, {"model_dir": "/x"})
    assert chief.store is not None
    tags = chief.store.get_trial("refused", trial.number).tags
    assert not any(key.endswith("_dir") for key in tags)
