"""``hpsearch study create|list|show``, ``hpsearch trials`` and ``hpsearch best``: the store's
studies and trials, read and created directly in the database (no chief needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from hpsearch.cli import lifecycle
from hpsearch.cli.common import Subparsers, add_actions, add_format, add_storage
from hpsearch.cli.output import emit, iso, print_json
from hpsearch.records import Study, Trial, TrialState

if TYPE_CHECKING:
    from hpsearch.store import Store


def register(subparsers: Subparsers) -> None:
    """Add ``study``, ``trials`` and ``best``."""
    study = subparsers.add_parser(
        "study", help="create, list, inspect, stop, update, copy and delete studies"
    )
    actions = add_actions(study, "study commands")
    create = actions.add_parser("create", help="create a study from a YAML or JSON file")
    create.add_argument("file", help="study file (.yaml, .yml or .json)")
    create.add_argument("--name", default=None, help="override the name given in the file")
    create.add_argument(
        "--exist-ok", action="store_true", help="succeed if an identical study exists"
    )
    add_storage(create)
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", help="list studies with trial counts and best value")
    add_format(listing)
    add_storage(listing)
    listing.set_defaults(func=_list)
    show = actions.add_parser("show", help="show a study's declaration and progress")
    show.add_argument("name")
    add_format(show, choices=("yaml", "json"), default="yaml")
    add_storage(show)
    show.set_defaults(func=_show)
    lifecycle.add_actions(actions)

    trials = subparsers.add_parser("trials", help="list a study's trials")
    trials.add_argument("name", help="study name")
    trials.add_argument(
        "--state",
        action="append",
        choices=[s.value for s in TrialState],
        help="only trials in this state (repeatable)",
    )
    trials.add_argument("--limit", type=int, default=None, help="at most this many rows")
    add_format(trials)
    add_storage(trials)
    trials.set_defaults(func=_trials)

    best = subparsers.add_parser(
        "best",
        help="show the best trial(s) of a study; with several metrics, its Pareto front",
    )
    best.add_argument("name", help="study name")
    best.add_argument(
        "-n",
        type=int,
        default=None,
        help="how many (default 1; with several metrics, the whole front)",
    )
    add_format(best)
    add_storage(best)
    best.set_defaults(func=_best)


def print_best(storage: str, name: str, n: int | None, fmt: str = "table") -> int:
    """The ``n`` best feasible completed trials of study ``name`` (``None``: 1, or the
    whole Pareto front of a multi-objective study), as ``hpsearch best`` prints them."""
    store = _open_store(storage)
    study = store.get_study(name)
    if n is None:
        n = MAX_FRONT if study.config.multi_objective else 1
    trials = store.best_trials(name, n)
    if study.config.multi_objective and fmt == "table":
        print(
            f"# Pareto front: {len(trials)} trial(s) no other feasible trial beats on every "
            f"metric of {', '.join(f'{m.name} ({m.goal.value})' for m in study.config.metrics)}"
        )
    emit(
        [_trial_row(t, study) for t in trials],
        fmt,
        empty=f"study {name!r} has no feasible completed trial yet",
    )
    return 0


#: The most trials ``hpsearch best`` shows of a Pareto front by default.
MAX_FRONT = 10_000


def _create(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from hpsearch.space import load_study
    from hpsearch.store import safe_url

    config = load_study(args.file)
    if args.name:
        config = replace(config, name=args.name)
    store = _open_store(args.storage)
    study = store.create_study(config, exist_ok=args.exist_ok)
    print(
        f"created study {study.name!r} ({len(config.space)} parameters, "
        f"{config.budget.max_trials} trials, algorithm {config.algorithm}) "
        f"in {safe_url(args.storage)}"
    )
    return 0


def _list(args: argparse.Namespace) -> int:
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
                "last_activity": iso(summary.last_activity),
            }
        )
    emit(rows, args.format, empty="no studies yet: create one with `hpsearch study create FILE`")
    return 0


def _show(args: argparse.Namespace) -> int:
    from hpsearch.space import dumps_study

    store = _open_store(args.storage)
    study = store.get_study(args.name)
    counts = store.count_trials(args.name)
    best = store.best_trials(args.name, 1)
    warm = _warm_start(store, study)
    if args.format == "json":
        print_json(
            {
                "study": study.config.to_dict(),
                "state": study.state.value,
                "created_at": iso(study.created_at),
                "trials": {state.value: n for state, n in counts.items()},
                "best": _trial_row(best[0], study) if best else None,
                "note": study.note,
                "tags": study.user_tags,
                "warm_start": warm,
            }
        )
        return 0
    sys.stdout.write(dumps_study(study.config))
    print(f"# state: {study.state.value}, created {iso(study.created_at)}")
    if study.note:
        print("# note: " + study.note.replace("\n", "\n#   "))
    if study.user_tags:
        print("# tags: " + ", ".join(f"{k}={v}" for k, v in sorted(study.user_tags.items())))
    if warm is not None:
        print(
            f"# warm start: {warm['used']} completed trials of study {warm['study']!r} "
            f"in the search's history ({warm['skipped']} outside this space)"
        )
    print(
        "# trials: "
        + (", ".join(f"{s.value.lower()} {n}" for s, n in counts.items() if n) or "none yet")
    )
    if best and study.config.multi_objective:
        front = store.best_trials(args.name, MAX_FRONT)
        print(
            f"# Pareto front: {len(front)} trial(s) (hpsearch best {args.name} lists them), "
            f"numbers {', '.join(str(t.number) for t in front[:20])}"
            + (" ..." if len(front) > 20 else "")
        )
    elif best:
        print(
            f"# best: trial {best[0].number} {study.config.metric.name}={best[0].value:.6g} "
            f"{json.dumps(best[0].params)}"
        )
    return 0


def _warm_start(store: Store, study: Study) -> dict[str, Any] | None:
    """How many completed trials of the warm-start study this study's search starts from
    (the oracle's rule: :func:`hpsearch.space.lifecycle.fit_to_space`)."""
    from hpsearch.errors import NotFoundError
    from hpsearch.space.lifecycle import fit_to_space

    source = study.config.warm_start
    if source is None:
        return None
    try:
        completed = store.list_trials(source.study, states=[TrialState.COMPLETED])
    except NotFoundError:
        return {"study": source.study, "used": 0, "skipped": 0, "missing": True}
    used = sum(
        1
        for t in completed
        if t.value is not None and fit_to_space(t.params, study.config.space) is not None
    )
    return {"study": source.study, "used": used, "skipped": len(completed) - used}


def _best(args: argparse.Namespace) -> int:
    return print_best(args.storage, args.name, args.n, args.format)


def _trials(args: argparse.Namespace) -> int:
    store = _open_store(args.storage)
    study = store.get_study(args.name)
    states = [TrialState(s) for s in args.state] if args.state else None
    trials = store.list_trials(args.name, states=states, limit=args.limit)
    emit([_trial_row(t, study) for t in trials], args.format, empty="no trials")
    return 0


def _open_store(url: str) -> Store:
    from hpsearch.store import Store

    return Store(url)


def _trial_row(trial: Trial, study: Study) -> dict[str, Any]:
    config = study.config
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.value,
        config.metric.name: trial.value,
    }
    for metric in config.metrics[1:]:  # the other objectives of a multi-objective study
        row[metric.name] = trial.metrics.get(metric.name)
    for constraint in config.constraints:
        row[constraint.metric] = trial.metrics.get(constraint.metric)
    if config.constraints or not trial.feasible:
        row["infeasible"] = trial.infeasible_reason
    for name in study.config.space.names:
        row[name] = trial.params.get(name)
    for name, value in trial.params.items():  # parameters outside the declared space
        row.setdefault(name, value)
    rung = trial.fidelity
    if study.config.fidelity is not None:  # a multi-fidelity study: each trial's budget
        row["epochs"] = None if rung is None else rung.epochs
        row["from_epoch"] = None if rung is None else rung.initial_epoch
        row["bracket"] = None if rung is None else rung.bracket
        row["rung"] = None if rung is None else rung.round
        row["promoted_from"] = None if rung is None else rung.parent
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
    row.update(lifecycle.annotation_rows(trial.note, trial.user_tags))
    return row
