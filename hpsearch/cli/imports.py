"""``hpsearch import``: bring another tuner's trials into an hpsearch study.

- ``import optuna --from STORAGE [--study NAME]``: an Optuna study (an RDB URL or a journal
  file);
- ``import keras-tuner DIR``: a Keras Tuner project directory (oracle.json, trial_*/).

Both create the study (``--into``, default the source's name) or add to an existing one
whose metric and goal match, and are idempotent.  Optuna is imported only by its command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from hpsearch.cli.common import Subparsers, add_actions, add_storage
from hpsearch.cli.output import ProgressLine, progress_every


def register(subparsers: Subparsers) -> None:
    """Add ``import`` and its actions."""
    parser = subparsers.add_parser(
        "import",
        help="import an Optuna study or a Keras Tuner project into a study",
        description="Copies the finished trials of another tuner into an hpsearch study "
        "(created when it does not exist), where the search uses them like its own. "
        "Importing again adds only the trials finished since.",
    )
    actions = add_actions(parser, "sources")

    optuna = actions.add_parser(
        "optuna",
        help="import an Optuna study",
        description="Imports an Optuna study: its space (Optuna's distributions, the union "
        "over its trials, define-by-run conditionals made conditional parameters), COMPLETE "
        "trials with their values, PRUNED ones as STOPPED, FAIL ones as FAILED, and their "
        "intermediate values as measurements. Needs the optuna extra.",
    )
    optuna.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="STORAGE",
        help="Optuna's storage: an RDB URL (sqlite:///optuna.db, postgresql://...) or a "
        "journal file",
    )
    optuna.add_argument(
        "--study",
        default=None,
        help="the Optuna study's name (default: the storage's only study)",
    )
    _common(
        optuna,
        metric_help="name of the objective (default: the Optuna study's metric "
        "name, else 'value')",
    )
    optuna.set_defaults(func=_cmd_optuna)

    kt = actions.add_parser(
        "keras-tuner",
        help="import a Keras Tuner project directory",
        description="Imports a Keras Tuner project directory (<directory>/<project_name>, "
        "holding oracle.json and trial_*/trial.json): its space, COMPLETED trials with "
        "their scores and metrics, STOPPED, FAILED and INVALID ones. Hyperband's tuner/* "
        "values are kept as a tag, not as parameters. Reads JSON only (no TensorFlow).",
    )
    kt.add_argument("project", metavar="DIR", help="the Keras Tuner project directory")
    _common(
        kt,
        metric_help="the objective's metric (default: the one metric whose value "
        "at each trial's best step is its score)",
    )
    kt.set_defaults(func=_cmd_keras_tuner)


# -- commands --------------------------------------------------------------------------------
def _cmd_optuna(args: argparse.Namespace) -> int:
    from hpsearch.importers.optuna import import_optuna

    return _run(args, import_optuna, args.source, args.study)


def _cmd_keras_tuner(args: argparse.Namespace) -> int:
    from hpsearch.importers.keras_tuner import import_keras_tuner

    return _run(args, import_keras_tuner, args.project)


# -- helpers ---------------------------------------------------------------------------------
def _common(parser: argparse.ArgumentParser, *, metric_help: str) -> None:
    parser.add_argument(
        "--into",
        default=None,
        metavar="NAME",
        help="the hpsearch study to import into (default: the source's name); created when "
        "it does not exist, else its metric and goal must match",
    )
    parser.add_argument("--metric", default=None, help=metric_help)
    parser.add_argument(
        "--max-trials",
        type=int,
        default=None,
        help="budget of a study the import creates (default: the trials imported plus 100)",
    )
    parser.add_argument(
        "--algorithm",
        default="bayesian",
        help="algorithm of a study the import creates (default bayesian)",
    )
    add_storage(parser)


def _run(args: argparse.Namespace, importer: Callable[..., Any], *source: Any) -> int:
    """Run ``importer(store, *source, ...)`` with the common flags and print what it did."""
    from hpsearch.store import Store

    line = ProgressLine()
    store = Store(args.storage)
    try:
        result = importer(
            store,
            *source,
            into=args.into,
            metric=args.metric,
            max_trials=args.max_trials,
            algorithm=args.algorithm,
            progress=progress_every(line, "imported"),
        )
    finally:
        line.close()
        store.close()
    created = " (created)" if result.created_study else ""
    print(
        f"imported {result.added} trial(s) of the {result.source} into study "
        f"{result.study!r}{created}: {result.completed} completed, {result.stopped} stopped, "
        f"{result.failed} failed; {result.unchanged} imported before, {result.pending} not "
        f"finished yet, {result.skipped} failed ones skipped (parameters outside the space)"
    )
    if result.total_trials >= result.max_trials:
        print(
            f"note: study {result.study!r} now holds {result.total_trials} trials and its "
            f"budget is {result.max_trials}: raise it to search on, e.g. `hpsearch study "
            f"update {result.study} --max-trials {result.total_trials + 50}`"
        )
    return 0
