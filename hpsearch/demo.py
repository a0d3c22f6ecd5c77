"""``hpsearch demo``: a study run end to end on one machine, the way production runs it.

A chief in this process over an SQLite file, ``workers`` ``hpsearch worker`` processes,
and each trial the plain Vertex AI trial script ``trials/mnist.py`` on scikit-learn's
bundled digits (no download), so every piece a real deployment uses is exercised: the
gRPC API, leases and heartbeats, the hypertune metric file, the SQL store.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.errors import InvalidArgumentError
from hpsearch.records import TrialState
from hpsearch.space import Budget, StudyConfig, load_study

if TYPE_CHECKING:
    from hpsearch.chief import Chief

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


class Demo:
    """The demo study running: a chief in this process, ``hpsearch worker`` processes.

    A context manager: entering starts the chief and creates the study, :meth:`start_workers`
    starts the workers, leaving stops them all.  What to show meanwhile is the caller's
    (``hpsearch demo`` prints a progress line from :meth:`progress`).
    """

    def __init__(
        self,
        storage: str = "sqlite:///hpsearch-demo.db",
        trials: int = 12,
        workers: int = 2,
        study_name: str | None = None,
        epochs: int = 3,
        output_dir: str = "hpsearch-demo-output",
    ) -> None:
        if trials < 1 or workers < 1:
            raise InvalidArgumentError("--trials and --workers must be at least 1")
        self.script = _trial_script()
        _require_tensorflow()
        self.config = _demo_config(study_name, trials, workers)
        self.storage = storage
        self.workers = workers
        self.epochs = epochs
        self.output_dir = output_dir
        self._chief: Chief | None = None
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def chief(self) -> Chief:
        """The running chief (between entering and leaving)."""
        assert self._chief is not None, "enter the Demo first"
        return self._chief

    def __enter__(self) -> Demo:
        from hpsearch.chief import Chief

        chief = Chief(self.storage, host="127.0.0.1", port=0, fit_process=True)  # `hpsearch demo`
        chief.start()
        self._chief = chief
        try:
            assert chief.oracle is not None
            chief.oracle.create_study(self.config)
        except BaseException:
            self._stop()
            raise
        return self

    def start_workers(self) -> None:
        """Start the ``hpsearch worker`` processes, each running the trial script."""
        command = [
            sys.executable,
            str(self.script),
            "--dataset",
            "digits",
            "--epochs",
            str(self.epochs),
        ]
        for index in range(self.workers):
            self._processes.append(
                _start_worker(
                    self.chief.address, self.config.name, index, self.output_dir, command
                )
            )

    def workers_running(self) -> bool:
        """Whether any worker is still running (they leave once the study is finished)."""
        return any(p.poll() is None for p in self._processes)

    def progress(self) -> DemoProgress:
        """The study's trial counts and best value so far."""
        store = self.chief.store
        assert store is not None
        counts = store.count_trials(self.config.name)
        best = store.best_trials(self.config.name, 1)
        return DemoProgress(
            finished=sum(
                counts.get(s, 0)
                for s in (TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED)
            ),
            running=counts.get(TrialState.RUNNING, 0),
            failed=counts.get(TrialState.FAILED, 0),
            best=best[0].value if best else None,
        )

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            failed = [p.returncode for p in self._processes if p.returncode != 0]
            if failed:
                log.warning("workers exited with %s", failed)
        self._stop()

    def _stop(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.chief.stop(1)


@dataclass(frozen=True)
class DemoProgress:
    """Where the demo study stands: trials finished (completed, failed or stopped), running
    and failed, and the best value so far."""

    finished: int
    running: int
    failed: int
    best: float | None


def _demo_config(study_name: str | None, trials: int, workers: int) -> StudyConfig:
    example = REPO / "examples" / "mnist_mlp.yaml"
    if not example.is_file():
        raise InvalidArgumentError(
            "examples/mnist_mlp.yaml not found: run the demo from a clone of the hpsearch "
            "repository"
        )
    config = load_study(example)
    name = study_name or f"demo-digits-{time.strftime('%Y%m%d-%H%M%S')}"
    budget = Budget(
        max_trials=trials, parallel_trials=workers, max_failed_trials=trials, max_attempts=2
    )
    return replace(config, name=name, budget=budget, lease_seconds=120.0)


def _trial_script() -> Path:
    for candidate in (REPO / "trials" / "mnist.py", Path.cwd() / "trials" / "mnist.py"):
        if candidate.is_file():
            return candidate
    raise InvalidArgumentError(
        "trials/mnist.py not found: run the demo from a clone of the hpsearch repository"
    )


def _require_tensorflow() -> None:
    import importlib.util

    missing = [
        m for m in ("tensorflow", "hypertune", "sklearn") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise InvalidArgumentError(
            f"the demo trains Keras models and needs {', '.join(missing)}: "
            "pip install -e '.[tf]' (or '.[all]')"
        )


def _start_worker(
    address: str, study: str, index: int, output_dir: str, command: list[str]
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable,
        "-m",
        "hpsearch",
        "--log-level",
        "WARNING",
        "worker",
        "--oracle",
        address,
        "--study",
        study,
        "--worker-id",
        f"demo-worker-{index}",
        "--gpus-per-trial",
        "0",
        "--output-dir",
        output_dir,
        "--",
        *command,
    ]
    return subprocess.Popen(cmd, env=env)
