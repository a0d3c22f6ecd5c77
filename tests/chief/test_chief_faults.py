"""Faults against a chief subprocess: SIGKILL and restart mid-study, a worker process killed
mid-trial.  Each test ends by reading the final trials table from SQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hpsearch.client import Client
from hpsearch.errors import StaleAttemptError
from hpsearch.records import AttemptState, TrialState

from .conftest import REPO, ChiefProcess, study_yaml

pytestmark = pytest.mark.slow


def _open_store(url: str):  # type: ignore[no-untyped-def]
    from hpsearch.store import Store

    return Store(url)


def test_chief_killed_and_restarted_mid_study_loses_and_repeats_nothing(
    chief_process: ChiefProcess, tmp_path: Path
) -> None:
    study_file = tmp_path / "restart.yaml"
    study_file.write_text(
        study_yaml("restart", budget="{max_trials: 12, parallel_trials: 3}", lease_seconds=30)
    )
    chief_process.study = str(study_file)
    chief_process.start()
    told: list[tuple[int, int, float, str]] = []
    stale: list[tuple[int, int]] = []
    lock = threading.Lock()
    four_done = threading.Event()

    def worker(wid: str) -> None:
        with Client(chief_process.address, timeout=3.0, wait_seconds=1.0, retry_seconds=60) as c:
            while trials := c.ask("restart", wid):
                trial = trials[0]
                time.sleep(0.2)
                c.heartbeat("restart", trial.number, trial.attempt)
                value = trial.number * 10.0 + trial.params["units"]
                try:
                    c.tell("restart", trial.number, trial.attempt, value=value)
                except StaleAttemptError:
                    with lock:
                        stale.append((trial.number, trial.attempt))
                    continue
                with lock:
                    told.append((trial.number, trial.attempt, value, wid))
                    if len(told) >= 4:
                        four_done.set()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    assert four_done.wait(60), "workers made no progress"
    chief_process.kill()  # SIGKILL: no graceful anything
    time.sleep(0.5)
    chief_process.start()
    for thread in threads:
        thread.join(120)
    assert not any(t.is_alive() for t in threads), "workers did not finish after the restart"

    store = _open_store(chief_process.storage)
    try:
        trials = store.list_trials("restart")
        assert [t.number for t in trials] == list(range(12)), "a trial was lost or duplicated"
        assert all(t.state is TrialState.COMPLETED for t in trials)
        by_number = {number: value for number, _, value, _ in told}
        assert len(by_number) == len(told) == 12, f"a trial was told twice: {told}"
        assert {t.number: t.value for t in trials} == by_number
        assert stale == [], "no lease should have lapsed: nothing may be re-run"
        for trial in trials:
            attempts = store.list_attempts("restart", trial.number)
            assert [a.state for a in attempts] == [AttemptState.COMPLETED], (trial, attempts)
    finally:
        store.close()


def test_worker_killed_mid_trial_is_retried_as_attempt_two(
    chief_process: ChiefProcess, tmp_path: Path
) -> None:
    study_file = tmp_path / "killed.yaml"
    study_file.write_text(
        study_yaml("killed", budget="{max_trials: 2, parallel_trials: 2}", lease_seconds=2)
    )
    chief_process.study = str(study_file)
    chief_process.start()
    script = (
        "import sys, time\n"
        "from hpsearch.client import Client\n"
        "c = Client(sys.argv[1])\n"
        "t = c.ask('killed', 'doomed')[0]\n"
        "c.heartbeat('killed', t.number, t.attempt)\n"
        "print(t.number, t.attempt, flush=True)\n"
        "time.sleep(120)\n"
    )
    doomed = subprocess.Popen(
        [sys.executable, "-c", script, chief_process.address],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert doomed.stdout is not None
        number, attempt = map(int, doomed.stdout.readline().split())
        assert attempt == 1
    finally:
        doomed.kill()
        doomed.wait(10)

    with Client(chief_process.address, timeout=3.0, wait_seconds=1.0) as c:
        seen = []
        while trials := c.ask("killed", "survivor", timeout=30):
            trial = trials[0]
            seen.append((trial.number, trial.attempt))
            c.tell("killed", trial.number, trial.attempt, value=1.0 + trial.number)
        assert (number, 2) in seen, f"the killed worker's trial was not retried: {seen}"
        # The dead attempt's result, late, after the retry completed: acknowledged only.
        late = c.tell("killed", number, 1, value=99.0)
        assert (late.attempt, late.value) == (2, 1.0 + number)

    store = _open_store(chief_process.storage)
    try:
        trials = store.list_trials("killed")
        assert [(t.number, t.state, t.value) for t in trials] == [
            (0, TrialState.COMPLETED, 1.0),
            (1, TrialState.COMPLETED, 2.0),
        ]
        attempts = store.list_attempts("killed", number)
        assert [a.state for a in attempts] == [AttemptState.LOST, AttemptState.COMPLETED]
        assert attempts[0].worker_id == "doomed" and attempts[1].worker_id == "survivor"
    finally:
        store.close()


def test_sigterm_stops_the_chief_gracefully(chief_process: ChiefProcess, tmp_path: Path) -> None:
    study_file = tmp_path / "term.yaml"
    study_file.write_text(study_yaml("term"))
    chief_process.study = str(study_file)
    chief_process.start()
    assert chief_process.terminate() == 0
    assert "chief stopped" in chief_process.log.read_text()
