"""Faults against a chief subprocess: SIGKILL and restart mid-study (with --takeover, and
waiting for the dead chief's lease as a supervisor's restart does), no process left behind by
a killed chief, a worker process killed mid-trial.  Each test ends by reading the final
trials table from SQL."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hpsearch.client import Client
from hpsearch.errors import StaleAttemptError
from hpsearch.records import AttemptState, TrialState

from . import faultkit
from .conftest import REPO, ChiefProcess, free_port, study_yaml

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


def test_sigterm_delivered_to_another_thread_stops_the_chief(
    chief_process: ChiefProcess, tmp_path: Path
) -> None:
    """The kernel may hand a process's SIGTERM to any of its threads (gRPC runs a dozen).
    Python runs the handler on the main thread once it wakes: a chief whose main thread
    slept in an untimed wait ignored that SIGTERM for good (seen as a flaky timeout of the
    test above under load; reproduced every time by sending the signal to a gRPC thread)."""
    study_file = tmp_path / "term.yaml"
    study_file.write_text(study_yaml("term"))
    chief_process.study = str(study_file)
    chief_process.start()
    assert chief_process.proc is not None
    pid = chief_process.proc.pid
    others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert others, "the chief runs gRPC threads besides its main thread"
    faultkit.signal_thread(pid, others[-1], signal.SIGTERM)
    assert chief_process.proc.wait(30) == 0
    assert "chief stopped" in chief_process.log.read_text()


LEASE = 3.0  # the chief lease of these tests: a crashed chief's expires within 3 s


def test_a_restarted_chief_waits_for_the_crashed_chiefs_lease_then_serves(
    chief_storage: str, tmp_path: Path
) -> None:
    """The same command, no --takeover, no human: while the first chief lives the second
    stands by (not serving, not exiting); once the first is SIGKILLed the second serves
    within the lease (its last renewal was at most a third of it before the kill)."""
    study_file = tmp_path / "standby.yaml"
    study_file.write_text(study_yaml("standby", budget="{max_trials: 6, parallel_trials: 2}"))
    args = ("--chief-lease-seconds", str(LEASE), "--hold-seconds", "1", "--study", str(study_file))
    port = free_port()
    first = faultkit.Chief(chief_storage, port, tmp_path / "first.log", *args)
    first.start()
    with Client(first.address, timeout=3.0, wait_seconds=1.0, retry_seconds=60) as c:
        done = c.ask("standby", "w0")[0]
        c.tell("standby", done.number, done.attempt, value=1.0)
        held = c.ask("standby", "w1")[0]  # left RUNNING by the crash

    second = faultkit.Chief(chief_storage, port, tmp_path / "second.log", *args)
    proc = second.spawn()
    try:
        time.sleep(2.5 * LEASE)  # several renewals of the live chief's lease
        assert proc.poll() is None, f"the standby chief exited: {second.tail()}"
        assert faultkit.serving(first.address), "the live chief stopped serving"
        log = second.log.read_text()
        assert log.count(faultkit.WAITING_LINE) == 1, log
        assert re.search(r"expires in \d+\.\ds", log), log

        first.kill()
        killed = time.monotonic()
        second.wait_serving(LEASE + 5, proc)
        took = time.monotonic() - killed
        assert took <= LEASE + 3.0, f"serving {took:.1f}s after the kill"
        with Client(second.address, timeout=3.0, wait_seconds=1.0, retry_seconds=10) as c:
            c.heartbeat("standby", held.number, held.attempt)  # its lease is still good
            c.tell("standby", held.number, held.attempt, value=2.0)
            while trials := c.ask("standby", "w0", timeout=10):
                c.tell("standby", trials[0].number, trials[0].attempt, value=3.0)
        with _open_store(chief_storage) as store:
            trials = store.list_trials("standby")
            lease = store.chief_lease()
        assert [(t.number, t.state) for t in trials] == [
            (n, TrialState.COMPLETED) for n in range(6)
        ]
        assert (
            lease is not None and lease.epoch == 2 and lease.holder.split(":")[1] == str(proc.pid)
        )
    finally:
        second.kill()
        first.kill()


def test_a_chief_told_not_to_wait_refuses_at_once(chief_storage: str, tmp_path: Path) -> None:
    port = free_port()
    first = faultkit.Chief(chief_storage, port, tmp_path / "first.log")
    first.start()
    try:
        refused = subprocess.run(
            [*first.command, "--no-wait-for-lease", "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
        assert refused.returncode == 2, refused.stderr
        assert "another chief" in refused.stderr and "--takeover" in refused.stderr
        assert faultkit.WAITING_LINE not in refused.stderr
    finally:
        first.kill()


def test_a_killed_chief_leaves_no_process_behind(sqlite_url: str, tmp_path: Path) -> None:
    """After a Bayesian suggestion the chief has two children, its fit process and
    multiprocessing's resource tracker; SIGKILL of the chief ends both (checked by pid)."""
    study_file = tmp_path / "bayes.yaml"
    study_file.write_text(study_yaml("bayes", algorithm="bayesian"))
    chief = faultkit.Chief(
        sqlite_url, free_port(), tmp_path / "chief.log", "--study", str(study_file)
    )
    chief.start()
    assert chief.proc is not None
    try:
        with Client(chief.address, timeout=10.0, wait_seconds=5.0, retry_seconds=10) as c:
            for _ in range(3):
                trial = c.ask("bayes", "w0", timeout=30)[0]
                c.tell("bayes", trial.number, trial.attempt, value=trial.params["units"] * 1.0)
        children = faultkit.descendants(chief.proc.pid)
        commands = " | ".join(children.values())
        assert "resource_tracker" in commands and "multiprocessing" in commands, children
    finally:
        chief.kill()
    deadline = time.monotonic() + 10
    while any(faultkit.alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: cmd for pid, cmd in children.items() if faultkit.alive(pid)}
    for pid in left:  # not to leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"the killed chief left these behind: {left}"


def test_a_worker_frozen_past_its_lease_then_thawed(chief: Any, tmp_path: Path) -> None:
    """SIGSTOP an ``hpsearch worker`` mid-trial for longer than its lease: the chief gives
    its attempt up and the trial is run once more (by the other worker, or revived by the
    thawed one's heartbeat); the trial is completed once, with at most two attempts, every
    other trial with one, and both workers exit 0."""
    with Client(chief.address, timeout=5.0) as c:
        c.create_study(
            study_yaml("frozen", budget="{max_trials: 6, parallel_trials: 2}", lease_seconds=1.5)
        )
    env = dict(os.environ, FAKE_TRIAL_MODE="slow", FAKE_TRIAL_SLEEP="0.4", FAKE_TRIAL_STEPS="4")
    workers = {
        wid: subprocess.Popen(
            [
                *(sys.executable, "-m", "hpsearch", "worker", "--oracle", chief.address),
                *("--study", "frozen"),
                *("--worker-id", wid, "--output-dir", str(tmp_path / "out")),
                *("--", sys.executable, str(REPO / "tests" / "worker" / "fake_trial.py")),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"{wid}.log").open("wb"),
        )
        for wid in ("cold", "warm")
    }
    try:
        store = chief.store
        deadline = time.monotonic() + 60
        while not [t for t in store.list_trials("frozen") if t.worker_id == "cold"]:
            assert time.monotonic() < deadline, "the worker never got a trial"
            time.sleep(0.05)
        frozen = next(t for t in store.list_trials("frozen") if t.worker_id == "cold")
        faultkit.freeze(workers["cold"].pid)
        time.sleep(4 * 1.5)  # well past the lease and the sweeper's pass
        lost = store.list_attempts("frozen", frozen.number)[frozen.attempt - 1]
        assert lost.state is AttemptState.LOST, lost
        faultkit.thaw(workers["cold"].pid)
        codes = {wid: proc.wait(90) for wid, proc in workers.items()}
        logs = {wid: (tmp_path / f"{wid}.log").read_text()[-2000:] for wid in workers}
        assert codes == {"cold": 0, "warm": 0}, logs
        trials = store.list_trials("frozen")
        assert [(t.number, t.state) for t in trials] == [
            (n, TrialState.COMPLETED) for n in range(6)
        ]
        for trial in trials:
            attempts = store.list_attempts("frozen", trial.number)
            completed = [a for a in attempts if a.state is AttemptState.COMPLETED]
            assert len(completed) == 1 and completed[0].attempt == trial.attempt, attempts
            expected = 2 if trial.number == frozen.number else 1
            assert len(attempts) <= expected, (trial, attempts)
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                faultkit.thaw(proc.pid)
                proc.kill()
            proc.wait(10)


def test_a_chief_outage_longer_than_a_trial_lease_costs_no_rerun(
    chief_storage: str, tmp_path: Path
) -> None:
    """No worker can renew a trial's lease while no chief serves: the restarted chief pushes
    the running trials' leases back by the outage instead of giving them up at once (here
    the lease lapsed during the outage, so the new chief's first sweep would end it LOST)."""
    study_file = tmp_path / "outage.yaml"
    study_file.write_text(study_yaml("outage", lease_seconds=8))
    args = ("--chief-lease-seconds", "1.5", "--study", str(study_file))
    port = free_port()
    first = faultkit.Chief(chief_storage, port, tmp_path / "first.log", *args)
    first.start()
    with Client(first.address, timeout=3.0, wait_seconds=1.0, retry_seconds=60) as c:
        trial = c.ask("outage", "w0")[0]
        c.heartbeat("outage", trial.number, trial.attempt)
        first.kill()
        time.sleep(9.0)  # down longer than the trial's 8 s lease
        second = faultkit.Chief(chief_storage, port, tmp_path / "second.log", *args)
        try:
            second.start()
            time.sleep(2.0)  # the new chief's lease sweeper has run (every second)
            with _open_store(chief_storage) as store:
                (seen,) = store.list_attempts("outage", trial.number)
                assert (seen.state, seen.attempt) == (AttemptState.RUNNING, 1), seen
            c.heartbeat("outage", trial.number, trial.attempt)
            c.tell("outage", trial.number, trial.attempt, value=1.0)
            with _open_store(chief_storage) as store:
                attempts = store.list_attempts("outage", trial.number)
            assert [a.state for a in attempts] == [AttemptState.COMPLETED]
        finally:
            second.kill()
