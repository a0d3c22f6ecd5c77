"""``hpsearch demo``: the demo study (:mod:`hpsearch.demo`) run to its budget, with a live
progress line and the best trials at the end."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from hpsearch.cli.common import Subparsers, add_storage
from hpsearch.cli.output import ProgressLine
from hpsearch.cli.studies import print_best
from hpsearch.records import TrialState

if TYPE_CHECKING:
    from hpsearch.demo import Demo


def register(subparsers: Subparsers) -> None:
    """Add ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help="run a demo study end to end on an embedded SQLite file",
        description="Creates the classic Keras MLP study, starts a chief in this process and "
        "`hpsearch worker` processes running trials/mnist.py on scikit-learn's digits, and "
        "runs the study to its budget.",
    )
    add_storage(parser, default="sqlite:///hpsearch-demo.db")
    parser.add_argument("--trials", type=int, default=12, help="trials to run (default 12)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="parallel workers (default 2)")
    parser.add_argument("--study", default=None, help="study name (default: a fresh one)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    """Exit status 0 if at least one trial completed, else 1."""
    from hpsearch.demo import Demo
    from hpsearch.store import Store

    demo = Demo(
        storage=args.storage,
        trials=args.trials,
        workers=args.workers,
        study_name=args.study,
        epochs=args.epochs,
    )
    name = demo.config.name
    with demo:
        print(
            f"study {name!r}: {args.trials} trials of {demo.script.name} on the digits data "
            f"set, {args.workers} workers, chief at {demo.chief.address}, storage {args.storage}",
            flush=True,
        )
        demo.start_workers()
        _watch(demo, args.trials)
    print()
    print_best(args.storage, name, 3)
    print(f"\nall trials: hpsearch trials {name} --storage {args.storage}")
    store = Store(args.storage)
    try:
        counts = store.count_trials(name)
    finally:
        store.close()
    return 0 if counts.get(TrialState.COMPLETED, 0) > 0 else 1


def _watch(demo: Demo, trials: int) -> None:
    """A live progress line until every worker has left."""
    metric = demo.config.metric.name
    line = ProgressLine()
    while demo.workers_running():
        progress = demo.progress()
        line.show(
            f"{progress.finished}/{trials} trials finished, {progress.running} running, "
            f"{progress.failed} failed"
            + (f", best {metric}={progress.best:.4f}" if progress.best is not None else "")
        )
        time.sleep(1.0)
    line.close()
