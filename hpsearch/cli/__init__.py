"""The ``hpsearch`` command: argument parsing and output only.

Each command group is a module of this package with ``register(subparsers)``, which adds its
parser and sets ``func`` (see :mod:`hpsearch.cli.common`); ``func`` turns the arguments into
a call on the store, the chief, the worker, the demo or Vertex AI, and prints through
:mod:`hpsearch.cli.output`.  User mistakes surface as one line on stderr and exit status 2,
database problems as exit status 3.  Nothing heavy (TensorFlow, google-cloud-aiplatform, the
oracle) is imported until a command needs it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hpsearch import __version__
from hpsearch.cli import (
    chief,
    dashboard,
    db,
    demo,
    export,
    imports,
    studies,
    tensorboard,
    vertex,
    worker,
)
from hpsearch.cli.common import EXIT_STORAGE, EXIT_USAGE, configure_logging
from hpsearch.errors import HpsearchError, StorageError

#: The command groups, in the order ``hpsearch --help`` lists them.
COMMANDS = (demo, chief, studies, db, worker, vertex, imports, dashboard, tensorboard, export)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpsearch`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except HpsearchError as exc:
        print(f"hpsearch: error: {exc}", file=sys.stderr)
        return EXIT_STORAGE if isinstance(exc, StorageError) else EXIT_USAGE
    except KeyboardInterrupt:
        print("hpsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hpsearch trials x | head`
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``hpsearch`` parser with every command registered."""
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
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser
