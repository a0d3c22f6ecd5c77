"""``hpsearch db upgrade|current``: the database's schema revision (Alembic)."""

from __future__ import annotations

import argparse

from hpsearch.cli.common import Subparsers, add_actions, add_storage


def register(subparsers: Subparsers) -> None:
    """Add ``db`` and its actions."""
    db = subparsers.add_parser("db", help="database maintenance")
    actions = add_actions(db, "db commands")
    upgrade = actions.add_parser("upgrade", help="apply schema migrations (Alembic)")
    add_storage(upgrade)
    upgrade.set_defaults(func=_upgrade)
    current = actions.add_parser("current", help="show the schema revision of a database")
    add_storage(current)
    current.set_defaults(func=_current)


def _upgrade(args: argparse.Namespace) -> int:
    from hpsearch.store import safe_url, upgrade

    before, after = upgrade(args.storage)
    if before == after:
        print(f"{safe_url(args.storage)} is already at revision {after}")
    else:
        print(f"upgraded {safe_url(args.storage)} from {before or 'empty'} to {after}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from hpsearch.store import current_revision, head_revision, safe_url

    current = current_revision(args.storage)
    head = head_revision()
    state = "up to date" if current == head else "run `hpsearch db upgrade` to migrate"
    print(f"{safe_url(args.storage)}: revision {current or 'none'} (head {head}; {state})")
    return 0
