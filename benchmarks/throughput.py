"""Chief throughput: no-op trials over Keras Tuner's gRPC protocol, hpsearch vs Keras Tuner.

Every chief is driven by the same client loop, built on hpsearch's generated
``keras_tuner.Oracle`` stubs and making a stock Keras Tuner worker's calls per trial:
CreateTrial -> GetTrial -> UpdateTrial -> EndTrial.  N threads (one channel each) run the
loop for a fixed time; we report trials/s and per-trial latency (CreateTrial sent to
EndTrial answered), p50 and p99.

Chiefs (each a subprocess, started fresh per row):
- hpsearch on SQLite (a new file per row) and on PostgreSQL (a fresh database per row;
  ``--postgres URL`` or $HPSEARCH_TEST_POSTGRES_URL, skipped when neither is set);
- Keras Tuner 1.4.8's own chief: a ``RandomSearch`` tuner run with
  ``KERASTUNER_TUNER_ID=chief``, whose ``search()`` starts its oracle server.

Both search with algorithm **random**, so that the cost of a Bayesian model fit does not
dominate what is a measure of the chief's scheduling and storage path.

Also measured: latency at study sizes 100 vs 10,000 trials (hpsearch), and the calls per
second a waiting worker makes when the study's parallel limit is reached.

    python benchmarks/throughput.py                      # full run (several minutes)
    python benchmarks/throughput.py --quick              # short smoke run
Results are printed and written to benchmarks/results/throughput.md.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpsearch.protos import keras_tuner_pb2 as kt  # noqa: E402
from hpsearch.protos import keras_tuner_service_pb2 as svc  # noqa: E402
from hpsearch.protos import keras_tuner_service_pb2_grpc as svc_grpc  # noqa: E402

KT_LABEL = "Keras Tuner 1.4.8 chief"
RESULTS = REPO / "benchmarks" / "results" / "throughput.md"

KT_CHIEF_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras_tuner

    def build(hp):
        hp.Float("lr", 0.001, 0.1, sampling="log")
        hp.Int("units", 4, 16)
        return None  # the chief never trains

    tuner = keras_tuner.RandomSearch(
        build,
        objective=keras_tuner.Objective("score", "max"),
        max_trials=10**7,
        directory=sys.argv[1],
        project_name="bench",
        overwrite=True,
    )
    tuner.search()  # KERASTUNER_TUNER_ID=chief: serves the oracle until stopped
    """
)


@dataclass
class Run:
    chief: str
    workers: int
    trials: int
    seconds: float
    latencies: list[float]
    errors: int = 0
    first_error: str = ""  # what the first failed call answered
    cpu_seconds: float = float("nan")  # the chief process's CPU time in the window
    repeat: int = 1

    @property
    def cpu_ms_per_trial(self) -> float:
        return self.cpu_seconds / self.trials * 1000 if self.trials else float("nan")

    @property
    def rate(self) -> float:
        return self.trials / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# -- the client loop (a stock worker's calls, no training) -------------------------------------
def worker_loop(
    address: str,
    tuner_id: str,
    stop: threading.Event,
    latencies: list[float],
    errors: list[str],
    max_trials: int | None = None,
) -> None:
    done = 0
    with grpc.insecure_channel(address) as channel:
        stub = svc_grpc.OracleStub(channel)
        while not stop.is_set() and (max_trials is None or done < max_trials):
            started = time.perf_counter()
            try:
                trial = stub.CreateTrial(
                    svc.CreateTrialRequest(tuner_id=tuner_id), timeout=60
                ).trial
                if trial.status == kt.STOPPED:
                    return
                if trial.status == kt.IDLE:
                    continue
                stub.GetTrial(svc.GetTrialRequest(trial_id=trial.trial_id), timeout=60)
                stub.UpdateTrial(
                    svc.UpdateTrialRequest(
                        trial_id=trial.trial_id, metrics={"score": random.random()}, step=1
                    ),
                    timeout=60,
                )
                ended = kt.Trial(
                    trial_id=trial.trial_id,
                    status=kt.COMPLETED,
                    hyperparameters=trial.hyperparameters,
                )
                stub.EndTrial(svc.EndTrialRequest(trial=ended), timeout=60)
            except grpc.RpcError as error:
                errors.append(f"{error.code().name}: {error.details()}")  # type: ignore[attr-defined]
                time.sleep(0.05)
                continue
            latencies.append(time.perf_counter() - started)
            done += 1


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), NaN if unknown."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(
    address: str, chief: str, workers: int, seconds: float, warmup: float, pid: int | None = None
) -> Run:
    """Run ``workers`` loops for ``warmup + seconds``; count what ends in the last ``seconds``."""
    stop = threading.Event()
    per_thread: list[list[float]] = [[] for _ in range(workers)]
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=worker_loop, args=(address, f"w{i}", stop, per_thread[i], errors), daemon=True
        )
        for i in range(workers)
    ]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    marks = [len(lat) for lat in per_thread]
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    time.sleep(seconds)
    counts = [len(lat) for lat in per_thread]
    elapsed = time.perf_counter() - t0
    cpu = cpu_seconds(pid) - cpu0
    stop.set()
    for thread in threads:
        thread.join(30)
    window = [x for lat, m, c in zip(per_thread, marks, counts, strict=True) for x in lat[m:c]]
    return Run(
        chief,
        workers,
        sum(c - m for c, m in zip(counts, marks, strict=True)),
        elapsed,
        window,
        len(errors),
        errors[0] if errors else "",
        cpu,
    )


# -- chiefs ----------------------------------------------------------------------------------
#: CPUs for the chief under test and for this process (the workers), when pinned.
PINNING: tuple[set[int], set[int]] | None = None


def pin(enabled: bool) -> str:
    """Give every chief the last CPU and the worker threads the others (``--pin``).

    On a small machine the workers' client threads, the chief's threads and anything else
    running share the same cores, and the chief's trials/s then says as much about the
    scheduler as about the chief; pinned, each chief (Keras Tuner's and hpsearch's alike)
    has one core of its own, as it would on its own machine.  Returns a line for the report.
    """
    global PINNING
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not enabled or len(cpus) < 2:
        PINNING = None
        return "Not pinned: the chief, the worker threads and other work share every core."
    PINNING = ({cpus[-1]}, set(cpus[:-1]))
    os.sched_setaffinity(0, PINNING[1])
    return (
        f"Pinned: each chief runs on CPU {cpus[-1]} alone (all of its threads), the worker "
        f"threads of this harness on CPU {','.join(map(str, cpus[:-1]))} (`--no-pin` to share)."
    )


@contextmanager
def postgres_off_the_chief_core(url: str | None) -> Iterator[str]:
    """Run a local PostgreSQL server's processes on the workers' CPUs while pinned.

    In production the database runs on its own host; on this machine its backends would
    otherwise share the chief's core and count against the chief (Keras Tuner's chief has
    no database).  The server's processes (the postmaster included, so that backends it
    forks later inherit it) are moved to the workers' CPUs and moved back afterwards.
    Yields a line for the report.
    """
    if url is None or PINNING is None:
        yield ""
        return
    from sqlalchemy.engine import make_url

    host = make_url(url).host or "localhost"
    if host not in ("127.0.0.1", "localhost", "::1"):
        yield f"PostgreSQL at {host} is not on this machine: not pinned."
        return
    moved: dict[int, set[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            pid = int(entry.name)
            moved[pid] = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, PINNING[1])
        except OSError:
            continue  # ended meanwhile, or not ours to move
    try:
        if moved:
            yield (
                f"The local PostgreSQL server ({len(moved)} processes) runs on CPU "
                f"{','.join(map(str, sorted(PINNING[1])))}, with the worker threads, not on "
                "the chief's core: as on its own host in production."
            )
        else:
            yield "The local PostgreSQL server could not be moved: it shares every core."
    finally:
        for pid, cpus in moved.items():
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError:
                pass


def _pin_chief(pid: int) -> None:
    """Move the chief's process (every thread it has; threads it starts later inherit it)
    to its CPU.  Called right after it is started, and again once it serves."""
    if PINNING is None:
        return
    try:
        threads = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for tid in threads:
        try:
            os.sched_setaffinity(tid, PINNING[0])
        except OSError:
            pass  # a thread that just ended


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(address: str, proc: subprocess.Popen[bytes], timeout: float, health: bool) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"chief exited with {proc.returncode}")
            try:
                if health:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1
                    )
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                else:
                    svc_grpc.OracleStub(channel).GetSpace(svc.GetSpaceRequest(), timeout=1)
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"chief at {address} not ready in {timeout}s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def hpsearch_chief(
    storage: str,
    workdir: Path,
    *,
    max_trials: int = 10**7,
    parallel: int = 64,
    repo: Path = REPO,
) -> Iterator[tuple[str, int]]:
    """A chief run from ``repo`` (``python -m hpsearch.chief`` in that checkout)."""
    name = f"bench-{uuid.uuid4().hex[:8]}"
    study = workdir / f"{name}.yaml"
    study.write_text(
        textwrap.dedent(
            f"""\
            name: {name}
            metric: {{name: score, goal: maximize}}
            parameters:
              lr: {{type: double, min: 0.001, max: 0.1, scale: log}}
              units: {{type: integer, min: 4, max: 16}}
            budget: {{max_trials: {max_trials}, parallel_trials: {parallel}}}
            algorithm: random
            lease_seconds: 120
            """
        )
    )
    port = free_port()
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpsearch.chief",
            "--storage",
            storage,
            "--study",
            str(study),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            os.environ.get("HPSEARCH_BENCH_LOG_LEVEL", "WARNING"),
        ],
        cwd=repo,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _pin_chief(proc.pid)
    try:
        wait_ready(f"127.0.0.1:{port}", proc, 60, health=True)
        _pin_chief(proc.pid)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        stop_process(proc)


@contextmanager
def keras_tuner_chief(workdir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    script = workdir / "kt_chief.py"
    script.write_text(KT_CHIEF_SCRIPT)
    env = dict(
        os.environ,
        KERASTUNER_TUNER_ID="chief",
        KERASTUNER_ORACLE_IP="127.0.0.1",
        KERASTUNER_ORACLE_PORT=str(port),
        CUDA_VISIBLE_DEVICES="",
    )
    project = workdir / f"kt-{uuid.uuid4().hex[:8]}"
    log = (workdir / f"{project.name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(project)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    _pin_chief(proc.pid)
    try:
        wait_ready(f"127.0.0.1:{port}", proc, 180, health=False)
        _pin_chief(proc.pid)
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        proc.kill()  # its server loop only exits after a STOPPED trial
        proc.wait(10)
        shutil.rmtree(project, ignore_errors=True)


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh database on the server of ``base_url``, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"hpsearch_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def storages(
    workdir: Path, postgres: str | None
) -> Iterator[tuple[str, AbstractContextManager[str]]]:
    def sqlite() -> Iterator[str]:
        yield f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"

    yield "hpsearch (SQLite)", contextmanager(sqlite)()
    if postgres:
        yield "hpsearch (PostgreSQL)", postgres_database(postgres)


# -- the measurements ------------------------------------------------------------------------
ChiefFactory = Callable[[], AbstractContextManager[tuple[str, int]]]


def chiefs(args: argparse.Namespace, workdir: Path) -> list[tuple[str, ChiefFactory]]:
    """The chiefs under test, each a factory of a fresh chief (new file or database)."""

    @contextmanager
    def sqlite(repo: Path = REPO) -> Iterator[tuple[str, int]]:
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        with hpsearch_chief(url, workdir, repo=repo) as chief:
            yield chief

    @contextmanager
    def postgres(repo: Path = REPO) -> Iterator[tuple[str, int]]:
        with (
            postgres_database(args.postgres) as url,
            hpsearch_chief(url, workdir, repo=repo) as chief,
        ):
            yield chief

    found: list[tuple[str, ChiefFactory]] = [("hpsearch (SQLite)", sqlite)]
    if args.postgres:
        found.append(("hpsearch (PostgreSQL)", postgres))
    if args.baseline:
        label = f"hpsearch {args.baseline_label or args.baseline.name}"
        found.append((f"{label} (SQLite)", lambda: sqlite(args.baseline)))
        if args.postgres:
            found.append((f"{label} (PostgreSQL)", lambda: postgres(args.baseline)))
    if not args.skip_keras_tuner:
        found.append((KT_LABEL, lambda: keras_tuner_chief(workdir)))
    return found


def throughput(args: argparse.Namespace, workdir: Path) -> list[Run]:
    """Every chief at every worker count, interleaved (so that the machine's load drifts
    over all of them alike), ``args.repeats`` times."""
    runs: list[Run] = []
    found = chiefs(args, workdir)
    for repeat in range(1, args.repeats + 1):
        for n in args.workers:
            for label, factory in found:
                with factory() as (address, pid):
                    run = drive(address, label, n, args.seconds, args.warmup, pid)
                run.repeat = repeat
                runs.append(run)
                log_run(run, f"[{repeat}] " if args.repeats > 1 else "")
    return runs


def study_size(args: argparse.Namespace, workdir: Path) -> list[tuple[str, int, Run]]:
    """Latency of a 4-worker window at ~100 trials and at ~``args.big`` trials."""
    rows = []
    for label, storage_cm in storages(workdir, args.postgres):
        with storage_cm as storage, hpsearch_chief(storage, workdir) as (address, pid):
            latencies: list[float] = []
            errors: list[str] = []
            fill(address, 100, latencies, errors)
            small = drive(address, label, 4, args.size_seconds, 2.0, pid)
            rows.append((label, 100, small))
            log_run(small, "size~100 ")
            fill(address, args.big, latencies, errors)
            big = drive(address, label, 4, args.size_seconds, 2.0, pid)
            rows.append((label, args.big, big))
            log_run(big, f"size~{args.big} ")
    return rows


def fill(address: str, total: int, latencies: list[float], errors: list[str]) -> None:
    """Run trials with 8 workers until the study holds about ``total`` trials."""
    started = time.perf_counter()
    threads = []
    per = max(1, total // 8)
    stop = threading.Event()
    for i in range(8):
        thread = threading.Thread(
            target=worker_loop,
            args=(address, f"fill{i}-{uuid.uuid4().hex[:4]}", stop, latencies, errors, per),
            daemon=True,
        )
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    print(f"  filled {len(latencies)} trials in {time.perf_counter() - started:.1f}s", flush=True)


Sizes = dict[str, tuple[float, ...]]  # "small"/"big" -> (CPU ms, p50 ms, p99 ms)


def interleaved_size(storage: str, big: int, windows: int, per_window: int = 150) -> Sizes:
    """Per-trial cost at ~``big`` vs ~100 trials, measured side by side in one process.

    Two studies share one store and oracle (the servicer path, no gRPC, one thread): the
    big one is filled first, then windows of ``per_window`` trials alternate between the
    two, so machine load hits both alike (the sequential 4-worker rows above cannot tell
    growth from load on a shared machine).  Returns per study the medians over windows of
    the thread CPU per trial and the p50/p99 latency, in ms.
    """
    import statistics

    from hpsearch.oracle import Oracle
    from hpsearch.service.keras_tuner import KerasTunerServicer
    from hpsearch.space import StudyConfig
    from hpsearch.store import Store

    store = Store(storage)
    oracle = Oracle(store)
    oracle.start()
    servicers = {}
    try:
        for label in ("big", "small"):
            config = StudyConfig.from_dict(
                {
                    "name": f"{label}-{uuid.uuid4().hex[:8]}",
                    "metric": {"name": "score", "goal": "maximize"},
                    "parameters": {
                        "lr": {"type": "double", "min": 0.001, "max": 0.1, "scale": "log"},
                        "units": {"type": "integer", "min": 4, "max": 16},
                    },
                    "budget": {"max_trials": 10**7, "parallel_trials": 64},
                    "algorithm": "random",
                    "lease_seconds": 120,
                }
            )
            oracle.create_study(config)
            servicers[label] = KerasTunerServicer(oracle, config.name)

        context = cast(grpc.ServicerContext, None)  # the servicer uses it only to abort

        def one(servicer: KerasTunerServicer) -> None:
            trial = servicer.CreateTrial(svc.CreateTrialRequest(tuner_id="w0"), context).trial
            servicer.GetTrial(svc.GetTrialRequest(trial_id=trial.trial_id), context)
            servicer.UpdateTrial(
                svc.UpdateTrialRequest(
                    trial_id=trial.trial_id, metrics={"score": random.random()}, step=1
                ),
                context,
            )
            ended = kt.Trial(
                trial_id=trial.trial_id,
                status=kt.COMPLETED,
                hyperparameters=trial.hyperparameters,
            )
            servicer.EndTrial(svc.EndTrialRequest(trial=ended), context)

        started = time.perf_counter()
        for _ in range(big):
            one(servicers["big"])
        for _ in range(100):
            one(servicers["small"])
        print(f"  filled {big} trials in {time.perf_counter() - started:.1f}s", flush=True)
        results: dict[str, list[tuple[float, float, float]]] = {"big": [], "small": []}
        for window in range(windows):
            for label in ("small", "big") if window % 2 else ("big", "small"):
                latencies = []
                cpu0 = time.thread_time()
                for _ in range(per_window):
                    t0 = time.perf_counter()
                    one(servicers[label])
                    latencies.append(time.perf_counter() - t0)
                cpu = (time.thread_time() - cpu0) / per_window * 1000
                latencies.sort()
                p99 = latencies[min(per_window - 1, int(0.99 * per_window))]
                results[label].append((cpu, latencies[per_window // 2] * 1000, p99 * 1000))
    finally:
        oracle.stop()
        store.close()
    return {
        label: tuple(statistics.median(r[i] for r in rows) for i in range(3))
        for label, rows in results.items()
    }


def waiting_calls(args: argparse.Namespace, workdir: Path) -> tuple[int, float, float]:
    """Calls/s of a stock-protocol worker while the only parallel slot is taken."""
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'wait.db'}"
        with (
            hpsearch_chief(storage, workdir, parallel=1) as (address, _),
            grpc.insecure_channel(address) as channel,
        ):
            stub = svc_grpc.OracleStub(channel)
            held = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="holder"), timeout=10)
            assert held.trial.status == kt.RUNNING
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < args.wait_seconds:
                reply = stub.CreateTrial(svc.CreateTrialRequest(tuner_id="waiter"), timeout=30)
                assert reply.trial.status == kt.IDLE
                calls += 1
            elapsed = time.perf_counter() - t0
    return calls, elapsed, calls / elapsed


def log_run(run: Run, prefix: str = "") -> None:
    print(
        f"  {prefix}{run.chief:28s} workers={run.workers:2d} trials={run.trials:5d} "
        f"rate={run.rate:7.1f}/s p50={run.pct(0.5):6.1f}ms p99={run.pct(0.99):7.1f}ms "
        f"cpu/trial={run.cpu_ms_per_trial:5.2f}ms errors={run.errors}"
        + (f" (first: {run.first_error})" if run.errors else ""),
        flush=True,
    )


# -- report ----------------------------------------------------------------------------------
def ratios(runs: list[Run], workers: int) -> list[str]:
    """Medians over rounds at ``workers``, and each hpsearch chief's ratio to Keras Tuner's
    (of the medians, and round by round: the chiefs of one round ran minutes apart)."""
    import statistics

    at = [r for r in runs if r.workers == workers]
    labels = list(dict.fromkeys(r.chief for r in at))
    rounds = sorted({r.repeat for r in at})
    lines = [
        "",
        f"Medians over {len(rounds)} round(s) at {workers} workers:",
        "",
        "| chief | trials/s | chief CPU ms per trial | trials/s ratio to Keras Tuner | "
        "ratio, round by round |",
        "|---|---:|---:|---:|---|",
    ]

    def rate(label: str, repeat: int) -> float:
        return next((r.rate for r in at if r.chief == label and r.repeat == repeat), math.nan)

    median = {
        label: (
            statistics.median(r.rate for r in at if r.chief == label),
            statistics.median(r.cpu_ms_per_trial for r in at if r.chief == label),
        )
        for label in labels
    }
    kt = median.get(KT_LABEL, (math.nan, math.nan))[0]
    for label in labels:
        speed, cpu = median[label]
        if label == KT_LABEL:
            lines.append(f"| {label} | {speed:.1f} | {cpu:.2f} | 1 | |")
            continue
        if math.isnan(kt):  # --skip-keras-tuner: nothing to compare with
            lines.append(f"| {label} | {speed:.1f} | {cpu:.2f} | not measured | |")
            continue
        each = ", ".join(f"{rate(label, k) / rate(KT_LABEL, k):.1f}x" for k in rounds)
        lines.append(f"| {label} | {speed:.1f} | {cpu:.2f} | **{speed / kt:.1f}x** | {each} |")
    return lines


def report(
    args: argparse.Namespace,
    runs: list[Run],
    sizes: list[tuple[str, int, Run]],
    waiting: tuple[int, float, float] | None,
    side_by_side: dict[str, Sizes] | None = None,
) -> str:
    lines = [
        "# Chief throughput: hpsearch vs Keras Tuner's chief",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.machine()} with {os.cpu_count()} CPU cores (shared with other work: "
        f"expect noise), Python {platform.python_version()}.",
        "",
        f"Command: `python benchmarks/throughput.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        "No-op trials over Keras Tuner's gRPC protocol: every chief is driven by the same "
        "client loop (CreateTrial -> GetTrial -> UpdateTrial -> EndTrial, a stock worker's "
        "calls), one thread and channel per worker, in the same process as each other. "
        "Algorithm **random** on both sides, so a Bayesian model fit does not dominate. "
        f"Each row: {args.warmup:g} s warm-up, then {args.seconds:g} s measured. Latency is "
        "per trial (CreateTrial sent to EndTrial answered). " + getattr(args, "pinning", ""),
        "",
        "| chief | workers | round | trials/s | p50 latency (ms) | p99 latency (ms) | "
        "chief CPU ms per trial | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in sorted(runs, key=lambda r: (r.workers, r.chief, r.repeat)):
        lines.append(
            f"| {run.chief} | {run.workers} | {run.repeat} | {run.rate:.1f} | "
            f"{run.pct(0.5):.1f} | {run.pct(0.99):.1f} | {run.cpu_ms_per_trial:.2f} | "
            f"{run.errors} |"
        )
    lines += ratios(runs, max(args.workers))
    if sizes:
        lines += [
            "",
            "## Latency vs study size (hpsearch, 4 workers)",
            "",
            "| chief | trials in study | trials/s | p50 latency (ms) | p99 latency (ms) | "
            "chief CPU ms per trial |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for label, size, run in sizes:
            lines.append(
                f"| {label} | ~{size:,} | {run.rate:.1f} | {run.pct(0.5):.1f} | "
                f"{run.pct(0.99):.1f} | {run.cpu_ms_per_trial:.2f} |"
            )
    if side_by_side:
        lines += [
            "",
            f"Side by side in one process ({args.windows} alternating windows of 150 trials, "
            f"the servicer path without gRPC, one thread; medians over windows): a study of "
            f"~{args.big:,} trials next to one of ~100 in the same store and oracle.",
            "",
            "| storage | trials in study | chief CPU ms per trial | p50 latency (ms) | "
            "p99 latency (ms) |",
            "|---|---:|---:|---:|---:|",
        ]
        for label, result in side_by_side.items():
            for key, shown in (("small", "~100"), ("big", f"~{args.big:,}")):
                cpu, p50, p99 = result[key]
                lines.append(f"| {label} | {shown} | {cpu:.2f} | {p50:.2f} | {p99:.2f} |")
    if waiting is not None:
        calls, elapsed, rate = waiting
        lines += [
            "",
            "## A waiting worker (parallel limit reached)",
            "",
            f"A stock-protocol worker calling CreateTrial in a loop while the study's only "
            f"parallel slot is taken made {calls} calls in {elapsed:.1f} s = **{rate:.2f} "
            "calls/s** against hpsearch (the chief holds each call up to its hold time, "
            "3 s by default, and answers IDLE after it). Keras Tuner's chief answers IDLE at "
            "once, so a stock worker spins (about 900 calls/s, per the project notes).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--postgres", default=os.environ.get("HPSEARCH_TEST_POSTGRES_URL"))
    parser.add_argument("--big", type=int, default=10_000, help="the large study size")
    parser.add_argument("--size-seconds", type=float, default=8.0)
    parser.add_argument("--wait-seconds", type=float, default=10.0)
    parser.add_argument("--skip-keras-tuner", action="store_true")
    parser.add_argument(
        "--repeats", type=int, default=1, help="rounds over every chief; the report gives medians"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another hpsearch checkout (e.g. a git worktree of an older commit) to run "
        "side by side (SQLite, and PostgreSQL with --postgres)",
    )
    parser.add_argument("--baseline-label", help="its name in the report (default: the folder)")
    parser.add_argument("--skip-size", action="store_true")
    parser.add_argument(
        "--windows", type=int, default=8, help="alternating windows of the side-by-side size test"
    )
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run each chief on a core of its own, the worker threads on the others (default)",
    )
    parser.add_argument("--quick", action="store_true", help="short run: a smoke test")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.warmup, args.big = 3.0, 1.0, 500
        args.size_seconds, args.wait_seconds, args.windows = 2.0, 4.0, 2
    args.pinning = pin(args.pin)
    with (
        postgres_off_the_chief_core(args.postgres) as moved,
        tempfile.TemporaryDirectory(prefix="hpsearch-bench-") as tmp,
    ):
        args.pinning = f"{args.pinning} {moved}".strip()
        print(args.pinning, flush=True)
        workdir = Path(tmp)
        print("throughput:", flush=True)
        runs = throughput(args, workdir)
        sizes: list[tuple[str, int, Run]] = []
        side_by_side: dict[str, Sizes] = {}
        if not args.skip_size:
            print("study size:", flush=True)
            sizes = study_size(args, workdir)
            print("study size, interleaved:", flush=True)
            for label, storage_cm in storages(workdir, args.postgres):
                with storage_cm as storage:
                    side_by_side[label] = interleaved_size(storage, args.big, args.windows)
                print(f"  {label}: {side_by_side[label]}", flush=True)
        print("waiting worker:", flush=True)
        waiting = waiting_calls(args, workdir)
        print(f"  {waiting[2]:.2f} calls/s", flush=True)
    text = report(args, runs, sizes, waiting, side_by_side)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
