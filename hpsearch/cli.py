"""The ``hpsearch`` command: argument parsing and output formatting only.

Every subcommand turns its arguments into a call on the store, the chief, the worker
or the demo; user mistakes surface as one line on stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from hpsearch import __version__
from hpsearch.errors import HpsearchError
from hpsearch.records import Study, Trial, TrialState

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
#: Feature packages that add their own subcommands: each module has
#: ``register(subparsers, storage_arg=...)`` adding parsers whose ``handler`` does the work.
#: They must import nothing heavy (TensorFlow, aiplatform) at module level.
PLUGIN_COMMANDS = (
    "hpsearch.worker.cli",
    "hpsearch.vertex.cli",
    "hpsearch.dashboard.cli",
    "hpsearch.export",
)
EXIT_USAGE = 2

log = logging.getLogger("hpsearch")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpsearch`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except HpsearchError as exc:
        print(f"hpsearch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if not _is_storage_error(exc) else 3
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hpsearch trials x | head`
        return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpsearch",
        description="Hyperparameter search for TensorFlow/Keras: a Bayesian-optimization chief, "
        "workers, and SQL-persisted studies.",
    )
    parser.add_argument("--version", action="version", version=f"hpsearch {__version__}")
    parser.add_argument(
        "--log-level",
        default=os.environ.get("HPSEARCH_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default INFO, or $HPSEARCH_LOG_LEVEL)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="run a demo study end to end on an embedded SQLite file",
        description="Creates the classic Keras MLP study, starts a chief in this process and "
        "`hpsearch worker` processes running trials/mnist.py on scikit-learn's digits, and "
        "runs the study to its budget.",
    )
    _storage_arg(demo, default="sqlite:///hpsearch-demo.db")
    demo.add_argument("--trials", type=int, default=12, help="trials to run (default 12)")
    demo.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    demo.add_argument("--workers", type=int, default=2, help="parallel workers (default 2)")
    demo.add_argument("--study", default=None, help="study name (default: a fresh one)")
    demo.set_defaults(handler=_cmd_demo)

    chief = sub.add_parser(
        "chief",
        help="run the oracle: Keras Tuner's gRPC service and hpsearch.v1",
        description="Serves keras_tuner.Oracle (stock Keras Tuner workers), hpsearch.v1 "
        "(hpsearch workers and clients) and gRPC health on one port.",
    )
    _storage_arg(chief)
    chief.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    chief.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    chief.add_argument(
        "--study",
        default=None,
        help="study file to create (or resume) or name of an existing study; it is the one "
        "Keras Tuner workers get (they send no study name)",
    )
    from hpsearch.chief_cli import add_security_arguments, add_serving_arguments

    add_serving_arguments(chief)
    add_security_arguments(chief)
    chief.set_defaults(handler=_cmd_chief)

    study = sub.add_parser("study", help="create, list and inspect studies")
    study_sub = study.add_subparsers(title="study commands", metavar="ACTION")
    create = study_sub.add_parser("create", help="create a study from a YAML or JSON file")
    create.add_argument("file", help="study file (.yaml, .yml or .json)")
    create.add_argument("--name", default=None, help="override the name given in the file")
    create.add_argument(
        "--exist-ok", action="store_true", help="succeed if an identical study exists"
    )
    _storage_arg(create)
    create.set_defaults(handler=_cmd_study_create)
    listing = study_sub.add_parser("list", help="list studies with trial counts and best value")
    _format_arg(listing)
    _storage_arg(listing)
    listing.set_defaults(handler=_cmd_study_list)
    show = study_sub.add_parser("show", help="show a study's declaration and progress")
    show.add_argument("name")
    _format_arg(show, choices=("yaml", "json"), default="yaml")
    _storage_arg(show)
    show.set_defaults(handler=_cmd_study_show)
    study.set_defaults(handler=lambda args: _help(study))

    trials = sub.add_parser("trials", help="list a study's trials")
    trials.add_argument("name", help="study name")
    trials.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in TrialState],
        help="only trials in this state (repeatable)",
    )
    trials.add_argument("--limit", type=int, default=None, help="at most this many rows")
    _format_arg(trials)
    _storage_arg(trials)
    trials.set_defaults(handler=_cmd_trials)

    best = sub.add_parser("best", help="show the best trial(s) of a study")
    best.add_argument("name", help="study name")
    best.add_argument("-n", type=int, default=1, help="how many (default 1)")
    _format_arg(best)
    _storage_arg(best)
    best.set_defaults(handler=_cmd_best)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(title="db commands", metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="apply schema migrations (Alembic)")
    _storage_arg(upgrade)
    upgrade.set_defaults(handler=_cmd_db_upgrade)
    current = db_sub.add_parser("current", help="show the schema revision of a database")
    _storage_arg(current)
    current.set_defaults(handler=_cmd_db_current)
    db.set_defaults(handler=lambda args: _help(db))

    for module_name in PLUGIN_COMMANDS:
        if _module_exists(module_name):
            importlib.import_module(module_name).register(sub, storage_arg=_storage_arg)
    return parser


# -- commands ------------------------------------------------------------------------------------
def _cmd_study_create(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hpsearch.space import load_study

    config = load_study(args.file)
    if args.name:
        config = replace(config, name=args.name)
    store = _open_store(args.storage)
    study = store.create_study(config, exist_ok=args.exist_ok)
    print(
        f"created study {study.name!r} ({len(config.space)} parameters, "
        f"{config.budget.max_trials} trials, algorithm {config.algorithm}) "
        f"in {_safe_url(args.storage)}"
    )
    return 0


def _cmd_study_list(args: argparse.Namespace) -> int:
    store = _open_store(args.storage)
    rows = []
    for summary in store.list_studies():
        config = summary.study.config
        counts = summary.counts
        rows.append(
            {
                "name": summary.study.name,
                "state": summary.study.state.value,
                "metric": f"{config.metric.name} ({config.metric.goal.value})",
                "trials": sum(counts.values()),
                "completed": counts.get(TrialState.COMPLETED, 0),
                "running": counts.get(TrialState.RUNNING, 0),
                "failed": counts.get(TrialState.FAILED, 0),
                "best": summary.best_value,
                "last_activity": _iso(summary.last_activity),
            }
        )
    _emit(rows, args.format, empty="no studies yet: create one with `hpsearch study create FILE`")
    return 0


def _cmd_study_show(args: argparse.Namespace) -> int:
    from hpsearch.space import dumps_study

    store = _open_store(args.storage)
    study = store.get_study(args.name)
    counts = store.count_trials(args.name)
    best = store.best_trials(args.name, 1)
    if args.format == "json":
        data = {
            "study": study.config.to_dict(),
            "state": study.state.value,
            "created_at": _iso(study.created_at),
            "trials": {state.value: n for state, n in counts.items()},
            "best": _trial_row(best[0], study) if best else None,
        }
        print(json.dumps(data, indent=2, default=str))
        return 0
    sys.stdout.write(dumps_study(study.config))
    print(f"# state: {study.state.value}, created {_iso(study.created_at)}")
    print(
        "# trials: "
        + (", ".join(f"{s.value.lower()} {n}" for s, n in counts.items() if n) or "none yet")
    )
    if best:
        print(
            f"# best: trial {best[0].number} {study.config.metric.name}={best[0].value:.6g} "
            f"{json.dumps(best[0].params)}"
        )
    return 0


def _cmd_trials(args: argparse.Namespace) -> int:
    store = _open_store(args.storage)
    study = store.get_study(args.name)
    states = [TrialState(s) for s in args.state] if args.state else None
    trials = store.list_trials(args.name, states=states, limit=args.limit)
    _emit([_trial_row(t, study) for t in trials], args.format, empty="no trials")
    return 0


def _cmd_best(args: argparse.Namespace) -> int:
    store = _open_store(args.storage)
    study = store.get_study(args.name)
    trials = store.best_trials(args.name, args.n)
    _emit(
        [_trial_row(t, study) for t in trials],
        args.format,
        empty=f"study {args.name!r} has no completed trial yet",
    )
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from hpsearch.store import upgrade

    before, after = upgrade(args.storage)
    if before == after:
        print(f"{_safe_url(args.storage)} is already at revision {after}")
    else:
        print(f"upgraded {_safe_url(args.storage)} from {before or 'empty'} to {after}")
    return 0


def _cmd_db_current(args: argparse.Namespace) -> int:
    from hpsearch.store import current_revision, head_revision

    current = current_revision(args.storage)
    head = head_revision()
    state = "up to date" if current == head else "run `hpsearch db upgrade` to migrate"
    print(f"{_safe_url(args.storage)}: revision {current or 'none'} (head {head}; {state})")
    return 0


def _cmd_chief(args: argparse.Namespace) -> int:
    from hpsearch.chief import run_chief
    from hpsearch.chief_cli import security_options

    run_chief(
        port=args.port,
        host=args.host,
        storage=args.storage,
        study=args.study,
        **security_options(args),  # type: ignore[arg-type]
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hpsearch.demo import run_demo

    return run_demo(
        storage=args.storage,
        trials=args.trials,
        workers=args.workers,
        study_name=args.study,
        epochs=args.epochs,
    )


# -- helpers -------------------------------------------------------------------------------------
def _storage_arg(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    parser.add_argument(
        "--storage",
        default=os.environ.get("HPSEARCH_STORAGE", default or DEFAULT_STORAGE),
        help="database URL: sqlite:///path.db or postgresql+psycopg://user@host/db "
        f"(default $HPSEARCH_STORAGE, else {default or DEFAULT_STORAGE})",
    )


def _format_arg(
    parser: argparse.ArgumentParser,
    choices: tuple[str, ...] = ("table", "csv", "json"),
    default: str = "table",
) -> None:
    parser.add_argument(
        "--format", choices=choices, default=default, help=f"output format (default {default})"
    )


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is absent
        return False


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


def _open_store(url: str) -> Any:
    from hpsearch.store import Store

    return Store(url)


def _is_storage_error(exc: HpsearchError) -> bool:
    from hpsearch.errors import StorageError

    return isinstance(exc, StorageError)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic announces every plugin it loads at INFO; keep migrations' own lines only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, getattr(logging, level)))


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from hpsearch.store import safe_url

    return safe_url(url)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def _trial_row(trial: Trial, study: Study) -> dict[str, Any]:
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.value,
        study.config.metric.name: trial.value,
    }
    for name in study.config.space.names:
        row[name] = trial.params.get(name)
    for name, value in trial.params.items():  # parameters outside the declared space
        row.setdefault(name, value)
    row["attempt"] = trial.attempt
    row["worker"] = trial.worker_id
    duration = (
        trial.completed_at - trial.started_at
        if trial.completed_at is not None and trial.started_at is not None
        else None
    )
    row["duration_s"] = None if duration is None else round(duration, 3)
    if trial.failure_message:
        row["failure"] = trial.failure_message
    return row


def _emit(rows: list[dict[str, Any]], fmt: str, *, empty: str) -> None:
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
        return
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        sys.stdout.write(buffer.getvalue())
        return
    if not rows:
        print(empty)
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
