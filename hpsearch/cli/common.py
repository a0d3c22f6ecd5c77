"""What every ``hpsearch`` command shares: the registration shape, common flags, exit codes.

A command module has ``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it: ``func(args)`` returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TypeAlias

#: What ``register`` gets: the ``hpsearch`` parser's subcommands.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DEFAULT_STORAGE = "sqlite:///hpsearch.db"
#: A user mistake: a bad flag, a missing study, an invalid study file.
EXIT_USAGE = 2
#: The database could not be reached or refused the work.
EXIT_STORAGE = 3
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_storage(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--storage URL``, defaulting to ``$HPSEARCH_STORAGE``, else ``default``."""
    parser.add_argument(
        "--storage",
        default=os.environ.get("HPSEARCH_STORAGE", default or DEFAULT_STORAGE),
        help="database URL: sqlite:///path.db or postgresql+psycopg://user@host/db "
        f"(default $HPSEARCH_STORAGE, else {default or DEFAULT_STORAGE})",
    )


def add_format(
    parser: argparse.ArgumentParser,
    choices: tuple[str, ...] = ("table", "csv", "json"),
    default: str = "table",
) -> None:
    """``--format`` for a command that prints rows (see :mod:`hpsearch.cli.output`)."""
    parser.add_argument(
        "--format", choices=choices, default=default, help=f"output format (default {default})"
    )


def add_actions(parser: argparse.ArgumentParser, title: str) -> Subparsers:
    """Subcommands under ``parser`` (``hpsearch study create``); alone, it prints its help."""
    parser.set_defaults(func=lambda args: show_help(parser))
    return parser.add_subparsers(title=title, metavar="ACTION")


def show_help(parser: argparse.ArgumentParser) -> int:
    """A command group run without an action: its help, and the usage exit status."""
    parser.print_help()
    return EXIT_USAGE


def configure_logging(level: str) -> None:
    """Log lines on stderr at ``level``."""
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, stream=sys.stderr)
    # Alembic announces every plugin it loads at INFO; keep migrations' own lines only.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, getattr(logging, level)))
