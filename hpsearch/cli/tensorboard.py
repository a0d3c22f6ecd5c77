"""``hpsearch tensorboard STUDY --logdir DIR``: a study as TensorBoard HParams data.

The tensorboard package is imported only when the command runs (no TensorFlow at all).
"""

from __future__ import annotations

import argparse

from hpsearch.cli.common import Subparsers, add_storage
from hpsearch.cli.output import ProgressLine, progress_every


def register(subparsers: Subparsers) -> None:
    """Add ``tensorboard``."""
    parser = subparsers.add_parser(
        "tensorboard",
        help="write a study as TensorBoard HParams data",
        description="Writes the study's trials as TensorBoard event files: the HParams "
        "dashboard shows each trial's parameters, final metrics and end (success, failure, "
        "stopped), the Scalars dashboard its intermediate measurements. Then run "
        "`tensorboard --logdir DIR`. Needs the tensorboard package (the tf extra).",
    )
    parser.add_argument("study", metavar="STUDY", help="the study's name")
    parser.add_argument(
        "--logdir", required=True, metavar="DIR", help="local directory to write into"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the TensorBoard data DIR holds (its event files and trial-* runs)",
    )
    add_storage(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hpsearch.store import Store
    from hpsearch.tensorboard import write_study

    line = ProgressLine()
    store = Store(args.storage)
    try:
        export = write_study(
            store,
            args.study,
            args.logdir,
            overwrite=args.overwrite,
            progress=progress_every(line, "wrote"),
        )
    finally:
        line.close()
        store.close()
    print(
        f"wrote study {args.study!r} to {export.logdir}: {export.sessions} trial(s) as HParams "
        f"sessions ({export.skipped} waiting, not written), {len(export.hparams)} "
        f"hyperparameter(s), metrics {', '.join(export.metrics)}; view it with "
        f"`tensorboard --logdir {export.logdir}`"
    )
    return 0
