"""``hpsearch.optimize``: trials in this process, through its public Python API, on SQLite and
PostgreSQL; the result read back through the CLI, the dashboard and ``export``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import hpsearch
from hpsearch.cli import main
from hpsearch.errors import AlreadyExistsError, InvalidArgumentError, NotFoundError
from hpsearch.loop import RunningTrial
from hpsearch.records import AttemptState, StudyState, TrialState
from hpsearch.space import (
    Budget,
    DiscreteParam,
    DoubleParam,
    EarlyStopping,
    Goal,
    Measurement,
    Metric,
    Space,
    StudyConfig,
)
from hpsearch.store import Store

STEPS = 8


def _config(name: str = "loop", **overrides: Any) -> StudyConfig:
    values: dict[str, Any] = {
        "name": name,
        "metric": Metric("loss", Goal.MINIMIZE),
        "space": Space((DoubleParam("x", 0.0, 1.0),)),
        "budget": Budget(max_trials=24, parallel_trials=3),
        "algorithm": "random",
        "seed": 7,
    }
    values.update(overrides)
    return StudyConfig(**values)


def _curve(trial: RunningTrial, steps: int = STEPS, pause: float = 0.0) -> float:
    """A learning curve that falls towards ``x``: larger x is worse at every step."""
    loss = float("inf")
    for step in range(1, steps + 1):
        loss = trial.params["x"] + 1.0 / step
        if pause:
            time.sleep(pause)
        if trial.report(step, loss):
            break
    return loss


def test_threads_run_n_trials_and_the_median_rule_stops_the_worse_ones(
    storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def objective(trial: RunningTrial) -> float:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            loss = _curve(trial, pause=0.01)
            # What `hpsearch export` copies: a SavedModel directory under model_dir.
            version = Path(trial.model_dir) / "1"
            version.mkdir(parents=True, exist_ok=True)
            (version / "saved_model.pb").write_text(f"trial {trial.number}")
            return loss
        finally:
            with lock:
                running -= 1

    config = _config(early_stopping=EarlyStopping("median", min_trials=3, min_steps=1))
    output = tmp_path / "out"
    result = hpsearch.optimize(
        objective, config, n_trials=24, n_jobs=3, storage=storage_url, output_dir=output
    )

    assert len(result.trials) == 24 and most >= 2
    assert result.study.state is StudyState.COMPLETED  # budget.max_trials=24 done
    with Store(storage_url) as store:
        trials = store.list_trials("loop")
        measurements = store.list_measurements("loop")
    assert len(trials) == 24 and {t.state for t in trials} <= {
        TrialState.COMPLETED,
        TrialState.STOPPED,
    }
    assert len({t.worker_id for t in trials}) == 3  # one worker id per thread
    steps = {t.number: 0 for t in trials}
    for m in measurements:
        steps[m.trial_number] += 1
    stopped = [t for t in trials if t.state is TrialState.STOPPED]
    completed = [t for t in trials if t.state is TrialState.COMPLETED]
    assert stopped and len(completed) >= 3
    assert all(steps[t.number] < STEPS for t in stopped)
    assert all(steps[t.number] == STEPS for t in completed)
    # A stopped trial keeps the value it reached; the best is a completed one.
    assert all(t.value is not None for t in stopped)
    assert result.best_trial is not None and result.best_trial.state is TrialState.COMPLETED
    assert result.best_value == min(t.value for t in completed if t.value is not None)

    # The CLI, the dashboard and export read the result.
    assert main(["trials", "loop", "--format", "json", "--storage", storage_url]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["state"] for r in rows) == sorted(t.state.value for t in trials)
    serving = tmp_path / "serving"
    assert (
        main(["export", "best", "loop", "--to", str(serving), "--from", str(output),
              "--storage", storage_url])
        == 0
    )  # fmt: skip
    assert json.loads((serving / "1" / "hpsearch.json").read_text())["trial"] == (
        result.best_trial.number
    )
    assert (serving / "1" / "saved_model.pb").read_text() == f"trial {result.best_trial.number}"
    _check_dashboard(storage_url, len(stopped), result.best_trial.number)


def _check_dashboard(storage_url: str, stopped: int, best: int) -> None:
    import urllib.request

    from hpsearch.dashboard import serve_dashboard

    with Store(storage_url) as store:
        server = serve_dashboard(store, "127.0.0.1", 0)
        try:
            with urllib.request.urlopen(
                server.url.rstrip("/") + "/api/studies/loop", timeout=30
            ) as res:
                study = json.loads(res.read())
        finally:
            server.stop()
    assert study["trials"]["STOPPED"] == stopped
    assert study["trials"]["COMPLETED"] + stopped == study["total_trials"] == 24
    assert study["best"]["number"] == best


def test_an_exception_fails_its_trial_and_stops_the_loop_unless_caught(sqlite_url: str) -> None:
    def objective(trial: RunningTrial) -> float:
        if trial.number % 3 == 1:
            raise ValueError(f"bad batch in trial {trial.number}")
        return trial.params["x"]

    with pytest.raises(ValueError, match="bad batch in trial 1"):
        hpsearch.optimize(objective, _config(), n_trials=10, storage=sqlite_url)
    with Store(sqlite_url) as store:
        trials = store.list_trials("loop")
        attempts = store.list_attempts("loop", 1)
    assert [t.state for t in trials] == [TrialState.COMPLETED, TrialState.FAILED]
    assert "ValueError: bad batch in trial 1" in (trials[1].failure_message or "")
    assert "Traceback" in (trials[1].failure_message or "")
    assert [a.state for a in attempts] == [AttemptState.FAILED]  # no retry of a bug

    result = hpsearch.optimize(
        objective, _config(), n_trials=6, storage=sqlite_url, catch=(ValueError,)
    )
    assert len(result.trials) == 6
    states = {t.number: t.state for t in result.trials}
    assert states == {
        n: TrialState.FAILED if n % 3 == 1 else TrialState.COMPLETED for n in range(2, 8)
    }


def test_returned_values_not_numbers_fail_the_trial_and_the_loop_goes_on(
    sqlite_url: str,
) -> None:
    answers: list[Any] = [float("nan"), "0.5", {"accuracy": 0.9}, None, {"loss": 0.25}, 0.5]

    def objective(trial: RunningTrial) -> Any:
        return answers[trial.number]

    result = hpsearch.optimize(objective, _config(), n_trials=len(answers), storage=sqlite_url)
    by_number = {t.number: t for t in result.trials}
    assert [by_number[n].state for n in range(6)] == [TrialState.FAILED] * 4 + [
        TrialState.COMPLETED
    ] * 2
    assert "finite" in (by_number[0].failure_message or "")
    assert "returned '0.5'" in (by_number[1].failure_message or "")
    assert "'loss' was not reported" in (by_number[2].failure_message or "")
    assert "'loss' was not reported" in (by_number[3].failure_message or "")
    assert by_number[4].value == 0.25 and by_number[5].value == 0.5


def test_the_value_of_an_objective_that_returns_none_comes_from_its_reports(
    sqlite_url: str,
) -> None:
    def objective(trial: RunningTrial) -> None:
        for step, loss in enumerate([0.9, 0.3, 0.6], start=1):
            trial.report(step, {"loss": loss, "accuracy": 1 - loss})

    last = _config(measurement=Measurement.LAST)
    result = hpsearch.optimize(objective, last, n_trials=1, storage=sqlite_url)
    best = hpsearch.optimize(objective, _config("best"), n_trials=1, storage=sqlite_url)
    assert result.trials[0].value == 0.6 and best.trials[0].value == 0.3


def test_an_interrupted_trial_is_retried_first_by_the_next_call(sqlite_url: str) -> None:
    def interrupted(trial: RunningTrial) -> float:
        if trial.number == 1:
            raise KeyboardInterrupt
        return trial.params["x"]

    with pytest.raises(KeyboardInterrupt):
        hpsearch.optimize(interrupted, _config(), n_trials=5, storage=sqlite_url)
    with Store(sqlite_url) as store:
        assert [t.state for t in store.list_trials("loop")] == [
            TrialState.COMPLETED,
            TrialState.WAITING,
        ]

    seen: list[tuple[int, int]] = []

    def objective(trial: RunningTrial) -> float:
        seen.append((trial.number, trial.attempt))
        return trial.params["x"]

    hpsearch.optimize(objective, "loop", n_trials=2, storage=sqlite_url)
    assert seen == [(1, 2), (2, 1)]


@pytest.mark.slow
def test_heartbeats_keep_a_quiet_trial_past_its_lease(sqlite_url: str) -> None:
    lease = 3.0

    def objective(trial: RunningTrial) -> float:
        time.sleep(2.5 * lease)  # no report: only the loop's heartbeats renew the lease
        return trial.params["x"]

    result = hpsearch.optimize(
        objective, _config(lease_seconds=lease), n_trials=1, storage=sqlite_url
    )
    with Store(sqlite_url) as store:
        attempts = store.list_attempts("loop", 0)
    assert result.trials[0].state is TrialState.COMPLETED
    assert [a.state for a in attempts] == [AttemptState.COMPLETED]


def test_n_trials_timeout_and_the_budget_bound_the_run(sqlite_url: str) -> None:
    config = _config(budget=Budget(max_trials=5, parallel_trials=2))
    first = hpsearch.optimize(lambda t: t.params["x"], config, n_trials=3, storage=sqlite_url)
    assert len(first.trials) == 3 and first.study.state is StudyState.ACTIVE
    rest = hpsearch.optimize(lambda t: t.params["x"], "loop", n_jobs=2, storage=sqlite_url)
    assert len(rest.trials) == 2 and rest.study.state is StudyState.COMPLETED
    assert hpsearch.optimize(lambda t: 0.0, "loop", storage=sqlite_url).trials == []

    started = time.monotonic()
    timed = hpsearch.optimize(
        lambda t: time.sleep(0.2) or t.params["x"], _config("timed"), timeout=1.0,
        storage=sqlite_url,
    )  # fmt: skip
    assert 1 <= len(timed.trials) < 24 and time.monotonic() - started < 20


def test_the_default_storage_is_the_cli_default_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HPSEARCH_STORAGE", raising=False)
    result = hpsearch.optimize(lambda t: t.params["x"], _config(), n_trials=2)
    assert (tmp_path / "hpsearch.db").is_file() and result.storage.endswith("hpsearch.db")
    assert main(["trials", "loop", "--format", "json"]) == 0  # the CLI's default storage
    assert len(json.loads(capsys.readouterr().out)) == 2


def test_a_study_file_a_name_and_what_is_refused(sqlite_url: str, tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        textwrap.dedent("""\
        name: from-file
        metric: {name: loss, goal: minimize}
        parameters:
          x: {type: double, min: 0, max: 1}
        budget: {max_trials: 10, parallel_trials: 2}
        algorithm: random
        """)
    )
    result = hpsearch.optimize(lambda t: t.params["x"], str(study_file), n_trials=2,
                               storage=sqlite_url)  # fmt: skip
    assert result.study.name == "from-file" and len(result.trials) == 2
    again = hpsearch.optimize(lambda t: t.params["x"], study_file, n_trials=1, storage=sqlite_url)
    assert [t.number for t in again.trials] == [2]  # resumed, not created anew

    changed = study_file.read_text().replace("max_trials: 10", "max_trials: 20")
    study_file.write_text(changed)
    with pytest.raises(AlreadyExistsError, match=r"'max_trials': 10.*stored.*'max_trials': 20"):
        hpsearch.optimize(lambda t: 0.0, study_file, n_trials=1, storage=sqlite_url)
    with pytest.raises(NotFoundError, match=r"no study named 'nope'.*StudyConfig or a study file"):
        hpsearch.optimize(lambda t: 0.0, "nope", storage=sqlite_url)
    with pytest.raises(InvalidArgumentError, match=r"n_jobs=3 .* budget.parallel_trials=2"):
        hpsearch.optimize(lambda t: 0.0, "from-file", n_jobs=3, storage=sqlite_url)
    with pytest.raises(InvalidArgumentError, match="n_trials must be an integer >= 1"):
        hpsearch.optimize(lambda t: 0.0, "from-file", n_trials=0, storage=sqlite_url)
    with pytest.raises(InvalidArgumentError, match="catch takes exception classes"):
        hpsearch.optimize(lambda t: 0.0, "from-file", catch=("ValueError",), storage=sqlite_url)

    def reversed_report(trial: RunningTrial) -> float:
        trial.report(0.5, 1)  # type: ignore[arg-type]  # Optuna's order: value first
        return 0.0

    with pytest.raises(InvalidArgumentError, match=r"step must be a whole number.*comes first"):
        hpsearch.optimize(reversed_report, "from-file", n_trials=1, storage=sqlite_url)


def test_import_hpsearch_stays_cheap() -> None:
    """``import hpsearch`` loads no store, gRPC or TensorFlow; ``hpsearch.optimize`` loads the
    store and the oracle, still no TensorFlow (the Keras callback is a module of its own)."""
    probe = textwrap.dedent("""\
        import sys
        heavy = ("sqlalchemy", "grpc", "numpy", "tensorflow", "keras")
        def loaded():
            return sorted({m.split(".")[0] for m in sys.modules if m.startswith(heavy)})
        import hpsearch
        print(loaded())
        hpsearch.optimize
        print(loaded())
        """)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "[]"
    assert "sqlalchemy" in out[1] and "tensorflow" not in out[1] and "keras" not in out[1]


def test_a_finite_space_once_exhausted_ends_the_call(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(
        space=Space((DiscreteParam("batch", (16.0, 32.0, 64.0)),)), algorithm="grid", seed=None
    )
    result = hpsearch.optimize(
        lambda t: t.params["batch"], config, n_trials=10, storage=sqlite_url
    )
    assert sorted(t.params["batch"] for t in result.trials) == [16, 32, 64]
    assert result.study.state is StudyState.ACTIVE  # max_trials=24 not reached
    assert "the search space is exhausted" in caplog.text
