"""Faults at scale: a study run by many workers while faults are injected, against the same
study run without faults alongside.

Run by hand, as root (it makes a network namespace and runs a PostgreSQL server of its own),
from a checkout nobody edits meanwhile (its processes import hpsearch from it)::

    git worktree add /tmp/faults HEAD && cd /tmp/faults
    nice -n 19 /path/to/.venv/bin/python benchmarks/faults.py --workers 64 --trials 3200

Everything runs inside a network namespace the harness creates (``unshare -n``) on its
loopback only: the chief, a private PostgreSQL server (``--database postgres``), the
workers.  For each database it runs two phases over a fresh store with the same budget:

- **fault-free**: the chief under a supervisor loop, ``--workers`` ``hpsearch worker``
  processes (over ``hpsearch.v1``) and ``--kt-workers`` stock Keras Tuner workers (over
  ``keras_tuner.Oracle``; ``tests/chief/kt_worker.py``), all to the end of the study;
- **faults**: the same, with a fault every ``--fault-every`` seconds, in a seeded shuffled
  rotation: the chief SIGKILLed (the supervisor restarts it at once, with no back-off and no
  ``--takeover``); PostgreSQL restarted (``pg_ctl restart -m fast``, what ``pg_ctlcluster
  restart`` does); a worker frozen (SIGSTOP of the worker and its trial) for longer than the
  trial lease, then thawed; a worker SIGKILLed mid-trial (restarted under the same id); the
  network slow and lossy for ``--network-seconds`` (``tc netem`` on the namespace's
  loopback, or, where the kernel has no netem, a TCP proxy in front of the chief that
  delays every chunk and stalls some as a lost segment would).

Stock Keras Tuner workers do not retry: one whose call was in flight when the chief died
exits with an error, and the harness restarts it under the same tuner id, as the
``deploy/`` manifests do.

At the end of each phase it checks, from SQL and the workers' logs: every trial COMPLETED
exactly once, none RUNNING or WAITING, no result a worker was told was stored missing,
every hpsearch worker that was not killed exited 0, and no trial attempted more often than
the faults that hit it allow (a killed or frozen worker's trial re-run once, a restarted
stock worker's once, and once a trial a stock worker held while the chief was killed, the
database restarted or the network lossy: Keras Tuner ends a trial INVALID when one of its
calls fails, and the chief runs it again).  The report (``benchmarks/results/faults.md``)
lists trials, faults by kind, attempts, errors seen by workers, lost and duplicated
results, the time from each chief kill to serving again, and throughput (completed trials
per window: medians and quartiles) with and without faults.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.chief import faultkit  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "faults.md"
#: The hpsearch workers' trial: a Vertex AI trial script that sleeps (a model training)
#: and reports val_loss twice through cloudml-hypertune, like the stock workers' models.
TRIAL_SCRIPT = """\
import argparse, math, os, time
import hypertune
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float)
parser.add_argument("--units", type=float)
args, _ = parser.parse_known_args()
reporter = hypertune.HyperTune()
for step in (1, 2):
    time.sleep(float(os.environ["FAULT_TRIAL_SECONDS"]) / 2)
    loss = abs(math.log10(args.lr) + 2) + 1 / args.units + 0.1 / step
    reporter.report_hyperparameter_tuning_metric("val_loss", loss, global_step=step)
"""
KT_WORKER = REPO / "tests" / "chief" / "kt_worker.py"
STUDY = "faults"
WINDOW = 15.0  # seconds per throughput window
#: A worker frozen or killed with its ask in flight is handed the trial within this long.
HANDOFF_SECONDS = 2.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=64, help="hpsearch workers")
    parser.add_argument("--kt-workers", type=int, default=4, help="stock Keras Tuner workers")
    parser.add_argument("--trials", type=int, default=3000, help="the study's budget per phase")
    parser.add_argument("--trial-seconds", type=float, default=4.0, help="length of a trial")
    parser.add_argument("--fault-every", type=float, default=15.0)
    parser.add_argument("--max-minutes", type=float, default=30.0, help="per phase, at most")
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--lease-seconds", type=float, default=15.0, help="trial lease")
    parser.add_argument("--chief-lease-seconds", type=float, default=6.0)
    parser.add_argument("--network-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--phases",
        choices=["both", "faults"],
        default="both",
        help="faults: the fault phase alone (to look into a failure; no throughput ratio)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep each phase's directory")
    parser.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.in_namespace:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            parser.error("run as root: the harness makes a network namespace (unshare -n)")
        command = ["unshare", "-n", sys.executable, __file__, *sys.argv[1:], "--in-namespace"]
        return subprocess.call(command)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    databases = ["sqlite", "postgres"] if args.database == "both" else [args.database]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = []
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for database in databases:
        for faults in (False, True) if args.phases == "both" else (True,):
            print(f"== {database}, {'faults' if faults else 'fault-free'}", flush=True)
            results.append(Phase(args, database, faults).run())
            text = report(args, started, results)
            args.output.write_text(text)  # after each phase: a long run may be cut short
    print(text)
    return 0 if all(r.ok for r in results) else 1


@dataclass
class Result:
    """What one phase measured and checked."""

    database: str
    faults: bool
    seconds: float = 0.0
    trials: int = 0
    states: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    hit: collections.Counter[int] = field(default_factory=collections.Counter)
    extra_attempts: int = 0
    over_attempted: list[int] = field(default_factory=list)
    #: Each over-attempted trial's attempts: (worker, state, the failure message's end,
    #: the faults injected while it ran).
    over_detail: dict[int, list[tuple[str, str, str, str]]] = field(default_factory=dict)
    lost: list[int] = field(default_factory=list)
    #: Trials still RUNNING or WAITING when a phase was cut off at --max-minutes (the
    #: workers are stopped first, so a result told meanwhile is not mistaken for a loss).
    unfinished: int = 0
    duplicated: int = 0
    worker_exits: collections.Counter[str] = field(default_factory=collections.Counter)
    kt_restarts: int = 0
    worker_errors: collections.Counter[str] = field(default_factory=collections.Counter)
    chief_restarts: list[float] = field(default_factory=list)
    #: Each chief restart split into its steps (see :func:`restart_steps`).
    restart_steps: list[str] = field(default_factory=list)
    windows: list[float] = field(default_factory=list)
    network: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class NoTarget(RuntimeError):
    """A worker fault found no hpsearch worker running a trial."""


class Phase:
    """One study on a fresh store, to its end, with or without faults."""

    def __init__(self, args: argparse.Namespace, database: str, faults: bool) -> None:
        self.args = args
        self.faults = faults
        self.result = Result(database, faults)
        self.work = Path(tempfile.mkdtemp(prefix=f"hpsearch-faults-{database}-"))
        self.rng = random.Random(args.seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.postgres: faultkit.PrivatePostgres | None = None
        self.proxy: LossyProxy | None = None
        self.netem = False
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[int] = set()  # pids the harness killed
        self.counted: set[int] = set()  # pids whose exit is counted
        self.worker_faults: list[tuple[str, float]] = []  # (worker, when: time.time())
        self.events: list[tuple[float, str, str]] = []  # (time.time(), fault, its target)
        self.cut_off = False
        self.chief_killed_at: float | None = None  # time.monotonic() of the last chief kill
        self.chief_killed_wall: float | None = None  # and its time.time()

    # -- the phase ------------------------------------------------------------------------
    def run(self) -> Result:
        try:
            self._run()
        except Exception as error:  # reported, and the next phase runs
            self.result.problems.append(f"the phase broke off: {error!r}")
        finally:
            self._teardown()
        return self.result

    def _run(self) -> None:
        args = self.args
        if self.result.database == "postgres":
            self.postgres = faultkit.PrivatePostgres(free_port())
            self.postgres.start()
            url = self.postgres.url
        else:
            url = f"sqlite:///{self.work / 'hpsearch.db'}"
        self.url = url
        study = self.work / "study.yaml"
        study.write_text(study_file(args))
        (self.work / "trial.py").write_text(TRIAL_SCRIPT)
        chief_port = free_port()
        self.chief = faultkit.Chief(
            url,
            chief_port,
            self.work / "chief.log",
            "--study",
            str(study),
            "--chief-lease-seconds",
            str(args.chief_lease_seconds),
            "--log-level",
            "INFO",  # its start-up steps, timed in :func:`restart_steps`
        )
        self.chief.start()
        self.netem = netem_available()
        address = self.chief.address
        if not self.netem:  # every worker goes through the proxy, in both phases alike
            self.proxy = LossyProxy(chief_port, seed=args.seed)
            address = f"127.0.0.1:{self.proxy.port}"
        self.result.network = "tc netem on lo" if self.netem else "TCP proxy (no netem here)"
        self.address = address
        supervisor = threading.Thread(target=self._supervise_chief, daemon=True)
        supervisor.start()
        for i in range(args.workers):
            self._start_worker(f"hp{i:03d}")
        for i in range(args.kt_workers):
            self._start_worker(f"kt{i:02d}")
        started = time.monotonic()
        sampler = threading.Thread(target=self._sample, args=(started,), daemon=True)
        sampler.start()
        injector = threading.Thread(target=self._inject, daemon=True) if self.faults else None
        if injector is not None:
            injector.start()
        self.cut_off = not self._wait_workers(started + args.max_minutes * 60)
        self.result.seconds = time.monotonic() - started
        self.stop.set()
        if injector is not None:
            injector.join(args.network_seconds + 60)
        sampler.join(10)
        if self.cut_off:  # stop every worker first: the check must not race live ones
            self._stop_workers()
        self._check()

    def _stop_workers(self) -> None:
        for proc in self.workers.values():
            if proc.poll() is None:
                self._thaw(proc)
                proc.kill()
        for proc in self.workers.values():
            proc.wait(30)

    def _teardown(self) -> None:
        self.stop.set()
        self._stop_workers()
        if getattr(self, "chief", None) is not None:
            self.chief.kill()
        if self.proxy is not None:
            self.proxy.close()
        if self.netem:
            set_netem(False, self.args)
        if self.postgres is not None:
            self.postgres.close()
        if self.args.keep:
            print(f"kept {self.work}", flush=True)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- processes ------------------------------------------------------------------------
    def _start_worker(self, wid: str) -> None:
        log = (self.work / f"{wid}.log").open("ab")
        host, port = self.address.rsplit(":", 1)
        if wid.startswith("kt"):
            env = dict(
                os.environ,
                KERASTUNER_TUNER_ID=wid,
                KERASTUNER_ORACLE_IP=host,
                KERASTUNER_ORACLE_PORT=port,
                TF_CPP_MIN_LOG_LEVEL="3",
                CUDA_VISIBLE_DEVICES="",
            )
            command = [
                sys.executable,
                str(KT_WORKER),
                str(self.work / "kt" / wid),
                "1",
                str(self.args.trial_seconds),
            ]
        else:
            env = dict(os.environ, FAULT_TRIAL_SECONDS=str(self.args.trial_seconds))
            command = [
                *(sys.executable, "-m", "hpsearch", "worker", "--oracle", self.address),
                *("--study", STUDY, "--worker-id", wid),
                *("--output-dir", str(self.work / "out" / wid)),
                *("--", sys.executable, str(self.work / "trial.py")),
            ]
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env,
            start_new_session=True,
        )  # fmt: skip
        with self.lock:
            self.workers[wid] = proc

    def _wait_workers(self, deadline: float) -> bool:
        """Until every worker has exited 0 (the study is finished); a killed hpsearch
        worker, or a stock worker that exited with an error, is restarted under its id.
        False if the deadline came first."""
        while time.monotonic() < deadline:
            running = 0
            for wid, proc in list(self.workers.items()):
                code = proc.poll()
                if code is None:
                    running += 1
                    continue
                if proc.pid in self.killed:
                    self.killed.discard(proc.pid)
                    self.result.worker_exits["killed by the harness"] += 1
                    self._start_worker(wid)
                    running += 1
                elif code != 0 and wid.startswith("kt") and not self._finished():
                    self.result.kt_restarts += 1
                    self._note_hit(wid, "kt-restart")
                    self._start_worker(wid)
                    running += 1
                elif proc.pid not in self.counted:
                    kind = "stock" if wid.startswith("kt") else "hpsearch"
                    self.result.worker_exits[f"{kind} exit {code}"] += 1
                    self.counted.add(proc.pid)
            if running == 0:
                return True
            time.sleep(0.2)
        self.result.problems.append(f"the study did not finish in {self.args.max_minutes} min")
        return False

    def _supervise_chief(self) -> None:
        """A supervisor loop: restart the chief the moment it exits, every time."""
        while not self.stop.is_set():
            proc = self.chief.proc
            if proc is None or proc.wait() is None:
                return
            if self.stop.is_set():
                return
            with self.lock:
                killed_at, killed_wall = self.chief_killed_at, self.chief_killed_wall
                self.chief_killed_at = None
            offset = self.chief.log.stat().st_size if self.chief.log.exists() else 0
            spawned = time.time()
            try:
                self.chief.start(timeout=120)
            except (RuntimeError, TimeoutError) as error:
                self.result.problems.append(f"chief restart failed: {error}")
                time.sleep(1.0)
                continue
            if killed_at is not None:
                took = time.monotonic() - killed_at
                self.result.chief_restarts.append(took)
                steps = restart_steps(self.chief.log, offset, killed_wall, spawned,
                                      time.time())  # fmt: skip
                self.result.restart_steps.append(f"{took:.1f} s: {steps}")

    def _finished(self) -> bool:
        with self._store() as store:
            return bool(store.get_study(STUDY).state.value != "ACTIVE")

    # -- faults ---------------------------------------------------------------------------
    def _inject(self) -> None:
        kinds = ["chief-kill", "worker-freeze", "worker-kill", "network"]
        if self.postgres is not None:
            kinds.append("postgres-restart")
        rotation: list[str] = []
        while not self.stop.wait(self.args.fault_every):
            if not rotation:
                rotation = self.rng.sample(kinds, len(kinds))
            kind = rotation.pop()
            at = time.time()
            try:
                target = getattr(self, "_" + kind.replace("-", "_"))()
                self.result.injected[kind] += 1
                self.events.append((at, kind, target or ""))
            except NoTarget:  # the study's last trials are ending: nothing to hit
                self.result.injected[kind + " (no busy worker: skipped)"] += 1
            except Exception as error:  # a fault that could not be injected is reported
                self.result.problems.append(f"{kind} not injected: {error!r}")

    def _stock_trials(self) -> set[int]:
        """The trials stock Keras Tuner workers hold now."""
        with self._store() as store:
            running = store.list_trials(STUDY, states=[_running()])
        return {t.number for t in running if (t.worker_id or "").startswith("kt")}

    def _note_stock_trials(self, trials: set[int] | None = None) -> None:
        """Allow one more attempt to each trial a stock Keras Tuner worker holds: a call of
        its that fails while the chief or the database is down (or the network lossy) makes
        Keras Tuner end the trial INVALID (``BaseTuner._try_run_and_update_trial`` catches
        every error), and the chief runs it again."""
        for number in self._stock_trials() if trials is None else trials:
            self.result.hit[number] += 1

    def _chief_kill(self) -> None:
        self._note_stock_trials()
        with self.lock:
            self.chief_killed_at = time.monotonic()
            self.chief_killed_wall = time.time()
        assert self.chief.proc is not None
        self.chief.proc.kill()

    def _postgres_restart(self) -> None:
        assert self.postgres is not None
        self._note_stock_trials()
        self.postgres.restart()

    def _worker_freeze(self) -> str:
        wid, proc = self._busy_worker()
        for pid in [proc.pid, *faultkit.descendants(proc.pid)]:
            os.kill(pid, signal.SIGSTOP)  # the worker and its trial, as a paused box
        self._note_hit(wid, "freeze")
        threading.Timer(self.args.lease_seconds * 1.5, self._thaw, args=(proc,)).start()
        return wid

    def _thaw(self, proc: subprocess.Popen[bytes]) -> None:
        for pid in [proc.pid, *faultkit.descendants(proc.pid)]:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _worker_kill(self) -> str:
        wid, proc = self._busy_worker()
        self._note_hit(wid, "kill")
        self.killed.add(proc.pid)
        proc.kill()  # its trial dies with it (PR_SET_PDEATHSIG)
        return wid

    def _network(self) -> None:
        held = self._stock_trials()
        if self.netem:
            set_netem(True, self.args)
        else:
            assert self.proxy is not None
            self.proxy.lossy = True
        self.stop.wait(self.args.network_seconds)
        self._note_stock_trials(held | self._stock_trials())  # and those begun meanwhile
        if self.netem:
            set_netem(False, self.args)
        else:
            assert self.proxy is not None
            self.proxy.lossy = False

    def _busy_worker(self) -> tuple[str, subprocess.Popen[bytes]]:
        """An hpsearch worker that is running a trial now."""
        with self._store() as store:
            running = {t.worker_id for t in store.list_trials(STUDY, states=[_running()])}
        busy = [w for w in sorted(self.workers) if w.startswith("hp") and w in running]
        if not busy:
            raise NoTarget("no hpsearch worker was running a trial")
        wid = self.rng.choice(busy)
        return wid, self.workers[wid]

    def _note_hit(self, wid: str, why: str) -> None:
        """Allow one more attempt to the trial ``wid`` holds now, or is being handed: a
        worker stopped or killed while its ask is in flight gets the trial the chief
        commits a moment later.  Those are found at the end (:meth:`_check`) from the
        attempts ``wid`` began by ``HANDOFF_SECONDS`` after the fault and had not ended
        before it."""
        self.worker_faults.append((wid, time.time()))

    def _worker_fault_hits(self, attempts: list[Any]) -> collections.Counter[int]:
        """The trials hit by the worker faults, once per fault (see :meth:`_note_hit`)."""
        hits: collections.Counter[int] = collections.Counter()
        for wid, at in self.worker_faults:
            hits.update(
                {
                    number
                    for number, _, worker, _, started, ended in attempts
                    if worker == wid
                    and started <= at + HANDOFF_SECONDS
                    and (ended is None or ended >= at)
                }
            )
        return hits

    # -- measurements ---------------------------------------------------------------------
    def _sample(self, started: float) -> None:
        """Completed trials every WINDOW seconds: the throughput windows."""
        last = 0
        while not self.stop.wait(WINDOW):
            try:
                with self._store() as store:
                    done = store.count_trials(STUDY).get(_completed(), 0)
            except Exception:  # the database is being restarted: the next window counts it
                continue
            self.result.windows.append((done - last) / WINDOW)
            last = done

    def _check(self) -> None:
        from sqlalchemy import text

        result = self.result
        # The workers' logs before the store: a result a worker was told is stored is in
        # the store by the time it is read.
        told = told_results(self.work)
        with self._store() as store:
            trials = store.list_trials(STUDY)
            with store.engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT t.number, a.state, a.worker_id, a.failure_message, "
                        "a.started_at, a.ended_at "
                        "FROM trial_attempts a JOIN trials t ON t.id = a.trial_id "
                        "ORDER BY t.number, a.attempt"
                    )
                ).all()
        result.hit.update(self._worker_fault_hits(rows))
        result.trials = len(trials)
        result.states = dict(collections.Counter(t.state.value for t in trials))
        result.attempts = dict(collections.Counter(row[1] for row in rows))
        per_trial = collections.Counter(row[0] for row in rows)
        completed = collections.Counter(row[0] for row in rows if row[1] == "COMPLETED")
        result.duplicated = sum(c - 1 for c in completed.values() if c > 1)
        result.duplicated += max(0, len(trials) - self.args.trials)
        result.extra_attempts = sum(c - 1 for c in per_trial.values())
        result.over_attempted = sorted(
            n for n, c in per_trial.items() if c - 1 > result.hit.get(n, 0)
        )
        for number, state, worker, message, began, ended in rows:
            if number in result.over_attempted[:10]:
                tail = " / ".join((message or "").strip().splitlines()[-3:])[-300:]
                near = self._faults_during(began, ended)
                result.over_detail.setdefault(number, []).append((worker or "", state, tail, near))
        stored = {t.number: t for t in trials}
        result.lost = sorted(
            n for n in told if n not in stored or stored[n].state.value != "COMPLETED"
        )
        open_trials = sorted(t.number for t in trials if t.state.value in ("RUNNING", "WAITING"))
        if self.cut_off:
            result.unfinished = len(open_trials)
        else:
            result.lost += open_trials
        result.worker_errors = worker_errors(self.work)
        if result.states.get("COMPLETED", 0) != self.args.trials:
            result.problems.append(f"trials by state: {result.states}")
        if result.lost:
            result.problems.append(f"lost results: trials {result.lost[:20]}")
        if result.duplicated:
            result.problems.append(f"{result.duplicated} duplicated results")
        if result.over_attempted:
            result.problems.append(
                f"trials attempted more often than the faults that hit them allow: "
                f"{result.over_attempted[:20]}"
            )
        bad_exits = {
            k: v for k, v in result.worker_exits.items() if "exit" in k and not k.endswith(" 0")
        }
        if bad_exits:
            result.problems.append(f"workers exited with errors: {bad_exits}")

    def _faults_during(self, began: Any, ended: Any) -> str:
        """The faults injected from an attempt's start to its end, as "+12.3s kind target"
        (seconds after the start): what to read first when a lease expired."""
        if began is None:
            return ""
        start = _epoch(began)
        end = _epoch(ended) if ended is not None else float("inf")
        return ", ".join(
            f"+{at - start:.1f}s {kind}{' ' + target if target else ''}"
            for at, kind, target in self.events
            if start - 1.0 <= at <= end
        )

    def _store(self) -> Any:
        from hpsearch.store import Store

        return Store(self.url, pool_size=2)


def _epoch(value: Any) -> float:
    """A timestamp from SQL (aware or naive UTC datetime) as seconds since the epoch."""
    import datetime as dt

    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return float(value.timestamp())


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ", re.M)


def restart_steps(log: Path, offset: int, killed: float | None, spawned: float,
                  healthy: float) -> str:  # fmt: skip
    """A chief restart split into its steps, from the restarted chief's log (its lines
    from ``offset`` on) and the harness's clock: kill -> spawn, spawn -> its first log line
    (interpreter, imports, database), -> lease taken (the wait for the dead chief's lease),
    -> serving, -> gRPC health answering SERVING to the harness."""
    import calendar

    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")

    def first(marker: str | None) -> float | None:
        for line in text.splitlines():
            if marker is None or marker in line:
                m = _LOG_TIME.match(line)
                if m:
                    stamp = time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
                    return calendar.timegm(stamp) + int(m.group(2)) / 1000
        return None

    marks = [
        ("spawned", spawned),
        ("first log line", first(None)),
        ("lease taken", first("chief lease taken")),
        ("serving", first("chief serving")),
        ("health SERVING", healthy),
    ]
    steps, last = [], killed if killed is not None else spawned
    for name, at in marks:
        if at is None:
            steps.append(f"{name} ?")
            continue
        steps.append(f"{name} +{at - last:.1f}")
        last = at
    return ", ".join(steps)


def _running() -> Any:
    from hpsearch.records import TrialState

    return TrialState.RUNNING


def _completed() -> Any:
    from hpsearch.records import TrialState

    return TrialState.COMPLETED


def study_file(args: argparse.Namespace) -> str:
    return textwrap.dedent(
        f"""\
        name: {STUDY}
        metric: {{name: val_loss, goal: minimize}}
        parameters:
          lr: {{type: double, min: 0.001, max: 0.1, scale: log}}
          units: {{type: integer, min: 4, max: 16}}
        budget: {{max_trials: {args.trials}, parallel_trials: {args.workers + args.kt_workers},
                  max_attempts: 5}}
        algorithm: random
        lease_seconds: {args.lease_seconds}
        keras_tuner_lease_seconds: {max(60.0, args.trial_seconds * 10)}
        """
    )


_TOLD = re.compile(r"trial completed study=\S+ trial=(\d+) attempt=(\d+)")
_ERROR = re.compile(r" (WARNING|ERROR) ([\w.]+): (.{0,60})")


def told_results(work: Path) -> set[int]:
    """Trials whose completion an hpsearch worker was acknowledged (from its log)."""
    told: set[int] = set()
    for log in work.glob("hp*.log"):
        told.update(int(m.group(1)) for m in _TOLD.finditer(log.read_text(errors="replace")))
    return told


def worker_errors(work: Path) -> collections.Counter[str]:
    """Warnings and errors in the workers' logs, by their first words."""
    seen: collections.Counter[str] = collections.Counter()
    for log in work.glob("*.log"):
        if log.name == "chief.log":
            continue
        for m in _ERROR.finditer(log.read_text(errors="replace")):
            words = re.sub(r"[=:].*", "", m.group(3)).strip()
            seen[f"{m.group(1)} {words}"] += 1
        tracebacks = log.read_text(errors="replace").count("Traceback (most recent call last)")
        if tracebacks:
            seen["traceback"] += tracebacks
    return seen


# -- the network ----------------------------------------------------------------------------
def netem_available() -> bool:
    """Whether this kernel has the netem queueing discipline (it is a module some lack)."""
    probe = subprocess.run(
        ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"],
        capture_output=True,
    )
    if probe.returncode != 0:
        return False
    subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)
    return True


def set_netem(on: bool, args: argparse.Namespace) -> None:
    """Slow and lossy loopback (this namespace's only: the harness made it)."""
    if on:
        subprocess.run(
            ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "50ms", "20ms",
             "loss", "2%"],
            check=True, capture_output=True,
        )  # fmt: skip
    else:
        subprocess.run(["tc", "qdisc", "del", "dev", "lo", "root"], capture_output=True)


class LossyProxy:
    """A TCP proxy to the chief on loopback.  ``lossy``: every chunk is delayed 50 ms
    (+-20) and 2% of them stall 1 s more, as a lost segment waits for TCP's retransmission;
    otherwise it forwards at once."""

    def __init__(self, target_port: int, *, seed: int) -> None:
        self.target_port = target_port
        self.lossy = False
        self.rng = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.port = 0

        async def serve() -> None:
            server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            async with server:
                await server.serve_forever()

        def run() -> None:
            try:
                self.loop.run_until_complete(serve())
            except RuntimeError:  # stopped by close()
                pass

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.lossy:
                    delay = max(0.0, self.rng.gauss(0.05, 0.02))
                    if self.rng.random() < 0.02:
                        delay += 1.0
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the report -----------------------------------------------------------------------------
def report(args: argparse.Namespace, started: str, results: list[Result]) -> str:
    lines = [
        "# Faults at scale",
        "",
        f"Run {started} by `{' '.join(['python', 'benchmarks/faults.py', *_argv(args)])}` "
        f"(inside `unshare -n`, loopback only; machine: {os.cpu_count()} cores, shared).",
        "",
        f"Each phase: one study of {args.trials} trials (random search), "
        f"{args.workers} `hpsearch worker` processes running a {args.trial_seconds:g} s trial "
        f"script and {args.kt_workers} stock Keras Tuner workers; trial lease "
        f"{args.lease_seconds:g} s, chief lease {args.chief_lease_seconds:g} s; faults every "
        f"{args.fault_every:g} s in the fault phase.",
        "",
        "| | " + " | ".join(f"{r.database} {'faults' if r.faults else 'fault-free'}"
                          for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]  # fmt: skip
    rows: list[tuple[str, list[str]]] = [
        ("verdict", ["ok" if r.ok else "FAILED: " + "; ".join(r.problems) for r in results]),
        ("network fault by", [r.network for r in results]),
        ("minutes to the end of the study", [f"{r.seconds / 60:.1f}" for r in results]),
        ("trials by state", [_counts(r.states) for r in results]),
        ("faults injected", [_counts(r.injected) or "none" for r in results]),
        ("attempts by state", [_counts(r.attempts) for r in results]),
        ("re-runs (attempts beyond one per trial)", [str(r.extra_attempts) for r in results]),
        ("re-runs the faults allow (trials hit)", [str(sum(r.hit.values())) for r in results]),
        ("trials attempted beyond that", [str(len(r.over_attempted)) for r in results]),
        ("lost results", [str(len(r.lost)) for r in results]),
        ("trials unfinished at the cut-off", [str(r.unfinished) for r in results]),
        ("duplicated results", [str(r.duplicated) for r in results]),
        ("worker exits", [_counts(r.worker_exits) for r in results]),
        ("stock worker restarts", [str(r.kt_restarts) for r in results]),
        ("chief kill -> serving, s (median, max)", [_spread(r.chief_restarts) for r in results]),
        ("trials/s per 15 s window (median [q1, q3])", [_quartiles(r.windows) for r in results]),
        ("trials/s over the phase", [f"{r.trials / r.seconds:.2f}" if r.seconds else "-"
                                     for r in results]),
    ]  # fmt: skip
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(values) + " |")
    lines += ["", "Throughput with faults against the fault-free run of the same database:", ""]
    by_db: dict[str, dict[bool, Result]] = collections.defaultdict(dict)
    for r in results:
        by_db[r.database][r.faults] = r
    for database, pair in by_db.items():
        if True in pair and False in pair and pair[False].seconds and pair[True].seconds:
            base = pair[False].trials / pair[False].seconds
            faulty = pair[True].trials / pair[True].seconds
            lines.append(f"- {database}: {faulty / base:.2f} of the fault-free trials/s")
    for r in results:
        for number, attempts in r.over_detail.items():
            lines.append(f"- {r.database} {'faults' if r.faults else 'fault-free'}: trial "
                         f"{number} attempted more often than its faults allow:")  # fmt: skip
            for worker, state, tail, near in attempts:
                lines.append(f"  - {worker} {state}" + (f": `{tail}`" if tail else "")
                             + f"; faults while it ran: {near or 'none'}")  # fmt: skip
    for r in results:
        if r.restart_steps:
            lines.append(f"- {r.database} {'faults' if r.faults else 'fault-free'}: each chief "
                         "restart, from the kill, in steps (seconds since the last):")  # fmt: skip
            lines += [f"  - {steps}" for steps in r.restart_steps]
    lines += ["", "Errors seen by workers (warnings and errors in their logs, by kind):", ""]
    for r in results:
        if r.worker_errors:
            top = ", ".join(f"{k}: {v}" for k, v in r.worker_errors.most_common(8))
            lines.append(f"- {r.database} {'faults' if r.faults else 'fault-free'}: {top}")
    return "\n".join(lines) + "\n"


def _argv(args: argparse.Namespace) -> list[str]:
    return [a for a in sys.argv[1:] if a != "--in-namespace"]


def _counts(counter: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(dict(counter).items()))


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    each = " ".join(f"{v:.1f}" for v in values)
    return f"{statistics.median(values):.1f}, {max(values):.1f} (n={len(values)}: {each})"


def _quartiles(values: list[float]) -> str:
    if len(values) < 4:
        return "-"
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"{q2:.2f} [{q1:.2f}, {q3:.2f}]"


if __name__ == "__main__":
    sys.exit(main())
