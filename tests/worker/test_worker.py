"""The worker loop against a real chief: trials run as Vertex AI trials, results land in SQL."""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import NotFoundError
from hpsearch.records import AttemptState, MeasurementRecord, TrialState
from hpsearch.worker.discovery import resolve_oracle
from hpsearch.worker.loop import Worker, WorkerOptions

from .conftest import FAKE_TRIAL, make_study


def _options(chief: Chief, study: str, tmp_path: Path, **kw: object) -> WorkerOptions:
    return WorkerOptions(
        oracle=chief.address,
        study=study,
        command=list(FAKE_TRIAL),
        worker_id="w0",
        output_dir=str(tmp_path / "out"),
        gpus=[],
        poll_seconds=0.1,
        stop_grace_seconds=2.0,
        **kw,  # type: ignore[arg-type]
    )


def _runs(tmp_path: Path, study: str, number: int) -> list[dict[str, object]]:
    path = tmp_path / "out" / study / str(number) / "model" / "runs.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_worker_runs_a_study_to_its_budget(chief: Chief, client: Client, tmp_path: Path) -> None:
    study = make_study(client, "runs", max_trials=3)
    outcomes = Worker(_options(chief, study, tmp_path), client).run()
    assert sorted(o.number for o in outcomes) == [0, 1, 2]
    assert chief.store is not None
    trials = chief.store.list_trials(study)
    assert [t.state for t in trials] == [TrialState.COMPLETED] * 3
    for trial in trials:
        x = float(trial.params["x"])
        # best of 3 steps = the last step's value (it grows with the step)
        assert trial.value == pytest.approx(-((x - 0.3) ** 2) + 0.03)
        steps = [m.step for m in chief.store.list_measurements(study, trial.number)]
        assert steps == [1, 2, 3]
        run = _runs(tmp_path, study, trial.number)[0]
        assert run["trial"] == str(trial.number)
        assert run["argv"] == [f"--x={x!r}"]


@pytest.mark.parametrize(("measurement", "bonus"), [("last", 0.02), ("best", 0.03)])
def test_measurement_selects_the_last_or_the_best_report(
    chief: Chief,
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    measurement: str,
    bonus: float,
) -> None:
    """The trial's reports peak mid-run (bonus 0.01, 0.03, 0.02 by step): the last is not
    the best, so each rule gives its own value."""
    monkeypatch.setenv("FAKE_TRIAL_MODE", "peak")
    study = make_study(client, measurement, max_trials=1, measurement=measurement)
    Worker(_options(chief, study, tmp_path), client).run()
    assert chief.store is not None
    (trial,) = chief.store.list_trials(study)
    x = float(trial.params["x"])
    assert trial.value == pytest.approx(-((x - 0.3) ** 2) + bonus, abs=1e-9)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("fail", "exited with status 3"),
        ("nometric", "never reported 'score'"),
        ("nan", "score was nan"),
    ],
)
def test_failures_are_reported_with_their_reason_and_the_worker_goes_on(
    chief: Chief,
    client: Client,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    message: str,
) -> None:
    monkeypatch.setenv("FAKE_TRIAL_MODE", mode)
    study = make_study(client, f"fails-{mode}", max_trials=2, max_attempts=1)
    outcomes = Worker(_options(chief, study, tmp_path), client).run()
    assert len(outcomes) == 2  # the worker went on after the first failure
    assert chief.store is not None
    trials = chief.store.list_trials(study)
    assert [t.state for t in trials] == [TrialState.FAILED, TrialState.FAILED]
    for trial in trials:
        assert trial.failure_message is not None and message in trial.failure_message
    if mode == "fail":  # the tail of the trial's output is the message
        assert "the fake trial was told to fail" in (trials[0].failure_message or "")


def test_gpu_slots_run_trials_side_by_side_on_their_own_devices(
    chief: Chief, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_TRIAL_MODE", "slow")
    monkeypatch.setenv("FAKE_TRIAL_SLEEP", "0.5")
    study = make_study(client, "gpus", max_trials=4, parallel=2)
    options = _options(chief, study, tmp_path, gpus_per_trial=2)
    options.gpus = ["0", "1", "2", "3"]
    Worker(options, client).run()
    assert chief.store is not None
    trials = chief.store.list_trials(study)
    assert [t.state for t in trials] == [TrialState.COMPLETED] * 4
    runs = {t.number: _runs(tmp_path, study, t.number) for t in trials}
    assert {r[0]["cuda"] for r in runs.values()} == {"0,1", "2,3"}
    assert {t.worker_id for t in trials} == {"w0", "w0/1"}
    # the two slots overlapped in time
    spans = sorted((r[0]["t0"], r[1]["end"]) for r in runs.values())
    assert any(b0 < a1 for (_, a1), (b0, _) in itertools.pairwise(spans))


def test_a_killed_worker_loses_its_trial_and_the_retry_resumes_from_the_checkpoint(
    chief: Chief, client: Client, tmp_path: Path
) -> None:
    # A 5 s lease (heartbeats every 1.7 s) and 8 steps of 0.6 s: the worker is killed after
    # two steps with seconds to spare on either side, loaded machine or not.
    study = make_study(client, "killed", max_trials=1, lease_seconds=5)
    env = dict(os.environ, FAKE_TRIAL_MODE="slow", FAKE_TRIAL_SLEEP="0.6", FAKE_TRIAL_STEPS="8")
    cmd = [
        sys.executable,
        "-m",
        "hpsearch",
        "worker",
        "--oracle",
        chief.address,
        "--study",
        study,
        "--worker-id",
        "doomed",
        "--output-dir",
        str(tmp_path / "out"),
        "--gpus-per-trial",
        "0",
        "--",
        *FAKE_TRIAL,
    ]
    doomed = subprocess.Popen(cmd, env=env, start_new_session=True)
    assert chief.store is not None
    try:
        _wait_for(
            lambda: len(_measurements(chief, study, 0)) >= 2,
            60,
            "the first worker never reported two measurements",
        )
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its trial die without a word
        doomed.wait(10)
    cmd[cmd.index("doomed")] = "rescuer"
    rescuer = subprocess.run(cmd, env=env, timeout=120, capture_output=True, text=True)
    assert rescuer.returncode == 0, rescuer.stderr[-2000:]
    (trial,) = chief.store.list_trials(study)
    assert trial.state is TrialState.COMPLETED and trial.attempt == 2
    assert trial.worker_id == "rescuer"
    attempts = chief.store.list_attempts(study, 0)
    assert [(a.attempt, a.state, a.worker_id) for a in attempts] == [
        (1, AttemptState.LOST, "doomed"),
        (2, AttemptState.COMPLETED, "rescuer"),
    ]
    starts = [r["start_step"] for r in _runs(tmp_path, study, 0) if "start_step" in r]
    assert starts[0] == 0 and starts[1] >= 2  # attempt 2 resumed from the checkpoint
    x = float(trial.params["x"])
    assert math.isclose(trial.value or 0.0, -((x - 0.3) ** 2) + 0.08)


def _measurements(chief: Chief, study: str, number: int) -> list[MeasurementRecord]:
    assert chief.store is not None
    try:
        return list(chief.store.list_measurements(study, number))
    except NotFoundError:  # the trial is not created yet
        return []


def _wait_for(condition: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(message)


def test_oracle_address_from_flags_keras_tuner_env_and_vertex_cluster_spec() -> None:
    assert resolve_oracle("chief:9000", {})[0] == "chief:9000"
    assert resolve_oracle("chief", {"KERASTUNER_ORACLE_PORT": "8123"})[0] == "chief:8123"
    env = {
        "KERASTUNER_ORACLE_IP": "10.0.0.5",
        "KERASTUNER_ORACLE_PORT": "8001",
        "KERASTUNER_TUNER_ID": "tuner7",
    }
    assert resolve_oracle(None, env) == ("10.0.0.5:8001", "tuner7")
    assert resolve_oracle("override:1", env) == ("override:1", "tuner7")
    cluster = {
        "cluster": {
            "workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
            "workerpool1": ["w1:2222", "w2:2222"],
        },
        "task": {"type": "workerpool1", "index": 1},
    }
    assert resolve_oracle(None, {"CLUSTER_SPEC": json.dumps(cluster)}) == (
        "cmle-training-workerpool0-ab-0:8000",
        "workerpool1-1",
    )
    tf_config = {
        "cluster": {"chief": ["head:2222"], "worker": ["w:2222"]},
        "task": {"type": "worker", "index": 0},
    }
    assert resolve_oracle(None, {"TF_CONFIG": json.dumps(tf_config)})[0] == "head:8000"


def test_worker_cli_errors_are_one_line(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KERASTUNER_", "CLUSTER_", "TF_CONFIG"))
    }
    result = subprocess.run(
        [sys.executable, "-m", "hpsearch", "worker", "--", "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "where is the chief?" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_command_that_cannot_start_fails_the_trial(
    chief: Chief, client: Client, tmp_path: Path
) -> None:
    study = make_study(client, "nocommand", max_trials=1, max_attempts=1)
    options = _options(chief, study, tmp_path)
    options.command = [str(tmp_path / "no-such-trial-script")]
    Worker(options, client).run()
    assert chief.store is not None
    (trial,) = chief.store.list_trials(study)
    assert trial.state is TrialState.FAILED
    assert "cannot start" in (trial.failure_message or "")
    assert "No such file or directory" in (trial.failure_message or "")


def test_early_stopping_ends_the_trial_process_and_reports_it_stopped(
    chief: Chief, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = make_study(
        client,
        "early",
        max_trials=3,
        early_stopping="{rule: median, min_trials: 2, min_steps: 1}",
    )
    Worker(_options(chief, study, tmp_path, max_trials=2), client).run()
    monkeypatch.setenv("FAKE_TRIAL_MODE", "bad")
    monkeypatch.setenv("FAKE_TRIAL_STEPS", "100")
    monkeypatch.setenv("FAKE_TRIAL_SLEEP", "0.2")
    (outcome,) = Worker(_options(chief, study, tmp_path), client).run()
    assert outcome.state is TrialState.STOPPED
    steps = [m.step for m in _measurements(chief, study, outcome.number)]
    assert steps and max(steps) < 100  # stopped, not run to its 100th step (20 s)
    assert chief.store is not None
    trial = chief.store.get_trial(study, outcome.number)
    assert trial.state is TrialState.STOPPED
    runs = _runs(tmp_path, study, outcome.number)
    assert not any("end" in r for r in runs)  # the process was ended, not finished
