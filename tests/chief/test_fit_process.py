"""Model fits run in a child process of the chief, which may die without harm."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

from hpsearch.oracle import AskStatus, Oracle
from hpsearch.records import TrialState
from hpsearch.space import StudyConfig
from hpsearch.store import Store


def _run(oracle: Oracle, name: str, trials: int) -> None:
    for _ in range(trials):
        answer = oracle.ask(name, "w0", 1, wait=60)
        assert answer.status is AskStatus.TRIALS, answer
        trial = answer.trials[0]
        x, y = float(trial.params["x"]), float(trial.params["y"])
        oracle.complete(name, trial.number, trial.attempt, value=(x - 0.3) ** 2 + (y - 0.7) ** 2)


def _xy_study(name: str, *, max_trials: int, seed: int) -> StudyConfig:
    """Bayesian search over two unit doubles, one trial at a time."""
    return StudyConfig.from_dict(
        {
            "name": name,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {
                "x": {"type": "double", "min": 0.0, "max": 1.0},
                "y": {"type": "double", "min": 0.0, "max": 1.0},
            },
            "budget": {"max_trials": max_trials, "parallel_trials": 1},
            "algorithm": "bayesian",
            "seed": seed,
        }
    )


def test_bayesian_fits_run_in_a_child_process_that_may_die(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'fits.db'}")
    oracle = Oracle(store, suggest_in_process=True)
    oracle.start()
    config = _xy_study("fits", max_trials=30, seed=3)
    try:
        oracle.create_study(config)
        _run(oracle, "fits", 12)
        children = multiprocessing.active_children()
        assert children, "the fits ran in the chief's own process"
        for child in children:
            os.kill(child.pid, signal.SIGKILL)
        _run(oracle, "fits", 6)  # the next fit falls back in-thread, then a new child
        trials = store.list_trials("fits")
        assert len(trials) == 18
        assert all(t.state is TrialState.COMPLETED for t in trials)
        assert len({(t.params["x"], t.params["y"]) for t in trials}) == 18
        assert multiprocessing.active_children(), "no new fit process after the first died"
    finally:
        oracle.stop()
        store.close()


def test_random_search_starts_no_fit_process(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'random.db'}")
    oracle = Oracle(store, suggest_in_process=True)
    oracle.start()
    before = {c.pid for c in multiprocessing.active_children()}
    config = StudyConfig.from_dict(
        {
            "name": "cheap",
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"type": "double", "min": 0.0, "max": 1.0}},
            "budget": {"max_trials": 5},
            "algorithm": "random",
        }
    )
    try:
        oracle.create_study(config)
        for _ in range(5):
            trial = oracle.ask("cheap", "w0", 1, wait=10).trials[0]
            oracle.complete("cheap", trial.number, trial.attempt, value=1.0)
        # No child of its own (one left by an earlier test may have ended meanwhile).
        assert {c.pid for c in multiprocessing.active_children()} <= before
    finally:
        oracle.stop()
        store.close()


def test_an_embedded_oracle_fits_in_thread_by_default(tmp_path: Path) -> None:
    """Spawning imports the program's main module: a library user's unguarded script
    must not be run again in a child, so the fit process is opt-in."""
    store = Store(f"sqlite:///{tmp_path / 'default.db'}")
    oracle = Oracle(store)
    oracle.start()
    before = {c.pid for c in multiprocessing.active_children()}
    config = _xy_study("embedded", max_trials=10, seed=1)
    try:
        oracle.create_study(config)
        _run(oracle, "embedded", 8)
        # No child of its own (one left by an earlier test may have ended meanwhile).
        assert {c.pid for c in multiprocessing.active_children()} <= before
        assert store.count_trials("embedded")[TrialState.COMPLETED] == 8
    finally:
        oracle.stop()
        store.close()
