"""``hpsearch study stop|resume|delete|copy|update|note|tag|enqueue``: a study's life cycle.

Like the other study commands these write to the database directly (no chief needed).  A
chief serving the study takes the change at its next periodic resync (every 5 s); through
hpsearch.v1 (``hpsearch.Client``) it takes it at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpsearch.cli.common import Subparsers, add_storage
from hpsearch.cli.output import ProgressLine
from hpsearch.errors import InvalidArgumentError
from hpsearch.records import Annotations

if TYPE_CHECKING:
    from hpsearch.store import Store


def add_actions(actions: Subparsers) -> None:
    """Add the life-cycle actions to ``hpsearch study``."""
    stop = actions.add_parser(
        "stop", help="stop a study: workers get no new trial, running trials are told to stop"
    )
    stop.add_argument("name")
    add_storage(stop)
    stop.set_defaults(func=_stop)

    resume = actions.add_parser("resume", help="let a stopped study run again")
    resume.add_argument("name")
    add_storage(resume)
    resume.set_defaults(func=_resume)

    delete = actions.add_parser("delete", help="delete a study with all its trials")
    delete.add_argument("name")
    delete.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed off a terminal)"
    )
    delete.add_argument(
        "--force", action="store_true", help="delete even while trials run (they then fail)"
    )
    add_storage(delete)
    delete.set_defaults(func=_delete)

    copy = actions.add_parser(
        "copy", help="copy a study (trials, attempts, measurements, notes, tags) to a database"
    )
    copy.add_argument("name")
    copy.add_argument(
        "--to", default=None, metavar="URL", help="the target database (default: --storage)"
    )
    copy.add_argument("--name", dest="new_name", default=None, help="the copy's name")
    add_storage(copy)
    copy.set_defaults(func=_copy)

    update = actions.add_parser(
        "update",
        help="change a study in place: budget, leases, early stopping, new parameters",
    )
    update.add_argument("name")
    update.add_argument(
        "--file", default=None, help="a changed study file: its safe differences are applied"
    )
    update.add_argument("--max-trials", type=int, default=None)
    update.add_argument("--parallel-trials", type=int, default=None)
    update.add_argument(
        "--max-failed-trials", default=None, metavar="N", help="a number, or none for no limit"
    )
    update.add_argument("--max-attempts", type=int, default=None)
    update.add_argument("--lease-seconds", type=float, default=None)
    add_storage(update)
    update.set_defaults(func=_update)

    note = actions.add_parser("note", help="show or write the note of a study or a trial")
    note.add_argument("name")
    note.add_argument("text", nargs="?", default=None, help="the new note (left out: show it)")
    note.add_argument("--trial", type=int, default=None, help="the trial's number")
    note.add_argument("--clear", action="store_true", help="remove the note")
    add_storage(note)
    note.set_defaults(func=_note)

    tag = actions.add_parser("tag", help="show or set the tags of a study or a trial")
    tag.add_argument("name")
    tag.add_argument("tags", nargs="*", metavar="KEY=VALUE", help="tags to set")
    tag.add_argument("--remove", action="append", default=[], metavar="KEY")
    tag.add_argument("--trial", type=int, default=None, help="the trial's number")
    add_storage(tag)
    tag.set_defaults(func=_tag)

    enqueue = actions.add_parser(
        "enqueue", help="queue known parameter sets: they run before any suggestion"
    )
    enqueue.add_argument("name")
    enqueue.add_argument(
        "file", help="YAML or JSON: a list of parameter mappings (or one mapping)"
    )
    add_storage(enqueue)
    enqueue.set_defaults(func=_enqueue)


def _stop(args: argparse.Namespace) -> int:
    study = _open_store(args.storage).stop_study(args.name)
    print(
        f"study {study.name!r} is {study.state.value}: workers get no new trial, and a chief "
        "serving it tells running trials to stop (within its 5 s resync); "
        f"`hpsearch study resume {study.name}` undoes it"
    )
    return 0


def _resume(args: argparse.Namespace) -> int:
    study = _open_store(args.storage).resume_study(args.name)
    print(f"study {study.name!r} is {study.state.value}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from hpsearch.store import safe_url

    store = _open_store(args.storage)
    counts = store.count_trials(args.name)  # NotFoundError before any question
    total = sum(counts.values())
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidArgumentError(
                f"refusing to delete study {args.name!r} ({total} trials) without "
                "confirmation: stdin is not a terminal; pass --yes"
            )
        print(
            f"Delete study {args.name!r} and its {total} trials from {safe_url(args.storage)}? "
            "This cannot be undone.",
            file=sys.stderr,
        )
        print("Type the study's name to confirm: ", end="", file=sys.stderr, flush=True)
        if sys.stdin.readline().strip() != args.name:
            print("not deleted", file=sys.stderr)
            return 1
    deleted = store.delete_study(args.name, if_idle=not args.force)
    print(f"deleted study {args.name!r} and its {deleted} trials")
    return 0


def _copy(args: argparse.Namespace) -> int:
    from hpsearch.store import Store, safe_url

    target_url = args.to or args.storage
    if args.to is None and args.new_name is None:
        raise InvalidArgumentError(
            "a copy into the same database needs another name: pass --name NEW, or --to URL"
        )
    progress = ProgressLine()
    progress.show(f"reading study {args.name!r} from {safe_url(args.storage)}")
    snapshot = _open_store(args.storage).snapshot_study(args.name)
    progress.show(
        f"writing {len(snapshot.trials)} trials, {len(snapshot.attempts)} attempts and "
        f"{len(snapshot.measurements)} measurements to {safe_url(target_url)}"
    )
    with Store(target_url) as target:
        study = target.restore_study(snapshot, name=args.new_name)
    progress.close()
    print(
        f"copied study {args.name!r} to {study.name!r} in {safe_url(target_url)} "
        f"({len(snapshot.trials)} trials, state {study.state.value})"
    )
    return 0


def _update(args: argparse.Namespace) -> int:
    from hpsearch.space import load_study
    from hpsearch.space.lifecycle import with_updates

    store = _open_store(args.storage)
    config = load_study(args.file) if args.file else store.get_study(args.name).config
    updates: dict[str, Any] = {}
    for flag, key in (
        ("max_trials", "budget.max_trials"),
        ("parallel_trials", "budget.parallel_trials"),
        ("max_attempts", "budget.max_attempts"),
        ("lease_seconds", "lease_seconds"),
    ):
        if getattr(args, flag) is not None:
            updates[key] = getattr(args, flag)
    if args.max_failed_trials is not None:
        limit = str(args.max_failed_trials).strip().lower()
        updates["budget.max_failed_trials"] = None if limit in ("none", "-1") else limit
    if not updates and not args.file:
        raise InvalidArgumentError(
            "nothing to change: pass --file FILE or a field such as --max-trials N"
        )
    study, changes = store.update_study(args.name, with_updates(config, updates))
    if not changes:
        print(f"study {study.name!r} unchanged")
        return 0
    for change in changes:
        print(f"{study.name}: {change}")
    print(
        f"study {study.name!r} is {study.state.value}; a chief serving it takes the change "
        "within its 5 s resync"
    )
    return 0


def _note(args: argparse.Namespace) -> int:
    if args.clear and args.text is not None:
        raise InvalidArgumentError("pass either a note or --clear, not both")
    note = "" if args.clear else args.text
    annotations = _annotate(args, note=note)
    if annotations.note:
        print(annotations.note)
    elif note is None:
        print(f"no note on {_what(args)}", file=sys.stderr)
    return 0


def _tag(args: argparse.Namespace) -> int:
    tags: dict[str, str] = {}
    for item in args.tags:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidArgumentError(f"tag {item!r} is not KEY=VALUE; e.g. owner=alice")
        tags[key] = value
    annotations = _annotate(args, tags=tags, remove_tags=args.remove)
    for key, value in sorted(annotations.tags.items()):
        print(f"{key}={value}")
    if not annotations.tags:
        print(f"no tags on {_what(args)}", file=sys.stderr)
    return 0


def _enqueue(args: argparse.Namespace) -> int:
    parameter_sets = _read_parameter_sets(Path(args.file))
    trials = _open_store(args.storage).enqueue_trials(args.name, parameter_sets)
    numbers = ", ".join(str(t.number) for t in trials)
    print(
        f"queued {len(trials)} parameter sets in study {args.name!r} as trials {numbers}; "
        "they run before any suggestion"
    )
    return 0


def _annotate(args: argparse.Namespace, **changes: Any) -> Annotations:
    return _open_store(args.storage).annotate(args.name, args.trial, **changes)


def _what(args: argparse.Namespace) -> str:
    if args.trial is None:
        return f"study {args.name!r}"
    return f"trial {args.trial} of study {args.name!r}"


def _read_parameter_sets(path: Path) -> list[dict[str, Any]]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidArgumentError(f"cannot read {str(path)!r}: {error.strerror}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise InvalidArgumentError(f"{path} is not valid YAML or JSON: {error}") from None
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(p, Mapping) for p in data):
        raise InvalidArgumentError(
            f"{path} must hold a list of parameter mappings, e.g. "
            "[{learning_rate: 0.01, optimizer: adam}]"
        )
    return [dict(p) for p in data]


def _open_store(url: str) -> Store:
    from hpsearch.store import Store

    return Store(url)


def annotation_rows(note: str | None, tags: Mapping[str, str]) -> dict[str, Any]:
    """The ``note`` and ``tags`` columns of a table row (none when empty)."""
    row: dict[str, Any] = {}
    if note:
        row["note"] = note
    if tags:
        row["tags"] = ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
    return row


__all__ = ["add_actions", "annotation_rows"]
