"""A study's life cycle through hpsearch.v1 (the Client of an in-process chief), through
Keras Tuner's service, and through the CLI while a chief serves the study: stop and resume,
delete, update, notes and tags, enqueued parameter sets, a changed study file given to the
chief, and warm start.  Both databases."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from hpsearch.chief import Chief
from hpsearch.cli import main
from hpsearch.client import Client
from hpsearch.errors import FailedPreconditionError, InvalidArgumentError, NotFoundError
from hpsearch.oracle import Oracle
from hpsearch.protos import keras_tuner_pb2 as kt
from hpsearch.protos import keras_tuner_service_pb2 as kt_service
from hpsearch.protos import keras_tuner_service_pb2_grpc as kt_grpc
from hpsearch.records import StudyState, Trial, TrialState
from hpsearch.space import loads_study
from hpsearch.store import Store

from .conftest import study_yaml


def _eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``check()`` holds; a chief takes a CLI change at its 5 s resync."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the chief's resync"
        time.sleep(0.2)


def _cli(*argv: str) -> int:
    return main(["--log-level", "WARNING", *argv])


# -- stop and resume -------------------------------------------------------------------------
def test_stop_tells_running_trials_and_workers_then_resume(client: Client) -> None:
    client.create_study(study_yaml("stop-v1", budget="{max_trials: 6, parallel_trials: 3}"))
    (running,) = client.ask("stop-v1", "w0")
    assert not client.heartbeat("stop-v1", running.number, running.attempt).should_stop

    stopped = client.stop_study("stop-v1")
    assert stopped.state is StudyState.STOPPED
    assert client.ask("stop-v1", "w1", timeout=5) == []  # DONE: the worker exits
    beat = client.heartbeat("stop-v1", running.number, running.attempt)
    assert beat.should_stop and "stopped" in beat.reason
    report = client.report("stop-v1", running.number, running.attempt, 1, {"score": 0.1})
    assert report.should_stop
    client.tell("stop-v1", running.number, running.attempt, state="STOPPED")

    assert client.resume_study("stop-v1").state is StudyState.ACTIVE
    (again,) = client.ask("stop-v1", "w1", timeout=10)
    assert again.number == running.number + 1
    assert not client.heartbeat("stop-v1", again.number, again.attempt).should_stop


def test_a_stopped_study_stops_stock_keras_tuner_workers(
    chief_storage: str, tmp_path: Path
) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(study_yaml("stop-kt"))
    with (
        Chief(chief_storage, study=str(path), host="127.0.0.1", port=0) as chief,
        grpc.insecure_channel(chief.address) as channel,
        Client(chief.address) as client,
    ):
        stub = kt_grpc.OracleStub(channel)
        request = kt_service.CreateTrialRequest(tuner_id="kt0")
        first = stub.CreateTrial(request, timeout=5).trial
        assert first.status == kt.RUNNING
        client.stop_study("stop-kt")
        update = kt_service.UpdateTrialRequest(trial_id=first.trial_id, metrics={"score": 0.5})
        assert stub.UpdateTrial(update, timeout=5).trial.status == kt.STOPPED
        request = kt_service.CreateTrialRequest(tuner_id="kt1")
        assert stub.CreateTrial(request, timeout=5).trial.status == kt.STOPPED


def test_a_stop_from_the_cli_reaches_the_running_trials(chief: Chief, client: Client) -> None:
    client.create_study(study_yaml("stop-cli"))
    (trial,) = client.ask("stop-cli", "w0")
    assert _cli("study", "stop", "stop-cli", "--storage", chief.storage) == 0
    _eventually(lambda: client.heartbeat("stop-cli", trial.number, trial.attempt).should_stop)
    assert client.ask("stop-cli", "w1", timeout=5) == []


# -- delete -----------------------------------------------------------------------------------
def test_delete_is_refused_while_trials_run_unless_forced(client: Client) -> None:
    client.create_study(study_yaml("del-v1"))
    (trial,) = client.ask("del-v1", "w0")
    client.report("del-v1", trial.number, trial.attempt, 1, {"score": 0.3})
    with pytest.raises(FailedPreconditionError, match=r"1 running trial.*hpsearch study stop"):
        client.delete_study("del-v1")
    assert client.get_study("del-v1").name == "del-v1"  # nothing deleted
    assert client.delete_study("del-v1", force=True) == 1
    with pytest.raises(NotFoundError):
        client.get_study("del-v1")
    with pytest.raises(NotFoundError):
        client.heartbeat("del-v1", trial.number, trial.attempt)
    # The name is free again: a new study starts from trial 0 with nothing left over.
    client.create_study(study_yaml("del-v1"))
    (fresh,) = client.ask("del-v1", "w0")
    assert fresh.number == 0 and client.list_trials("del-v1")[0].attempt == 1


def test_a_delete_from_the_cli_releases_the_chiefs_workers(chief: Chief, client: Client) -> None:
    client.create_study(study_yaml("del-cli", budget="{max_trials: 4, parallel_trials: 1}"))
    (trial,) = client.ask("del-cli", "w0")
    client.tell("del-cli", trial.number, trial.attempt, value=0.5)
    assert _cli("study", "delete", "del-cli", "--yes", "--storage", chief.storage) == 0
    with pytest.raises(NotFoundError):
        client.get_study("del-cli")

    def released() -> bool:
        try:
            return client.ask("del-cli", "w1", timeout=3) == []
        except NotFoundError:
            return True

    _eventually(released)


# -- update -----------------------------------------------------------------------------------
def _run_out(client: Client, study: str, worker: str = "w0") -> list[int]:
    numbers = []
    while trials := client.ask(study, worker, timeout=15):
        trial = trials[0]
        client.tell(study, trial.number, trial.attempt, value=trial.params["units"] / 16)
        numbers.append(trial.number)
    return numbers


def test_update_extends_a_completed_study_and_changes_parallelism(client: Client) -> None:
    client.create_study(study_yaml("upd-v1", budget="{max_trials: 2, parallel_trials: 1}"))
    assert _run_out(client, "upd-v1") == [0, 1]
    assert client.get_study("upd-v1").state is StudyState.COMPLETED

    study, changes = client.update_study("upd-v1", max_trials=5, parallel_trials=3)
    assert {(c.key, c.old, c.new) for c in changes} == {
        ("budget.max_trials", 2, 5),
        ("budget.parallel_trials", 1, 3),
    }
    assert study.state is StudyState.ACTIVE
    assert study.config.budget.max_trials == 5
    # Three run at once now (it was one), and the study ends at its new budget.
    held = [client.ask("upd-v1", f"p{i}", timeout=10)[0] for i in range(3)]
    assert sorted(t.number for t in held) == [2, 3, 4]
    for trial in held:
        client.tell("upd-v1", trial.number, trial.attempt, value=0.1)
    assert client.ask("upd-v1", "w9", timeout=10) == []
    assert client.get_study("upd-v1").state is StudyState.COMPLETED


def test_update_refuses_unsafe_changes_with_what_to_run(client: Client) -> None:
    client.create_study(study_yaml("upd-no", budget="{max_trials: 3, parallel_trials: 1}"))
    _run_out(client, "upd-no")
    bayesian = study_yaml("upd-no", algorithm="bayesian", budget="{max_trials: 9}")
    with pytest.raises(InvalidArgumentError) as refused:
        client.update_study("upd-no", bayesian)
    message = str(refused.value)
    assert "algorithm: random -> bayesian" in message
    assert "warm_start: {study: upd-no}" in message and "hpsearch study copy" in message
    with pytest.raises(InvalidArgumentError, match="has 3 trials already"):
        client.update_study("upd-no", max_trials=2)
    with pytest.raises(InvalidArgumentError, match="max_trials must be an integer >= 1"):
        client.update_study("upd-no", max_trials=0)
    stored = client.get_study("upd-no")  # nothing changed
    assert stored.config.algorithm == "random" and stored.config.budget.max_trials == 3


def test_an_update_from_the_cli_reaches_the_chief(chief: Chief, client: Client) -> None:
    client.create_study(study_yaml("upd-cli", budget="{max_trials: 1, parallel_trials: 1}"))
    assert _run_out(client, "upd-cli") == [0]
    code = _cli("study", "update", "upd-cli", "--max-trials", "3", "--storage", chief.storage)
    assert code == 0

    got: list[int] = []

    def more() -> bool:
        got.extend(_run_out(client, "upd-cli"))
        return len(got) == 2

    _eventually(more)
    assert got == [1, 2] and client.get_study("upd-cli").state is StudyState.COMPLETED


@contextmanager
def _chief_client(storage: str, study: Path) -> Iterator[Client]:
    """A chief started with ``--study`` FILE, and a client of it."""
    with (
        Chief(storage, study=str(study), host="127.0.0.1", port=0) as chief,
        Client(chief.address, timeout=5, wait_seconds=1) as client,
    ):
        yield client


def test_a_budget_raised_behind_the_chiefs_back_is_not_lost(storage_url: str) -> None:
    """The CLI raises max_trials while the chief's mirror still has the old budget (its
    resync has not run): the trials ending then must not finish the study."""
    with Store(storage_url) as store:
        oracle = Oracle(store, hold_seconds=0.0, resync_seconds=3600.0)  # threads not started
        budget = "{max_trials: 2, parallel_trials: 2}"
        oracle.create_study(loads_study(study_yaml("behind", budget=budget)))
        first = [_ask(oracle, "behind", f"w{i}") for i in range(2)]
        assert (
            _cli("study", "update", "behind", "--max-trials", "4", "--storage", storage_url) == 0
        )
        for trial in first:
            oracle.complete("behind", trial.number, trial.attempt, value=0.5)
        assert store.get_study("behind").state is StudyState.ACTIVE
        more = [_ask(oracle, "behind", f"w{i}") for i in range(2)]
        assert [t.number for t in more] == [2, 3]


def _ask(oracle: Oracle, study: str, worker: str) -> Trial:
    """One trial from an oracle whose suggester thread is not running."""
    for _ in range(10):
        answer = oracle.ask(study, worker, wait=0.0)
        if answer.trials:
            return answer.trials[0]
        oracle.refill(study)
    raise AssertionError(f"no trial for {worker}: {answer.status}")


def test_a_changed_study_file_for_the_chief(chief_storage: str, tmp_path: Path) -> None:
    """`hpsearch chief --study FILE` applies the file's safe changes to the stored study,
    and refuses to start on an unsafe one, saying what to do."""
    path = tmp_path / "study.yaml"
    path.write_text(study_yaml("file-study", budget="{max_trials: 2, parallel_trials: 1}"))
    with _chief_client(chief_storage, path) as client:
        assert _run_out(client, "file-study") == [0, 1]
    path.write_text(study_yaml("file-study", budget="{max_trials: 4, parallel_trials: 1}"))
    with _chief_client(chief_storage, path) as client:
        assert client.get_study("file-study").state is StudyState.ACTIVE
        assert _run_out(client, "file-study") == [2, 3]
    path.write_text(study_yaml("file-study", budget="{max_trials: 4}", metric="loss"))
    with pytest.raises(InvalidArgumentError) as refused:
        Chief(chief_storage, study=str(path), host="127.0.0.1", port=0).start()
    assert str(path) in str(refused.value)
    assert "metric" in str(refused.value) and "warm_start" in str(refused.value)


# -- notes and tags ---------------------------------------------------------------------------
def test_notes_and_tags_on_studies_and_trials(client: Client) -> None:
    client.create_study(study_yaml("notes"))
    (trial,) = client.ask("notes", "w0")
    written = client.annotate("notes", note="baseline\nlr sweep", tags={"owner": "ana"})
    assert (written.note, written.tags) == ("baseline\nlr sweep", {"owner": "ana"})
    more = client.annotate("notes", tags={"team": "vision"}, remove_tags=["owner"])
    assert more.note == "baseline\nlr sweep" and more.tags == {"team": "vision"}
    study = client.get_study("notes")
    assert study.note == "baseline\nlr sweep" and study.user_tags == {"team": "vision"}

    on_trial = client.annotate("notes", trial.number, note="diverged", tags={"seen": "yes"})
    assert on_trial.note == "diverged" and on_trial.tags == {"seen": "yes"}
    stored = client.get_trial("notes", trial.number)
    assert stored.note == "diverged" and stored.user_tags == {"seen": "yes"}
    # A note on a running trial changes neither its run nor its result.
    done = client.tell("notes", trial.number, trial.attempt, value=0.7)
    assert done.state is TrialState.COMPLETED and done.note == "diverged"
    cleared = client.annotate("notes", trial.number, note="")
    assert cleared.note is None and cleared.tags == {"seen": "yes"}
    with pytest.raises(InvalidArgumentError, match=r"without '='"):
        client.annotate("notes", tags={"a=b": "c"})
    with pytest.raises(NotFoundError):
        client.annotate("notes", 99, note="x")


# -- enqueued parameter sets ------------------------------------------------------------------
def test_enqueued_parameter_sets_run_first_in_order(client: Client) -> None:
    client.create_study(
        study_yaml("enq", algorithm="bayesian", budget="{max_trials: 6, parallel_trials: 2}")
    )
    (suggested,) = client.ask("enq", "w0")  # the search is under way: suggestions ready
    known = [{"lr": 0.05, "units": 16}, {"lr": 0.002, "units": 5}, {"lr": 0.01, "units": 8}]
    queued = client.enqueue("enq", known)
    assert [t.state for t in queued] == [TrialState.WAITING] * 3
    assert [t.number for t in queued] == [1, 2, 3]
    client.tell("enq", suggested.number, suggested.attempt, value=0.1)
    handed = []
    for _ in range(3):
        (trial,) = client.ask("enq", "w1", timeout=10)
        handed.append(trial.params)
        client.tell("enq", trial.number, trial.attempt, value=0.2)
    assert handed == known
    with pytest.raises(InvalidArgumentError, match=r"parameter set 1.*units"):
        client.enqueue("enq", [{"lr": 0.01, "units": 99}])
    with pytest.raises(InvalidArgumentError, match="room for 2 more trials"):
        client.enqueue("enq", [{"lr": 0.01, "units": 8}] * 3)
    assert len(client.list_trials("enq")) == 4  # nothing queued by the refused calls


# -- warm start --------------------------------------------------------------------------------
WARM_SPACE = """\
metric: {name: score, goal: maximize}
parameters:
  x: {type: double, min: 0.0, max: 1.0}
  y: {type: double, min: 0.0, max: 1.0}
algorithm: bayesian
seed: 7
"""


def _score(params: dict[str, object]) -> float:
    x, y = float(params["x"]), float(params["y"])  # type: ignore[arg-type]
    return -((x - 0.85) ** 2) - (y - 0.15) ** 2


def test_a_warm_started_study_searches_from_the_other_studys_results(client: Client) -> None:
    """The GP takes the other study's trials as history: a warm study's first suggestions
    come from the model near their optimum, a cold one's from its space-filling design."""
    client.create_study("name: source\nbudget: {max_trials: 12}\n" + WARM_SPACE)
    grid = [{"x": i / 3, "y": j / 3} for i in range(4) for j in range(3)]
    client.enqueue("source", grid)
    for _ in grid:
        (trial,) = client.ask("source", "w0")
        client.tell("source", trial.number, trial.attempt, value=_score(trial.params))
    with pytest.raises(InvalidArgumentError, match="not a study of this database"):
        client.create_study("name: lost\nwarm_start: {study: nope}\n" + WARM_SPACE)

    first: dict[str, list[float]] = {}
    for name, extra in (("cold", ""), ("warm", "warm_start: {study: source}\n")):
        client.create_study(f"name: {name}\nbudget: {{max_trials: 3}}\n{extra}{WARM_SPACE}")
        first[name] = []
        for _ in range(3):
            (trial,) = client.ask(name, "w0", timeout=30)
            first[name].append(_score(trial.params))
            client.tell(name, trial.number, trial.attempt, value=_score(trial.params))
    # The source's trials are history, not trials of the warm study.
    assert [t.number for t in client.list_trials("warm")] == [0, 1, 2]
    best_of_source = max(_score(p) for p in grid)
    assert max(first["warm"]) > best_of_source  # the model improved on what it was given
    assert sum(first["warm"]) > sum(first["cold"])
