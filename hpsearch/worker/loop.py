"""The worker: ask the chief for trials, run each as a Vertex AI trial, report back.

One worker process runs ``floor(gpus / gpus_per_trial)`` trials at once (one on the CPU
when there is no GPU), each in its own slot with its own ``CUDA_VISIBLE_DEVICES`` and its
own worker id (``<worker_id>`` for slot 0, ``<worker_id>/<slot>`` after), so the chief's
"a worker asking again gets its running trial back" rule holds per slot.

Per trial: run the command with the trial's flags and Vertex AI's environment, read the
hypertune metric file as it grows and forward each new report as a measurement, heartbeat
the lease, and end the attempt COMPLETED (value by the study's measurement selection),
FAILED (non-zero exit, no metric, NaN: with the tail of the trial's output) or STOPPED
(the chief said stop: SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from hpsearch.client import Client
from hpsearch.errors import FailedPreconditionError, HpsearchError, InvalidArgumentError
from hpsearch.records import Study, Trial, TrialState
from hpsearch.worker.contract import (
    MetricFileReader,
    Report,
    TrialDirs,
    budget_flags,
    final_measurement,
    seed_checkpoint,
    trial_dirs,
    trial_env,
    trial_flags,
)
from hpsearch.worker.gpus import detect_gpus, gpu_slots

log = logging.getLogger(__name__)

#: Lines of a failed trial's output kept as its failure message.
FAILURE_TAIL_LINES = 20


@dataclass
class WorkerOptions:
    """What ``hpsearch worker`` was told (flags, then environment, then defaults)."""

    oracle: str
    study: str
    command: list[str]
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    output_dir: str = "hpsearch-output"
    gpus_per_trial: int = 1
    gpus: list[str] | None = None  # None: detect
    poll_seconds: float = 0.5
    stop_grace_seconds: float = 10.0
    max_trials: int | None = None  # stop after this many trials (all slots together)


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    number: int
    attempt: int
    state: TrialState
    value: float | None
    message: str = ""


class Worker:
    """Runs trials of one study until the chief says the study is finished."""

    def __init__(self, options: WorkerOptions, client: Client | None = None) -> None:
        if not options.command:
            raise InvalidArgumentError(
                "no trial command given; put it after `--`, e.g. "
                "hpsearch worker --oracle chief:8000 -- python trials/mnist.py"
            )
        self.options = options
        self.client = client or Client(options.oracle)
        self._owns_client = client is None
        self.outcomes: list[TrialOutcome] = []
        self._lock = threading.Lock()
        self._shutdown = threading.Event()
        self._started = 0
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    def run(self) -> list[TrialOutcome]:
        """Work until the study is finished (or ``shutdown()``); returns what each trial did."""
        study = self.client.get_study(self.options.study)
        gpus = detect_gpus() if self.options.gpus is None else list(self.options.gpus)
        slots = gpu_slots(gpus, self.options.gpus_per_trial)
        log.info(
            "worker starting worker=%s study=%s oracle=%s gpus=%s slots=%d",
            self.options.worker_id,
            study.name,
            self.options.oracle,
            ",".join(gpus) or "-",
            len(slots),
        )
        threads = [
            threading.Thread(
                target=self._slot_loop,
                args=(study, index, devices),
                name=f"hpsearch-slot-{index}",
                daemon=True,
            )
            for index, devices in enumerate(slots)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.5)
        if self._owns_client:
            self.client.close()
        log.info("worker finished worker=%s trials=%d", self.options.worker_id, len(self.outcomes))
        return list(self.outcomes)

    def shutdown(self) -> None:
        """Stop asking for trials and end running ones (they are handed back for a retry)."""
        self._shutdown.set()
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            _terminate(process, self.options.stop_grace_seconds)

    # -- one slot ---------------------------------------------------------------------------------
    def _slot_loop(self, study: Study, index: int, devices: str | None) -> None:
        worker_id = self.options.worker_id if index == 0 else f"{self.options.worker_id}/{index}"
        while not self._shutdown.is_set():
            if not self._take_budget():
                return
            try:
                trials = self.client.ask(study.name, worker_id)
            except HpsearchError as error:
                log.error("ask failed worker=%s error=%s", worker_id, error)
                return
            if not trials:
                log.info("study finished study=%s worker=%s", study.name, worker_id)
                return
            for trial in trials:
                outcome = self._run_trial(study, trial, worker_id, devices)
                if outcome is not None:
                    with self._lock:
                        self.outcomes.append(outcome)

    def _take_budget(self) -> bool:
        with self._lock:
            if self.options.max_trials is not None and self._started >= self.options.max_trials:
                return False
            self._started += 1
            return True

    def _run_trial(
        self, study: Study, trial: Trial, worker_id: str, devices: str | None
    ) -> TrialOutcome | None:
        config = study.config
        trial_id = str(trial.number)
        scratch = _scratch_dir(self.options.output_dir) / study.name / f"attempt-{trial.attempt}"
        dirs = trial_dirs(_join(self.options.output_dir, study.name), trial_id, str(scratch))
        Path(dirs.metric_file).unlink(missing_ok=True)
        log_path = Path(dirs.metric_file).parent / "output.log"
        rung = trial.fidelity
        command = [
            *self.options.command,
            *trial_flags(trial.params),
            *budget_flags(config.fidelity, rung),
        ]
        if rung is not None:
            log.info(
                "trial budget study=%s trial=%d epochs=%d initial_epoch=%d: %s",
                study.name,
                trial.number,
                rung.epochs,
                rung.initial_epoch,
                seed_checkpoint(_join(self.options.output_dir, study.name), rung, dirs),
            )
        env = trial_env(dirs, trial_id, cuda_visible_devices=devices)
        self._record_artifacts(study, trial, dirs, log_path)
        log.info(
            "trial starting study=%s trial=%d attempt=%d worker=%s devices=%s log=%s",
            study.name,
            trial.number,
            trial.attempt,
            worker_id,
            devices if devices is not None else "inherited",
            log_path,
        )
        reader = MetricFileReader(dirs.metric_file)
        with open(log_path, "wb") as log_file:
            try:
                process = subprocess.Popen(
                    _dying_with_this_process(command),
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                return self._fail(study, trial, f"cannot start {command[0]!r}: {error}")
            with self._lock:
                self._processes[trial.number] = process
            try:
                verdict = self._watch(study, trial, worker_id, process, reader)
            finally:
                with self._lock:
                    self._processes.pop(trial.number, None)
        if verdict == "lost":
            log.warning(
                "trial lease lost study=%s trial=%d attempt=%d; result dropped",
                study.name,
                trial.number,
                trial.attempt,
            )
            return None
        if verdict == "shutdown":
            return self._fail(study, trial, "the worker was shut down", retry=True)
        try:
            self._forward(study, trial, reader)  # the last reports, written just before exit
        except FailedPreconditionError as error:
            # The chief gave this attempt up (the worker was frozen or cut off for longer
            # than its lease) while the trial ran to its end: its result still counts unless
            # another attempt completed the trial (the chief's late-report rules), so it is
            # told below rather than dropped.
            log.warning(
                "measurements refused at exit study=%s trial=%d error=%s; telling the result",
                study.name,
                trial.number,
                error,
            )
        final = final_measurement(
            reader.reports, config.metric.name, config.metric.goal, config.measurement
        )
        if verdict == "stop":
            value = final.metrics[config.metric.name] if final else None
            if value is not None and not math.isfinite(value):
                value = None
            return self._tell(study, trial, TrialState.STOPPED, value=value)
        code = process.returncode
        if code != 0:
            how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
            return self._fail(study, trial, f"trial command {how}:\n{_tail(log_path)}")
        if final is None and not reader.reports:
            # Nothing new this attempt (e.g. it resumed from a finished checkpoint): the
            # chief may still know the value from the trial's measurements.
            try:
                return self._tell(study, trial, TrialState.COMPLETED)
            except InvalidArgumentError:
                pass
        if final is None:
            return self._fail(
                study,
                trial,
                f"the trial exited 0 but never reported {config.metric.name!r} through "
                f"cloudml-hypertune (CLOUD_ML_HP_METRIC_FILE); last output:\n{_tail(log_path)}",
            )
        value = final.metrics[config.metric.name]
        if not math.isfinite(value):
            return self._fail(
                study, trial, f"{config.metric.name} was {value} at step {final.step}"
            )
        metrics = {k: v for k, v in final.metrics.items() if math.isfinite(v)}
        return self._tell(study, trial, TrialState.COMPLETED, value=value, metrics=metrics)

    def _record_artifacts(
        self, study: Study, trial: Trial, dirs: TrialDirs, log_path: Path
    ) -> None:
        """Tell the chief where this attempt writes, so the dashboard lists it; a chief that
        cannot keep it (an older one, or the attempt was taken over) costs the listing only."""
        artifacts = {
            "model_dir": _absolute(dirs.model),
            "checkpoint_dir": _absolute(dirs.checkpoints),
            "log_dir": _absolute(dirs.logs),
            "output_log_path": str(log_path.resolve()),
        }
        try:
            self.client.record_artifacts(study.name, trial.number, trial.attempt, artifacts)
        except HpsearchError as error:
            log.warning(
                "artifacts not recorded study=%s trial=%d error=%s",
                study.name,
                trial.number,
                error,
            )

    def _watch(
        self,
        study: Study,
        trial: Trial,
        worker_id: str,
        process: subprocess.Popen[bytes],
        reader: MetricFileReader,
    ) -> str:
        """Wait for the process while heartbeating and forwarding measurements.

        Returns "exited", "stop" (the chief asked), "lost" (the lease is gone) or "shutdown".
        """
        interval = max(0.5, min(study.config.lease_seconds / 3.0, 30.0))
        next_beat = time.monotonic() + interval
        while process.poll() is None:
            if self._shutdown.is_set():
                _terminate(process, self.options.stop_grace_seconds)
                return "shutdown"
            try:
                stop = self._forward(study, trial, reader)
                if not stop and time.monotonic() >= next_beat:
                    answer = self.client.heartbeat(
                        study.name, trial.number, trial.attempt, worker_id
                    )
                    stop = answer.should_stop
                    next_beat = time.monotonic() + interval
            except FailedPreconditionError:
                _terminate(process, self.options.stop_grace_seconds)
                return "lost"
            if stop:
                log.info(
                    "trial stopping on the chief's word study=%s trial=%d",
                    study.name,
                    trial.number,
                )
                _terminate(process, self.options.stop_grace_seconds)
                return "stop"
            try:
                process.wait(self.options.poll_seconds)
            except subprocess.TimeoutExpired:
                pass
        return "exited"

    def _forward(self, study: Study, trial: Trial, reader: MetricFileReader) -> bool:
        """Report the new hypertune lines as measurements; True if the chief says stop."""
        stop = False
        for report in reader.poll():
            metrics = _finite(report)
            if not metrics:
                continue
            answer = self.client.report(
                study.name, trial.number, trial.attempt, report.step, metrics
            )
            stop = stop or answer.should_stop
        return stop

    def _tell(
        self,
        study: Study,
        trial: Trial,
        state: TrialState,
        *,
        value: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> TrialOutcome | None:
        try:
            self.client.tell(
                study.name, trial.number, trial.attempt, value=value, metrics=metrics, state=state
            )
        except FailedPreconditionError as error:
            log.warning(
                "result refused study=%s trial=%d error=%s", study.name, trial.number, error
            )
            return None
        log.info(
            "trial %s study=%s trial=%d attempt=%d value=%s",
            state.value.lower(),
            study.name,
            trial.number,
            trial.attempt,
            value,
        )
        return TrialOutcome(trial.number, trial.attempt, state, value)

    def _fail(
        self, study: Study, trial: Trial, message: str, *, retry: bool = False
    ) -> TrialOutcome | None:
        try:
            self.client.tell(
                study.name,
                trial.number,
                trial.attempt,
                state=TrialState.FAILED,
                failure_message=message,
                retry=retry,
            )
        except FailedPreconditionError as error:
            log.warning(
                "failure refused study=%s trial=%d error=%s", study.name, trial.number, error
            )
            return None
        log.warning(
            "trial failed study=%s trial=%d attempt=%d message=%r",
            study.name,
            trial.number,
            trial.attempt,
            message.splitlines()[0] if message else "",
        )
        return TrialOutcome(trial.number, trial.attempt, TrialState.FAILED, None, message)


#: Runs in front of a trial command (Linux): ask for SIGKILL when the worker dies, so a
#: killed worker leaves no orphan trial holding its GPUs while the chief hands the trial to
#: another worker; then exec the command.  A launcher rather than ``preexec_fn``, because
#: Python code between fork and exec in a process running gRPC threads can deadlock or abort.
_LAUNCHER = """\
import ctypes, os, signal, sys
ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != int(sys.argv[1]):
    sys.exit("hpsearch worker: the worker died before the trial started")
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as error:
    sys.exit(f"hpsearch worker: cannot start {sys.argv[2]!r}: {error.strerror}")
"""


def _dying_with_this_process(command: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), *command]


def _terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the trial's process group, then SIGKILL it if it outlives ``grace``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def _finite(report: Report) -> dict[str, float]:
    return {k: v for k, v in report.metrics.items() if math.isfinite(v)}


def _tail(path: Path, lines: int = FAILURE_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as handle:
            kept = deque(handle, maxlen=lines)
    except OSError:
        return "(no output)"
    text = b"".join(kept).decode("utf-8", "replace").rstrip()
    return text or "(no output)"


def _scratch_dir(output_dir: str) -> Path:
    """Where the worker keeps its per-attempt files (metric file, output log): under a local
    output dir, else (``gs://...``) in the machine's temporary directory."""
    if "://" in output_dir:
        return Path(tempfile.gettempdir()) / "hpsearch-worker"
    return Path(output_dir) / ".hpsearch"


def _absolute(path: str) -> str:
    """A local directory as an absolute path (with Vertex AI's trailing slash); a ``gs://``
    URI as it is."""
    if "://" in path:
        return path
    return str(Path(path).resolve()) + "/"


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])
