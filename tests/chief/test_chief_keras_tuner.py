"""Keras Tuner's protocol against the chief.

The first tests drive ``keras_tuner.Oracle`` with our generated stubs (no TensorFlow, fast):
holding, duplicate EndTrial, a late EndTrial after the lease lapsed, bad trial ids.  The
interop tests run real stock Keras Tuner workers (``keras_tuner.RandomSearch``) in
subprocesses against a chief subprocess until the chief answers STOPPED.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from hpsearch.chief import Chief
from hpsearch.protos import keras_tuner_pb2 as kt
from hpsearch.protos import keras_tuner_service_pb2 as svc
from hpsearch.protos import keras_tuner_service_pb2_grpc as svc_grpc
from hpsearch.records import AttemptState, TrialState

from .conftest import REPO, ChiefProcess, study_yaml

WORKER = Path(__file__).with_name("kt_worker.py")


def _open_store(url: str):  # type: ignore[no-untyped-def]
    from hpsearch.store import Store

    return Store(url)


@pytest.fixture
def kt_lease() -> float | None:
    """The study's keras_tuner_lease_seconds (None: the default); tests override it."""
    return None


@pytest.fixture
def kt_chief(chief_storage: str, tmp_path: Path, kt_lease: float | None) -> Iterator[Chief]:
    study_file = tmp_path / "ktp.yaml"
    study_file.write_text(
        study_yaml(
            "ktp",
            budget="{max_trials: 2, parallel_trials: 1}",
            metric="{name: val_loss, goal: minimize}",
            lease_seconds=1,
            keras_tuner_lease_seconds=kt_lease,
        )
    )
    chief = Chief(
        chief_storage,
        study=str(study_file),
        host="127.0.0.1",
        port=0,
        hold_seconds=1.0,
        sweep_seconds=0.2,
    )
    with chief:
        yield chief


@pytest.fixture
def stub(kt_chief: Chief) -> Iterator[svc_grpc.OracleStub]:
    with grpc.insecure_channel(kt_chief.address) as channel:
        yield svc_grpc.OracleStub(channel)


def _end(stub: svc_grpc.OracleStub, trial_id: str, status: int = kt.COMPLETED) -> None:
    stub.EndTrial(svc.EndTrialRequest(trial=kt.Trial(trial_id=trial_id, status=status)), timeout=5)


def test_space_and_trial_speak_keras_tuner(stub: svc_grpc.OracleStub) -> None:
    space = stub.GetSpace(svc.GetSpaceRequest(), timeout=5).hyperparameters.space
    assert [f.name for f in space.float_space] == ["lr"]
    assert space.float_space[0].sampling == kt.LOG
    assert [(i.name, i.min_value, i.max_value) for i in space.int_space] == [("units", 4, 16)]
    trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    values = trial.hyperparameters.values.values
    assert trial.status == kt.RUNNING and trial.trial_id == "0"
    assert 4 <= values["units"].int_value <= 16 and 0.001 <= values["lr"].float_value <= 0.1
    got = stub.GetTrial(svc.GetTrialRequest(trial_id="0"), timeout=5).trial
    assert got.hyperparameters.values.values["units"] == values["units"]
    assert "val_loss" not in got.metrics.metrics  # nothing reported yet


def test_update_then_duplicate_end_trial_is_idempotent(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    stub.UpdateTrial(
        svc.UpdateTrialRequest(trial_id=trial.trial_id, metrics={"val_loss": 0.25, "loss": 0.5}),
        timeout=5,
    )
    _end(stub, trial.trial_id)
    _end(stub, trial.trial_id)  # a retried EndTrial changes nothing
    best = stub.GetBestTrials(svc.GetBestTrialsRequest(num_trials=5), timeout=5).trials
    assert [(t.trial_id, round(t.score.value, 6)) for t in best] == [("0", 0.25)]
    store = _open_store(kt_chief.storage)
    try:
        (stored,) = store.list_trials("ktp")
        assert (stored.state, stored.value, stored.attempt) == (TrialState.COMPLETED, 0.25, 1)
    finally:
        store.close()


def _kt_attempts(chief: Chief, number: int) -> list[str]:
    store = _open_store(chief.storage)
    try:
        return [a.state.value for a in store.list_attempts("ktp", number)]
    finally:
        store.close()


def test_a_stock_worker_keeps_its_trial_for_the_keras_tuner_lease(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    """The study's lease_seconds is 1 s; a stock worker's attempt gets the Keras Tuner lease
    (two days by default), since it sends nothing while it trains."""
    trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    store = _open_store(kt_chief.storage)
    try:
        running = store.get_trial("ktp", int(trial.trial_id))
        left = (running.lease_expires_at or 0.0) - store.db_now()
        assert 2 * 86400 - 600 < left <= 2 * 86400, left
        assert store.expire_leases("ktp") == []
    finally:
        store.close()


def _lost_and_retried(stub: svc_grpc.OracleStub) -> kt.Trial:
    """Trial 0 given to "slow", then, once keras_tuner_lease_seconds (1 s) passed, to
    "fast" as attempt 2; returns slow's trial."""
    first = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="slow"), timeout=5).trial
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        retry = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="fast"), timeout=5).trial
        if retry.status == kt.RUNNING:
            assert retry.trial_id == "0.2", retry
            return first
    raise AssertionError("trial 0 was never retried")


@pytest.mark.parametrize("kt_lease", [1.0])
def test_a_late_end_trial_counts_and_the_retry_is_told_nothing_new(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    first = _lost_and_retried(stub)
    # "slow" was alive after all: its result arrives first and counts, without an error.
    stub.UpdateTrial(
        svc.UpdateTrialRequest(trial_id=first.trial_id, metrics={"val_loss": 0.3}), timeout=5
    )
    _end(stub, first.trial_id)
    # The retry's report comes after: acknowledged (no error), not stored.
    stub.UpdateTrial(svc.UpdateTrialRequest(trial_id="0.2", metrics={"val_loss": 0.1}), timeout=5)
    _end(stub, "0.2")
    store = _open_store(kt_chief.storage)
    try:
        (stored,) = store.list_trials("ktp")
        assert (stored.state, stored.attempt, stored.value) == (TrialState.COMPLETED, 1, 0.3)
        assert stored.worker_id == "slow"
        assert [(m.attempt, m.metrics) for m in store.list_measurements("ktp")] == [
            (1, {"val_loss": 0.3})
        ]
    finally:
        store.close()
    assert _kt_attempts(kt_chief, 0) == ["COMPLETED", "STOPPED"]
    best = stub.GetBestTrials(svc.GetBestTrialsRequest(num_trials=5), timeout=5).trials
    assert [(t.trial_id, round(t.score.value, 6)) for t in best] == [("0", 0.3)]


@pytest.mark.parametrize("kt_lease", [1.0])
def test_a_late_end_trial_after_the_retry_completed_is_acknowledged(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    first = _lost_and_retried(stub)
    stub.UpdateTrial(svc.UpdateTrialRequest(trial_id="0.2", metrics={"val_loss": 0.5}), timeout=5)
    _end(stub, "0.2")
    stub.UpdateTrial(
        svc.UpdateTrialRequest(trial_id=first.trial_id, metrics={"val_loss": 0.1}), timeout=5
    )
    _end(stub, first.trial_id)  # no error: Keras Tuner's search() would die on one
    store = _open_store(kt_chief.storage)
    try:
        (stored,) = store.list_trials("ktp")
        assert (stored.state, stored.attempt, stored.value) == (TrialState.COMPLETED, 2, 0.5)
        assert [m.attempt for m in store.list_measurements("ktp")] == [2]
    finally:
        store.close()
    assert _kt_attempts(kt_chief, 0) == ["LOST", "COMPLETED"]


def test_a_stock_worker_asking_again_while_holding_a_trial_has_restarted(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    """Keras Tuner asks for a trial only after ending the last one: a tuner id that asks
    while it holds one restarted, and gets that trial again as the next attempt."""
    first = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    again = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    assert (again.status, again.trial_id) == (kt.RUNNING, "0.2")
    assert again.hyperparameters.values == first.hyperparameters.values
    assert _kt_attempts(kt_chief, 0) == ["LOST", "RUNNING"]
    stub.UpdateTrial(svc.UpdateTrialRequest(trial_id="0.2", metrics={"val_loss": 0.2}), timeout=5)
    _end(stub, "0.2")
    store = _open_store(kt_chief.storage)
    try:
        (stored,) = store.list_trials("ktp")
        assert (stored.state, stored.attempt, stored.value) == (TrialState.COMPLETED, 2, 0.2)
        restarted = store.list_attempts("ktp", 0)[0].failure_message or ""
        assert "w0 asked for a new trial" in restarted and "restarted" in restarted
    finally:
        store.close()


def test_bad_trial_ids_and_nan_objectives(stub: svc_grpc.OracleStub, kt_chief: Chief) -> None:
    for bad in ("abc", "", "-1"):
        with pytest.raises(grpc.RpcError) as info:
            stub.GetTrial(svc.GetTrialRequest(trial_id=bad), timeout=5)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        stub.GetTrial(svc.GetTrialRequest(trial_id="42"), timeout=5)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    stub.UpdateTrial(
        svc.UpdateTrialRequest(trial_id=trial.trial_id, metrics={"val_loss": float("nan")}),
        timeout=5,
    )
    _end(stub, trial.trial_id)  # Keras Tuner semantics: a NaN objective fails the trial
    store = _open_store(kt_chief.storage)
    try:
        (stored,) = store.list_trials("ktp")
        assert stored.state is TrialState.FAILED and "finite" in (stored.failure_message or "")
        assert all(
            all(v == v for v in m.metrics.values()) for m in store.list_measurements("ktp")
        ), "a NaN was stored"
    finally:
        store.close()


def test_finished_study_answers_stopped(stub: svc_grpc.OracleStub) -> None:
    for _ in range(2):
        trial = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
        stub.UpdateTrial(
            svc.UpdateTrialRequest(trial_id=trial.trial_id, metrics={"val_loss": 1.0}), timeout=5
        )
        _end(stub, trial.trial_id)
    done = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    assert done.status == kt.STOPPED


# -- real Keras Tuner workers ---------------------------------------------------------------
needs_keras_tuner = pytest.mark.skipif(
    importlib.util.find_spec("keras_tuner") is None
    or importlib.util.find_spec("tensorboard") is None,
    reason="stock Keras Tuner workers need keras-tuner, tensorflow and tensorboard "
    "(pip install 'hpsearch[tf]')",
)


def _start_worker(
    chief: ChiefProcess,
    i: int,
    tmp_path: Path,
    epochs: int = 1,
    epoch_seconds: float = 0.0,
    tuner: str = "random",
) -> subprocess.Popen[bytes]:
    """A stock Keras Tuner worker ``worker<i>`` (a restart appends to the same log);
    Hyperband workers share one project directory, as Keras Tuner's distributed tuning
    expects."""
    env = dict(
        os.environ,
        KERASTUNER_TUNER_ID=f"worker{i}",
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(chief.port),
        CUDA_VISIBLE_DEVICES="",
        TF_NUM_INTEROP_THREADS="1",
        TF_NUM_INTRAOP_THREADS="1",
    )
    with (tmp_path / f"worker{i}.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(tmp_path / ("kt" if tuner == "hyperband" else f"kt{i}")),
                str(epochs),
                str(epoch_seconds),
                tuner,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _start_workers(
    chief: ChiefProcess, n: int, tmp_path: Path, epochs: int = 1, epoch_seconds: float = 0.0
) -> list[subprocess.Popen[bytes]]:
    return [_start_worker(chief, i, tmp_path, epochs, epoch_seconds) for i in range(n)]


def _logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker*.log")))


@needs_keras_tuner
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("n_workers", [1, 2])
def test_stock_keras_tuner_workers_run_the_study_to_its_budget(
    chief_process: ChiefProcess, tmp_path: Path, n_workers: int
) -> None:
    study_file = tmp_path / "interop.yaml"
    study_file.write_text(
        study_yaml(
            "interop",
            budget=f"{{max_trials: 4, parallel_trials: {n_workers}}}",
            metric="{name: val_loss, goal: minimize}",
            lease_seconds=300,
        )
    )
    chief_process.study = str(study_file)
    chief_process.start()
    workers = _start_workers(chief_process, n_workers, tmp_path)
    try:
        codes = [w.wait(timeout=400) for w in workers]
    finally:
        for w in workers:
            w.kill()
    logs = "\n".join((tmp_path / f"worker{i}.log").read_text() for i in range(n_workers))
    assert codes == [0] * n_workers, logs[-3000:]

    store = _open_store(chief_process.storage)
    try:
        trials = store.list_trials("interop")
        assert [t.number for t in trials] == [0, 1, 2, 3]
        assert all(t.state is TrialState.COMPLETED for t in trials), trials
        assert all(t.value is not None and t.value >= 0 for t in trials)
        assert all(t.attempt == 1 for t in trials)
        workers_seen = {t.worker_id for t in trials}
        assert workers_seen <= {f"worker{i}" for i in range(n_workers)}
        for trial in trials:
            (measurement,) = [m for m in store.list_measurements("interop", trial.number)]
            assert measurement.metrics["val_loss"] == pytest.approx(trial.value)
            assert 4 <= int(trial.params["units"]) <= 16
    finally:
        store.close()


@needs_keras_tuner
@pytest.mark.slow
@pytest.mark.tf
def test_stock_workers_keep_trials_three_times_longer_than_the_lease(
    chief_process: ChiefProcess, tmp_path: Path
) -> None:
    """Keras Tuner sends nothing while a model trains: with the default settings, a trial
    three times longer than the study's lease_seconds still completes as attempt 1."""
    lease = 2
    study_file = tmp_path / "long.yaml"
    study_file.write_text(
        study_yaml(
            "long",
            budget="{max_trials: 4, parallel_trials: 2}",
            metric="{name: val_loss, goal: minimize}",
            lease_seconds=lease,
        )
    )
    chief_process.study = str(study_file)
    chief_process.start()
    workers = _start_workers(chief_process, 2, tmp_path, epochs=3, epoch_seconds=2.2)
    try:
        codes = [w.wait(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert codes == [0, 0], _logs(tmp_path)[-3000:]
    store = _open_store(chief_process.storage)
    try:
        trials = store.list_trials("long")
        assert [(t.number, t.state, t.attempt) for t in trials] == [
            (n, TrialState.COMPLETED, 1) for n in range(4)
        ]
        for trial in trials:
            assert [a.state for a in store.list_attempts("long", trial.number)] == [
                AttemptState.COMPLETED
            ]
            assert trial.completed_at is not None and trial.started_at is not None
            assert trial.completed_at - trial.started_at >= 3 * lease
    finally:
        store.close()


@needs_keras_tuner
@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("restarted", [True, False], ids=["restarted", "not-restarted"])
def test_a_stock_worker_killed_mid_trial_gets_its_trial_rerun_once(
    chief_process: ChiefProcess, tmp_path: Path, restarted: bool
) -> None:
    """SIGKILL a stock worker mid-trial.  Restarted under its tuner id (as a Kubernetes
    Indexed Job replaces its pod), it gives the trial back at once; not restarted, the
    trial goes to another worker when the Keras Tuner lease (15 s here) expires.  A trial
    trains for about 4 s: the live worker's trials stay well within that lease, loaded
    machine or not."""
    study_file = tmp_path / "kill.yaml"
    study_file.write_text(
        study_yaml(
            "kill",
            budget="{max_trials: 4, parallel_trials: 2}",
            metric="{name: val_loss, goal: minimize}",
            lease_seconds=2,
            keras_tuner_lease_seconds=None if restarted else 15,
        )
    )
    chief_process.study = str(study_file)
    chief_process.start()
    workers = _start_workers(chief_process, 2, tmp_path, epochs=2, epoch_seconds=2.0)
    store = _open_store(chief_process.storage)
    try:
        deadline = time.monotonic() + 300
        victim = None
        while victim is None:
            assert time.monotonic() < deadline, _logs(tmp_path)[-3000:]
            running = store.list_trials("kill", states=[TrialState.RUNNING])
            victim = next((t for t in running if t.worker_id == "worker1"), None)
            time.sleep(0.2)
        time.sleep(1.0)  # mid-trial: it trains for about 4 s
        workers[1].kill()
        assert workers[1].wait(30) == -signal.SIGKILL
        if restarted:
            workers[1] = _start_worker(chief_process, 1, tmp_path, epochs=2, epoch_seconds=2.0)
        codes = [w.wait(timeout=600) for w in (workers if restarted else workers[:1])]
        assert codes == [0] * len(codes), _logs(tmp_path)[-3000:]

        trials = store.list_trials("kill")
        assert [t.number for t in trials] == [0, 1, 2, 3]  # no trial number twice
        assert all(t.state is TrialState.COMPLETED for t in trials), trials
        for trial in trials:
            states = [a.state for a in store.list_attempts("kill", trial.number)]
            if trial.number == victim.number:  # re-run exactly once
                assert states == [AttemptState.LOST, AttemptState.COMPLETED]
                assert trial.attempt == 2
            else:
                assert states == [AttemptState.COMPLETED]
    finally:
        store.close()
        for w in workers:
            w.kill()


@needs_keras_tuner
@pytest.mark.slow
@pytest.mark.tf
def test_stock_hyperband_workers_train_the_epochs_the_chief_assigns(
    chief_process: ChiefProcess, tmp_path: Path
) -> None:
    """keras_tuner.Hyperband workers run a hyperband study to STOPPED: each fit trains the
    tuner/epochs the chief sent, from tuner/initial_epoch, loading its parent's weights
    (Keras Tuner fails a promoted trial whose parent checkpoint it cannot load)."""
    study_file = tmp_path / "hb.yaml"
    study_file.write_text(
        study_yaml(
            "hb",
            budget="{max_trials: 100, parallel_trials: 2}",
            metric="{name: val_loss, goal: minimize}",
            algorithm="hyperband",
        )
        + "fidelity: {max_epochs: 9, factor: 3}\n"
    )
    chief_process.study = str(study_file)
    chief_process.start()
    workers = [_start_worker(chief_process, i, tmp_path, tuner="hyperband") for i in range(2)]
    try:
        codes = [w.wait(timeout=600) for w in workers]
    finally:
        for w in workers:
            w.kill()
    logs = _logs(tmp_path)
    assert codes == [0, 0], logs[-3000:]
    store = _open_store(chief_process.storage)
    try:
        trials = store.list_trials("hb")
        assert trials and all(t.state is TrialState.COMPLETED for t in trials), [
            (t.number, t.state, t.failure_message) for t in trials
        ]
        rungs = {t.number: t.fidelity for t in trials}
        assert all(rung is not None for rung in rungs.values())
        assigned = sorted((r.epochs, r.initial_epoch) for r in rungs.values() if r)
        fits = sorted(
            (int(line.split()[1].split("=")[1]), int(line.split()[2].split("=")[1]))
            for line in logs.splitlines()
            if line.startswith("fit epochs=")
        )
        assert fits == assigned  # every trial trained exactly its budget
        promoted = [(t, r) for t in trials if (r := rungs[t.number]) and r.parent is not None]
        assert promoted and all(r.initial_epoch > 0 for _, r in promoted)
        for trial, rung in promoted:
            assert rung.parent is not None and trial.params == trials[rung.parent].params
        assert store.get_study("hb").state.value == "COMPLETED"  # every bracket done
    finally:
        store.close()


def test_update_space_adds_new_parameters_and_refuses_a_bad_one(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    hps = kt.HyperParameters()
    hps.space.choice_space.add(
        name="act", values=[kt.Value(string_value="relu"), kt.Value(string_value="tanh")]
    )
    hps.space.int_space.add(name="units", min_value=1, max_value=999, sampling=kt.LINEAR)
    stub.UpdateSpace(svc.UpdateSpaceRequest(hyperparameters=hps), timeout=5)
    space = stub.GetSpace(svc.GetSpaceRequest(), timeout=5).hyperparameters.space
    assert [c.name for c in space.choice_space] == ["act"]
    units = [(i.min_value, i.max_value) for i in space.int_space if i.name == "units"]
    assert units == [(4, 16)], "an already declared parameter keeps its declaration"

    bad = kt.HyperParameters()
    bad.space.float_space.add(name="wd", min_value=1.0, max_value=0.5, sampling=kt.LINEAR)
    with pytest.raises(grpc.RpcError) as info:
        stub.UpdateSpace(svc.UpdateSpaceRequest(hyperparameters=bad), timeout=5)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "wd" in (info.value.details() or "")
    store = _open_store(kt_chief.storage)
    try:
        assert store.get_study("ktp").config.space.names == ("lr", "units", "act")
    finally:
        store.close()


@pytest.mark.parametrize(
    "example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_example_space_survives_the_keras_tuner_message(example: Path) -> None:
    from hpsearch.service.keras_tuner import hyperparameters_to_proto, space_from_proto
    from hpsearch.space import load_study

    space = load_study(example).space
    back = space_from_proto(hyperparameters_to_proto(space, {}))
    assert {p.name: p for p in back} == {p.name: p for p in space}


def test_invalid_is_retried_and_failed_is_final(
    stub: svc_grpc.OracleStub, kt_chief: Chief
) -> None:
    first = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    _end(stub, first.trial_id, kt.INVALID)  # Keras Tuner: crashed, may be retried
    again = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), timeout=5).trial
    assert (again.status, again.trial_id) == (kt.RUNNING, "0.2")
    assert again.hyperparameters.values == first.hyperparameters.values
    _end(stub, again.trial_id, kt.FAILED)  # no more retries
    store = _open_store(kt_chief.storage)
    try:
        (stored,) = store.list_trials("ktp")
        assert (stored.state, stored.attempt) == (TrialState.FAILED, 2)
        assert "FAILED" in (stored.failure_message or "")
    finally:
        store.close()
