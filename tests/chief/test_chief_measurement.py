"""The measurement rule at the chief: when a worker finishes a trial without a value, the
objective is taken from its reported measurements, the ``best`` by the study's goal or the
``last``, through hpsearch.v1 (``tell`` without a value) and through Keras Tuner
(``EndTrial`` without a score).

The curve peaks mid-run and its first, highest, lowest and last values all differ, so
taking the last for the best, the best for the last, the first, or the best by the wrong
goal each gives a value that the test refuses.  Every value is exact in binary (float32
too, as Keras Tuner's metric history carries floats).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.protos import keras_tuner_pb2 as kt
from hpsearch.protos import keras_tuner_service_pb2 as svc
from hpsearch.protos import keras_tuner_service_pb2_grpc as svc_grpc
from hpsearch.records import TrialState
from hpsearch.store import Store

from .conftest import study_yaml

CURVE = [0.5, 0.75, 0.25, 0.625]  # first, highest, lowest, last: all different
EXPECTED = {
    ("best", "maximize"): 0.75,
    ("best", "minimize"): 0.25,
    ("last", "maximize"): 0.625,
    ("last", "minimize"): 0.625,
}
IDS = ["-".join(key) for key in sorted(EXPECTED)]
RULES = pytest.mark.parametrize(("measurement", "goal"), sorted(EXPECTED), ids=IDS)


def _study(name: str, metric: str, measurement: str, goal: str) -> str:
    return study_yaml(
        name, metric=f"{{name: {metric}, goal: {goal}}}", budget="{max_trials: 2}"
    ) + (f"measurement: {measurement}\n")


@RULES
@pytest.mark.parametrize("arrival", ["in-order", "last-step-first"])
def test_tell_without_a_value_takes_the_objective_from_the_measurements(
    client: Client, measurement: str, goal: str, arrival: str
) -> None:
    """'last' is the measurement of the highest step, not the last one to arrive."""
    client.create_study(_study("m", "score", measurement, goal))
    (trial,) = client.ask("m", "w0")
    steps = list(enumerate(CURVE, start=1))
    if arrival == "last-step-first":
        steps = [steps[-1], *steps[:-1]]
    for step, value in steps:
        client.report("m", trial.number, trial.attempt, step, {"score": value})
    done = client.tell("m", trial.number, trial.attempt)
    assert (done.state, done.value) == (TrialState.COMPLETED, EXPECTED[measurement, goal])
    assert client.get_trial("m", trial.number).value == EXPECTED[measurement, goal]


@pytest.fixture
def kt_stub(
    chief_storage: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[svc_grpc.OracleStub, str]]:
    """A chief serving the study ``ktm`` to Keras Tuner workers, and a stub for it."""
    measurement, goal = request.param
    study_file = tmp_path / "ktm.yaml"
    study_file.write_text(_study("ktm", "val_loss", measurement, goal))
    chief = Chief(chief_storage, study=str(study_file), host="127.0.0.1", port=0)
    with chief, grpc.insecure_channel(chief.address) as channel:
        yield svc_grpc.OracleStub(channel), chief.storage


def _stored_value(storage: str, number: int) -> tuple[TrialState, float | None]:
    store = Store(storage)
    try:
        trial = store.get_trial("ktm", number)
        return trial.state, trial.value
    finally:
        store.close()


@pytest.mark.parametrize(
    ("kt_stub", "expected"),
    sorted(EXPECTED.items()),
    indirect=["kt_stub"],
    ids=IDS,
)
def test_keras_tuner_end_trial_without_a_score_takes_it_from_the_updates(
    kt_stub: tuple[svc_grpc.OracleStub, str], expected: float
) -> None:
    stub, storage = kt_stub
    trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=10).trial
    for step, value in enumerate(CURVE, start=1):
        stub.UpdateTrial(
            svc.UpdateTrialRequest(
                trial_id=trial.trial_id, metrics={"val_loss": value}, step=step
            ),
            timeout=10,
        )
    stub.EndTrial(
        svc.EndTrialRequest(trial=kt.Trial(trial_id=trial.trial_id, status=kt.COMPLETED)),
        timeout=10,
    )
    assert _stored_value(storage, int(trial.trial_id)) == (TrialState.COMPLETED, expected)
    (best,) = stub.GetBestTrials(svc.GetBestTrialsRequest(num_trials=1), timeout=10).trials
    assert (best.trial_id, best.score.value) == (trial.trial_id, expected)


@pytest.mark.parametrize(
    ("kt_stub", "expected"),
    [(("best", "maximize"), 0.75), (("best", "minimize"), 0.25)],
    indirect=["kt_stub"],
    ids=["best-maximize", "best-minimize"],
)
def test_keras_tuner_end_trial_with_a_metric_history_takes_its_best_by_the_goal(
    kt_stub: tuple[svc_grpc.OracleStub, str], expected: float
) -> None:
    """A worker that sends its metric history but no score: the best of it, by the goal."""
    stub, storage = kt_stub
    trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=10).trial
    history = kt.MetricHistory(
        observations=[
            kt.MetricObservation(value=[value], step=step)
            for step, value in enumerate(CURVE, start=1)
        ]
    )
    sent = kt.Trial(
        trial_id=trial.trial_id,
        status=kt.COMPLETED,
        metrics=kt.MetricsTracker(metrics={"val_loss": history}),
    )
    stub.EndTrial(svc.EndTrialRequest(trial=sent), timeout=10)
    assert _stored_value(storage, int(trial.trial_id)) == (TrialState.COMPLETED, expected)
