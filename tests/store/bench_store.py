"""Store micro-benchmark (not a test): latency per operation and multi-thread throughput.

    python tests/store/bench_store.py                       # SQLite in a temp directory
    python tests/store/bench_store.py --storage postgresql+psycopg://postgres@127.0.0.1/test

Prints one line per measurement.  On PostgreSQL the study is deleted afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hpsearch.space import Budget, Metric, Params, StudyConfig
from hpsearch.store import Store


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default=None)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--ops", type=int, default=300)
    args = parser.parse_args()
    url = args.storage or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    store = Store(url)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    store.create_study(
        StudyConfig(name=name, metric=Metric("score"), budget=Budget(max_trials=10**6))
    )
    try:
        _latencies(store, name, args.ops)
        _throughput(store, name, args.threads, args.trials)
    finally:
        if args.storage:
            store.delete_study(name)
        store.close()
    return 0


def _latencies(store: Store, name: str, n: int) -> None:
    numbers: list[int] = []

    def timed(label: str, op: Callable[[int], object]) -> None:
        samples = []
        for i in range(n):
            started = time.perf_counter()
            op(i)
            samples.append(time.perf_counter() - started)
        samples.sort()
        print(
            f"{label:<22} median {statistics.median(samples) * 1e3:6.2f} ms   "
            f"p95 {samples[int(0.95 * len(samples))] * 1e3:6.2f} ms"
        )

    params: Params = {"lr": 0.01, "units": 64, "optimizer": "adam"}
    timed("create_trial (waiting)", lambda i: store.create_trial(name, params))
    timed("claim_trial", lambda i: numbers.append(store.claim_trial(name, "w").number))  # type: ignore[union-attr]
    timed("renew_lease", lambda i: store.renew_lease(name, numbers[i], 1))
    timed("add_measurement", lambda i: store.add_measurement(name, numbers[i], 1, 1, {"a": 0.5}))
    timed("complete_trial", lambda i: store.complete_trial(name, numbers[i], 1, 0.5))
    timed("complete (repeat)", lambda i: store.complete_trial(name, numbers[i], 1, 0.5))
    timed("get_study", lambda i: store.get_study(name))
    timed("get_trial", lambda i: store.get_trial(name, numbers[i]))
    timed("count_trials", lambda i: store.count_trials(name))
    timed("expire_leases (none)", lambda i: store.expire_leases())


def _throughput(store: Store, name: str, threads: int, trials: int) -> None:
    per_thread = trials // threads
    barrier = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        barrier.wait()
        for _ in range(per_thread):
            trial = store.create_trial(name, {"k": k}, worker_id=f"t{k}")
            store.complete_trial(name, trial.number, trial.attempt, 1.0)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(work, k) for k in range(threads)]
        barrier.wait()
        started = time.perf_counter()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - started
    total = per_thread * threads
    print(
        f"{threads} threads: {total} trials (create running + complete) in {elapsed:.2f} s = "
        f"{total / elapsed:.0f} trials/s"
    )

    # Trials queued in one batch (create_trials), then claimed and completed by the threads.
    store.create_trials(name, [{"k": i} for i in range(total)])

    def claim(k: int) -> int:
        barrier.wait()
        count = 0
        while (trial := store.claim_trial(name, f"c{k}")) is not None:
            store.complete_trial(name, trial.number, trial.attempt, 1.0)
            count += 1
        return count

    with ThreadPoolExecutor(threads) as pool:
        claims = [pool.submit(claim, k) for k in range(threads)]
        barrier.wait()
        started = time.perf_counter()
        claimed = sum(future.result() for future in claims)
        elapsed = time.perf_counter() - started
    print(
        f"{threads} threads: {claimed} queued trials (claim + complete) in {elapsed:.2f} s = "
        f"{claimed / elapsed:.0f} trials/s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
