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
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.errors import InvalidArgumentError
from hpsearch.records import TrialState
from hpsearch.space import Budget, StudyConfig, load_study

if TYPE_CHECKING:
    from hpsearch.chief import Chief

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]


def run_demo(
    storage: str = "sqlite:///hpsearch-demo.db",
    trials: int = 12,
    workers: int = 2,
    study_name: str | None = None,
    epochs: int = 3,
    output_dir: str = "hpsearch-demo-output",
) -> int:
    """Run the demo study to its budget; returns the process exit status."""
    from hpsearch.chief import Chief

    if trials < 1 or workers < 1:
        raise InvalidArgumentError("--trials and --workers must be at least 1")
    script = _trial_script()
    _require_tensorflow()
    config = _demo_config(study_name, trials, workers)
    chief = Chief(storage, host="127.0.0.1", port=0, fit_process=True)  # run by `hpsearch demo`
    chief.start()
    assert chief.oracle is not None and chief.store is not None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        chief.oracle.create_study(config)
        print(
            f"study {config.name!r}: {trials} trials of {script.name} on the digits data set, "
            f"{workers} workers, chief at {chief.address}, storage {storage}",
            flush=True,
        )
        command = [sys.executable, str(script), "--dataset", "digits", "--epochs", str(epochs)]
        for index in range(workers):
            processes.append(_start_worker(chief.address, config.name, index, output_dir, command))
        _watch(chief, config.name, trials, processes)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        chief.stop(1)
    return _summary(storage, config.name)


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


def _watch(
    chief: Chief, study: str, trials: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    """A live progress line until every worker has left."""
    assert chief.store is not None
    metric = chief.store.get_study(study).config.metric.name
    last = ""
    start = time.monotonic()
    interactive = sys.stdout.isatty()
    while any(p.poll() is None for p in processes):
        counts = chief.store.count_trials(study)
        best = chief.store.best_trials(study, 1)
        done = sum(
            counts.get(s, 0) for s in (TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED)
        )
        line = (
            f"[{time.monotonic() - start:5.0f}s] {done}/{trials} trials finished, "
            f"{counts.get(TrialState.RUNNING, 0)} running, "
            f"{counts.get(TrialState.FAILED, 0)} failed"
            + (
                f", best {metric}={best[0].value:.4f}"
                if best and best[0].value is not None
                else ""
            )
        )
        if line.split("]", 1)[1] != last.split("]", 1)[-1] or interactive:
            print(
                ("\r" + line) if interactive else line, end="" if interactive else "\n", flush=True
            )
            last = line
        time.sleep(1.0)
    if interactive:
        print()
    failed = [p.returncode for p in processes if p.returncode != 0]
    if failed:
        log.warning("workers exited with %s", failed)


def _summary(storage: str, study: str) -> int:
    from hpsearch.cli import main as cli

    print()
    cli(["--log-level", "WARNING", "best", study, "-n", "3", "--storage", storage])
    print(f"\nall trials: hpsearch trials {study} --storage {storage}")
    from hpsearch.store import Store

    store = Store(storage)
    try:
        counts = store.count_trials(study)
    finally:
        store.close()
    return 0 if counts.get(TrialState.COMPLETED, 0) > 0 else 1
