"""A multi-objective study with a constraint at the chief, through hpsearch.v1 (Client) and
Keras Tuner's service: infeasible trials are stored and shown, and the best trials are the
Pareto front."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import InvalidArgumentError
from hpsearch.protos import keras_tuner_pb2 as kt
from hpsearch.protos import keras_tuner_service_pb2 as svc
from hpsearch.protos import keras_tuner_service_pb2_grpc as svc_grpc
from hpsearch.records import TrialState
from hpsearch.service.keras_tuner import parse_trial_id
from hpsearch.store import Store

STUDY = """\
name: {name}
metrics: [{{name: accuracy, goal: maximize}}, {{name: latency_ms, goal: minimize}}]
constraints: ["memory_gb <= 8"]
parameters:
  lr: {{type: double, min: 0.001, max: 0.1, scale: log}}
budget: {{max_trials: 20, parallel_trials: 8}}
algorithm: random
"""

#: (accuracy, latency_ms, memory_gb) per trial; None: the trial says it is infeasible.
RESULTS: list[tuple[float, float, float] | None] = [
    (0.80, 10.0, 4.0),  # 0: front
    (0.90, 30.0, 6.0),  # 1: front
    (0.85, 35.0, 5.0),  # 2: dominated by 1
    (0.99, 1.0, 9.0),  # 3: beats every trial, but breaks memory_gb <= 8
    None,  # 4: out of memory, nothing reported
    (0.70, 5.0, 2.0),  # 5: front
]
FRONT = [1, 0, 5]  # best first by accuracy


def test_infeasible_trials_are_stored_and_the_best_is_the_front(client: Client) -> None:
    client.create_study(STUDY.format(name="mo"))
    trials = client.ask("mo", "w0", len(RESULTS))
    assert len(trials) == len(RESULTS)
    for trial, result in zip(trials, RESULTS, strict=True):
        if result is None:
            client.tell("mo", trial.number, trial.attempt, infeasible="out of memory")
            continue
        accuracy, latency, memory = result
        done = client.tell(
            "mo",
            trial.number,
            trial.attempt,
            metrics={"accuracy": accuracy, "latency_ms": latency, "memory_gb": memory},
        )
        assert done.value == accuracy  # the first objective
    stored = {t.number: t for t in client.list_trials("mo")}
    assert all(t.state is TrialState.COMPLETED for t in stored.values())
    assert stored[3].infeasible_reason == "memory_gb = 9 breaks memory_gb <= 8"
    assert stored[4].infeasible_reason is not None
    assert stored[4].infeasible_reason.startswith("out of memory")
    assert stored[4].value is None
    assert [t.number for t in stored.values() if t.feasible] == [0, 1, 2, 5]
    assert [t.number for t in client.best("mo", 10)] == FRONT
    assert [t.number for t in client.best("mo", 2)] == FRONT[:2]


def test_a_trial_missing_an_objective_is_refused_and_kept_running(client: Client) -> None:
    client.create_study(STUDY.format(name="mo-missing"))
    (trial,) = client.ask("mo-missing", "w0")
    with pytest.raises(InvalidArgumentError, match="'latency_ms' was not reported"):
        client.tell(
            "mo-missing", trial.number, trial.attempt, metrics={"accuracy": 0.9, "memory_gb": 1}
        )
    assert client.get_trial("mo-missing", trial.number).state is TrialState.RUNNING
    # The objectives not in the final metrics come from the last measurement.
    client.report("mo-missing", trial.number, trial.attempt, 1, {"latency_ms": 9.0})
    client.report("mo-missing", trial.number, trial.attempt, 2, {"latency_ms": 7.0})
    done = client.tell(
        "mo-missing", trial.number, trial.attempt, metrics={"accuracy": 0.9, "memory_gb": 1}
    )
    assert done.metrics["latency_ms"] == 7.0 and done.feasible


@pytest.fixture
def kt_stub(chief_storage: str, tmp_path: Path) -> Iterator[tuple[svc_grpc.OracleStub, str]]:
    study_file = tmp_path / "kt-mo.yaml"
    study_file.write_text(STUDY.format(name="kt-mo"))
    chief = Chief(chief_storage, study=str(study_file), host="127.0.0.1", port=0)
    with chief, grpc.insecure_channel(chief.address) as channel:
        yield svc_grpc.OracleStub(channel), chief.storage


def test_keras_tuner_workers_report_every_objective_and_get_the_front(
    kt_stub: tuple[svc_grpc.OracleStub, str],
) -> None:
    """Stock workers send each epoch's logs (UpdateTrial) and end with a score, which for
    a list of objectives Keras Tuner sums: the chief takes each objective from the last
    epoch instead, and GetBestTrials answers the front."""
    stub, storage = kt_stub
    numbers = []
    for result in RESULTS:
        trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=10).trial
        numbers.append(parse_trial_id(trial.trial_id)[0])
        if result is not None:
            accuracy, latency, memory = result
            for epoch, scale in enumerate((0.5, 1.0)):  # the last epoch's values count
                logs = {
                    "accuracy": accuracy * scale,
                    "latency_ms": latency / scale,
                    "memory_gb": memory,
                }
                stub.UpdateTrial(
                    svc.UpdateTrialRequest(trial_id=trial.trial_id, metrics=logs, step=epoch),
                    timeout=10,
                )
        status = kt.COMPLETED if result is not None else kt.FAILED
        stub.EndTrial(
            svc.EndTrialRequest(
                trial=kt.Trial(
                    trial_id=trial.trial_id, status=status, score=kt.Trial.Score(value=123.0)
                )
            ),
            timeout=10,
        )
    best = stub.GetBestTrials(svc.GetBestTrialsRequest(num_trials=10), timeout=10).trials
    assert [parse_trial_id(t.trial_id)[0] for t in best] == [numbers[i] for i in FRONT]
    store = Store(storage)
    try:
        stored = store.get_trial("kt-mo", numbers[1])
        assert stored.metrics["accuracy"] == pytest.approx(0.90)
        assert stored.metrics["latency_ms"] == pytest.approx(30.0)
        assert not store.get_trial("kt-mo", numbers[3]).feasible
    finally:
        store.close()
