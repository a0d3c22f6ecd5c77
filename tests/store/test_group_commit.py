"""Group commit: concurrent writers share transactions, each keeps its own outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, text

from hpsearch.errors import NotFoundError, StaleAttemptError
from hpsearch.records import MeasurementRecord, Trial, TrialState
from hpsearch.store import Store
from hpsearch.store.group_commit import GroupCommit

from .helpers import study_config

THREADS = 16
PER_THREAD = 30


def test_concurrent_writes_share_transactions_and_stay_gapless(store: Store) -> None:
    study = store.create_study(study_config()).name
    barrier = threading.Barrier(THREADS)
    before = store.write_stats

    def work(k: int) -> list[int]:
        barrier.wait()
        numbers = []
        for _ in range(PER_THREAD):
            trial = store.create_trial(study, {"k": k}, worker_id=f"w{k}")
            store.add_measurement(study, trial.number, 1, 1, {"score": 0.5})
            done = store.complete_trial(study, trial.number, 1, float(trial.number))
            assert done.state is TrialState.COMPLETED and done.value == float(trial.number)
            numbers.append(trial.number)
        return numbers

    with ThreadPoolExecutor(THREADS) as pool:
        numbers = [n for batch in pool.map(work, range(THREADS)) for n in batch]
    total = THREADS * PER_THREAD
    assert sorted(numbers) == list(range(total))
    assert store.count_trials(study)[TrialState.COMPLETED] == total
    assert len(store.list_measurements(study)) == total
    transactions, writes = (a - b for a, b in zip(store.write_stats, before, strict=True))
    assert writes == 3 * total
    assert transactions < writes, "no two concurrent writes shared a transaction"


def test_a_failing_write_does_not_touch_the_others_in_its_group(store: Store) -> None:
    study = store.create_study(study_config()).name
    finished = store.create_trial(study, {}, worker_id="w")
    store.complete_trial(study, finished.number, 1, 1.0)
    barrier = threading.Barrier(THREADS)

    def work(k: int) -> list[object]:
        barrier.wait()
        outcomes: list[object] = []
        for _ in range(PER_THREAD):
            try:
                if k % 4 == 0:  # raises inside the transaction
                    store.create_trial("no-such-study", {}, worker_id=f"w{k}")
                elif k % 4 == 1:  # refused after the guarded UPDATE matched nothing
                    store.complete_trial(study, finished.number, 1, 2.0)
                else:
                    outcomes.append(store.create_trial(study, {"k": k}, worker_id=f"w{k}"))
                    continue
            except (NotFoundError, StaleAttemptError) as error:
                outcomes.append(type(error))
        return outcomes

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    for k, outcomes in enumerate(results):
        if k % 4 == 0:
            assert outcomes == [NotFoundError] * PER_THREAD
        elif k % 4 == 1:
            assert outcomes == [StaleAttemptError] * PER_THREAD
    created = [t for k, o in enumerate(results) if k % 4 > 1 for t in o]
    assert sorted(t.number for t in created) == list(range(1, len(created) + 1))  # type: ignore[attr-defined]
    stored = store.list_trials(study)
    assert len(stored) == 1 + len(created)
    assert stored[0].value == 1.0  # the refused completions changed nothing
    assert all(t.state is TrialState.RUNNING for t in stored[1:])


@pytest.mark.parametrize(("max_group", "max_leaders"), [(2, 1), (3, 3)])
def test_every_caller_gets_its_own_result_when_groups_overflow(
    store: Store, max_group: int, max_leaders: int
) -> None:
    """Small groups and several leaders: writes queue beyond one group, and each caller
    still gets back what its own write returned, exactly once."""
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (who VARCHAR(16) PRIMARY KEY)"))
    lock = None if store.engine.dialect.name != "sqlite" else threading.Lock()
    group = GroupCommit(
        store.engine, write_lock=lock, max_group=max_group, max_leaders=max_leaders
    )
    barrier = threading.Barrier(THREADS)

    def insert(who: str) -> Callable[[Connection], str]:
        def write(conn: Connection) -> str:
            conn.execute(text("INSERT INTO probe (who) VALUES (:who)"), {"who": who})
            return who

        return write

    def work(k: int) -> list[str]:
        barrier.wait()
        return [group.run(insert(f"{k}-{i}"), "probe") for i in range(PER_THREAD)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(work, range(THREADS)))
    for k, got in enumerate(results):
        assert got == [f"{k}-{i}" for i in range(PER_THREAD)]
    with store.engine.connect() as conn:
        stored = sorted(conn.execute(text("SELECT who FROM probe")).scalars())
    assert stored == sorted(f"{k}-{i}" for k in range(THREADS) for i in range(PER_THREAD))
    assert group.writes == THREADS * PER_THREAD
    assert group.groups < group.writes


def _waiting_on_locks(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
        )


def _queued(store: Store) -> int:
    """Writes waiting in the store's group commit for a leader (only to wait on)."""
    return len(store._writes._queue)


@pytest.mark.postgres
@pytest.mark.parametrize("fenced", [False, True])
@pytest.mark.parametrize("stale", [False, True])
def test_a_group_of_trial_writes_is_one_batch_on_postgres(
    postgres_url: str, fenced: bool, stale: bool
) -> None:
    """PostgreSQL: measurements and completions queued behind a busy leader make the next
    group, and its statements go in one batch; each caller gets its own result.  With one
    stale completion in the group (its statement returns no row) the group runs the usual
    way instead: the same outcomes, no batch."""
    with Store(postgres_url) as store:
        study = store.create_study(study_config()).name
        if fenced:
            store.fence_writes(store.acquire_chief_lease("chief", 60))
        running = [store.create_trial(study, {"k": k}, worker_id=f"w{k}") for k in range(6)]
        before = store.batched_writes
        outcomes: dict[int, object] = {}

        def write(k: int) -> None:
            trial = running[k]
            try:
                if k % 2 == 0:
                    outcomes[k] = store.add_measurement(study, trial.number, 1, 1, {"s": k})
                elif stale and k == 5:
                    outcomes[k] = store.complete_trial(study, trial.number, 2, float(k))
                else:
                    outcomes[k] = store.complete_trial(study, trial.number, 1, float(k))
            except StaleAttemptError as error:
                outcomes[k] = error

        def lead() -> None:
            outcomes[-1] = store.create_trial(study, {"k": -1}, worker_id="leader")

        with store.engine.connect() as blocker:
            # The leader's create_trial waits on the study's row, and the writes queue.
            blocker.execute(text("SELECT id FROM studies FOR UPDATE"))
            leader = threading.Thread(target=lead)
            leader.start()
            deadline = time.monotonic() + 10
            while _waiting_on_locks(store) < 1:
                assert time.monotonic() < deadline, "the leader never waited on the lock"
                time.sleep(0.02)
            writers = [threading.Thread(target=write, args=(k,)) for k in range(6)]
            for thread in writers:
                thread.start()
            deadline = time.monotonic() + 30
            while _queued(store) < 6:  # all six queue behind the leader
                assert time.monotonic() < deadline, f"{_queued(store)} writes queued"
                time.sleep(0.02)
            blocker.rollback()
            for thread in [leader, *writers]:
                thread.join(10)
        leader_trial = outcomes[-1]
        assert isinstance(leader_trial, Trial) and leader_trial.number == 6
        for k in range(6):
            got = outcomes[k]
            if k % 2 == 0:
                assert isinstance(got, MeasurementRecord)
                assert (got.trial_number, got.metrics) == (k, {"s": k})
            elif stale and k == 5:
                assert isinstance(got, StaleAttemptError)
            else:
                assert isinstance(got, Trial)
                assert (got.number, got.state, got.value) == (k, TrialState.COMPLETED, k)
                assert got.params == {"k": k} and got.worker_id == f"w{k}"
        stored = {t.number: t for t in store.list_trials(study)}
        assert [stored[k].state for k in range(6)] == [
            TrialState.RUNNING,
            TrialState.COMPLETED,
            TrialState.RUNNING,
            TrialState.COMPLETED,
            TrialState.RUNNING,
            TrialState.RUNNING if stale else TrialState.COMPLETED,
        ]
        assert len(store.list_measurements(study)) == 3
        assert store.batched_writes - before == (0 if stale else 6)
