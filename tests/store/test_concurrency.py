"""Many threads and many processes on one study: every trial once, no lock errors.

These runs are the store's answer to Optuna's "database is locked" at 32+ SQLite workers:
write transactions start with BEGIN IMMEDIATE (they queue on the lock instead of failing)
and lost lock races are retried, so no error reaches a caller.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hpsearch.records import AttemptState, TrialState
from hpsearch.store import Store

from .helpers import study_config

THREADS = 32
PROCESSES = 16


def _claim_and_complete_all(store: Store, study: str, worker: str) -> list[int]:
    done = []
    while (trial := store.claim_trial(study, worker)) is not None:
        store.complete_trial(study, trial.number, trial.attempt, float(trial.number))
        done.append(trial.number)
    return done


def _check_every_trial_completed_once(store: Store, study: str, n: int, done: list[int]) -> None:
    assert sorted(done) == list(range(n)), "a trial was completed twice or not at all"
    assert store.count_trials(study) == {**dict.fromkeys(TrialState, 0), TrialState.COMPLETED: n}
    for trial in store.list_trials(study):
        assert trial.attempt == 1 and trial.value == float(trial.number)
    assert len(store.list_attempts(study, 0)) == 1


def test_32_threads_claim_and_complete(store: Store) -> None:
    study = store.create_study(study_config()).name
    n = 160
    for i in range(n):
        store.create_trial(study, {"i": i})
    barrier = threading.Barrier(THREADS)

    def work(k: int) -> list[int]:
        barrier.wait()
        return _claim_and_complete_all(store, study, f"thread-{k}")

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))  # re-raises any error of a thread
    done = [number for result in results for number in result]
    _check_every_trial_completed_once(store, study, n, done)
    assert sum(1 for result in results if result) > 1, "the threads did not share the work"


def test_32_threads_create_running_trials_with_unique_numbers(store: Store) -> None:
    study = store.create_study(study_config()).name
    per_thread = 5
    barrier = threading.Barrier(THREADS)

    def work(k: int) -> list[tuple[int, str | None]]:
        barrier.wait()
        made = []
        for _ in range(per_thread):
            trial = store.create_trial(study, {"k": k}, worker_id=f"w{k}")
            made.append((trial.number, trial.worker_id))
            store.complete_trial(study, trial.number, 1, 1.0)
        return made

    with ThreadPoolExecutor(THREADS) as pool:
        made = [item for result in pool.map(work, range(THREADS)) for item in result]
    numbers = [number for number, _ in made]
    assert sorted(numbers) == list(range(THREADS * per_thread))  # unique and without gaps
    by_number = {t.number: t.worker_id for t in store.list_trials(study)}
    assert all(by_number[number] == worker for number, worker in made)
    assert store.count_trials(study)[TrialState.COMPLETED] == THREADS * per_thread
    [attempt] = store.list_attempts(study, 0)
    assert attempt.state is AttemptState.COMPLETED


def _process_main(url: str, study: str, worker: str, results: Any, together: Any) -> None:
    """One worker process: its own Store; it claims a trial, waits until every process
    holds one (so all of them claim side by side, however the machine schedules them),
    then claims and completes until nothing is left."""
    done: list[int] = []
    errors: list[str] = []
    try:
        store = Store(url, pool_size=1, max_overflow=1)
        try:
            first = store.claim_trial(study, worker)
            together.wait(timeout=120)
            if first is not None:
                store.complete_trial(study, first.number, first.attempt, float(first.number))
                done.append(first.number)
            done += _claim_and_complete_all(store, study, worker)
        finally:
            store.close()
    except Exception as exc:  # reported to the parent, which fails the test
        errors.append(f"{type(exc).__name__}: {exc}")
    results.put({"worker": worker, "done": done, "errors": errors})


def test_processes_each_with_their_own_store(store: Store, storage_url: str) -> None:
    """PROCESSES processes (forked: no interpreter start-up), one Store each."""
    study = store.create_study(study_config()).name
    n = 96
    for i in range(n):
        store.create_trial(study, {"i": i})
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    together = context.Barrier(PROCESSES)
    procs = [
        context.Process(
            target=_process_main, args=(storage_url, study, f"proc-{k}", results, together)
        )
        for k in range(PROCESSES)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert [error for report in reports for error in report["errors"]] == []
    done = [number for report in reports for number in report["done"]]
    _check_every_trial_completed_once(store, study, n, done)
    # Every process held a trial at the same moment (the barrier): none did all the work.
    # (Without the barrier one process could finish all 96 before the others had opened
    # their stores, as it did once under load.)
    assert all(report["done"] for report in reports), reports


def test_a_writer_waits_for_the_sqlite_lock_instead_of_failing(sqlite_url: str) -> None:
    """Another connection holds SQLite's write lock for a while: the store's write waits
    for it (BEGIN IMMEDIATE + busy timeout) and succeeds."""
    with Store(sqlite_url) as store:
        study = store.create_study(study_config()).name
        path = sqlite_url.removeprefix("sqlite:///")
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE studies SET updated_at = updated_at")
        release = threading.Timer(0.5, lambda: holder.execute("COMMIT"))
        release.start()
        started = time.monotonic()
        trial = store.create_trial(study, {})
        waited = time.monotonic() - started
        release.join()
        holder.close()
    assert trial.number == 0
    assert waited >= 0.4


def test_concurrent_expiry_and_late_results_count_each_result_once(store: Store) -> None:
    """Workers whose leases lapsed race the chief's expire_leases: whichever wins, every
    result counts once (a result late for its lease still counts, see Store._refuse)."""
    study = store.create_study(study_config(max_attempts=2)).name
    n = 40
    for _ in range(n):
        store.create_trial(study, {})
    claimed = [store.claim_trial(study, f"w{i}", lease_seconds=0.0) for i in range(n)]
    barrier = threading.Barrier(9)

    def report(chunk: int) -> list[int]:
        barrier.wait()
        attempts = []
        for trial in claimed[chunk::8]:
            assert trial is not None
            attempts.append(store.complete_trial(study, trial.number, trial.attempt, 1.0).attempt)
        return attempts

    def expire() -> int:
        barrier.wait()
        return len(store.expire_leases(study))

    with ThreadPoolExecutor(9) as pool:
        reported = pool.map(report, range(8))
        expired = pool.submit(expire)
        assert [a for chunk in reported for a in chunk] == [1] * n
        assert 0 <= expired.result() <= n
    for number in range(n):
        [attempt] = store.list_attempts(study, number)
        assert attempt.state is AttemptState.COMPLETED
    assert store.count_trials(study)[TrialState.COMPLETED] == n


def test_late_results_racing_the_retries_leave_one_result_per_trial(store: Store) -> None:
    """Lost attempts report while other workers claim the retries: each trial ends
    COMPLETED by the late result, once, and a retry that started first is ended STOPPED."""
    study = store.create_study(study_config(max_attempts=3)).name
    n = 24
    for _ in range(n):
        store.create_trial(study, {})
    for i in range(n):
        store.claim_trial(study, f"lost{i}", lease_seconds=0.0)
    assert len(store.expire_leases(study)) == n
    barrier = threading.Barrier(8)

    def late(chunk: int) -> None:
        barrier.wait()
        for number in range(chunk, n, 4):
            trial = store.complete_trial(study, number, 1, float(number))
            assert (trial.state, trial.attempt, trial.value) == ("COMPLETED", 1, float(number))

    def retry(worker: int) -> int:
        barrier.wait()
        claims = 0
        while store.claim_trial(study, f"retry{worker}", lease_seconds=600) is not None:
            claims += 1
        return claims

    with ThreadPoolExecutor(8) as pool:
        lates = [pool.submit(late, k) for k in range(4)]
        retries = [pool.submit(retry, k) for k in range(4)]
        for future in lates:
            future.result()
        claims = sum(f.result() for f in retries)
    assert 0 <= claims <= n
    stopped = 0
    for trial in store.list_trials(study):
        assert (trial.state, trial.attempt, trial.value) == ("COMPLETED", 1, float(trial.number))
        states = [a.state for a in store.list_attempts(study, trial.number)]
        assert states in ([AttemptState.COMPLETED], [AttemptState.COMPLETED, AttemptState.STOPPED])
        stopped += len(states) - 1
    assert stopped == claims  # every retry that started was ended by the late result


def test_in_memory_sqlite_store_is_thread_safe() -> None:
    """``sqlite://`` is one shared connection: the store serializes every transaction."""
    with Store("sqlite://") as store:
        study = store.create_study(study_config()).name
        store.create_trials(study, [{"i": i} for i in range(64)])
        with ThreadPoolExecutor(8) as pool:
            results = list(
                pool.map(lambda k: _claim_and_complete_all(store, study, f"t{k}"), range(8))
            )
        _check_every_trial_completed_once(store, study, 64, [n for r in results for n in r])


def _open_main(url: str, results: Any) -> None:
    try:
        with Store(url, pool_size=1, max_overflow=0) as store:
            results.put(("ok", len(store.list_studies())))
    except Exception as exc:
        results.put(("error", f"{type(exc).__name__}: {exc}"))


def test_processes_opening_a_new_database_at_once_migrate_it_once(storage_url: str) -> None:
    from hpsearch.store import current_revision, head_revision

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    procs = [context.Process(target=_open_main, args=(storage_url, results)) for _ in range(8)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    assert outcomes == [("ok", 0)] * 8
    assert current_revision(storage_url) == head_revision()
