"""``hpsearch export best NAME --to DIR``: the best trial's model, ready for TF Serving.

A trial saves its model in ``AIP_MODEL_DIR`` = ``<output-dir>/<study>/<trial>/model/`` as
``<version>/saved_model.pb`` (the layout TF Serving loads).  Export copies the newest such
version of the study's best completed trial into ``DIR/<N>/``, where ``N`` is one more than
the highest version already in ``DIR``, so TF Serving (which serves the highest version)
picks the new model up without a restart.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hpsearch.cli.common import Subparsers, add_actions, add_storage


def register(subparsers: Subparsers) -> None:
    """Add ``export`` and its action."""
    parser = subparsers.add_parser("export", help="export a trial's model for TF Serving")
    actions = add_actions(parser, "export commands")
    best = actions.add_parser(
        "best",
        help="copy the best trial's SavedModel into a TF Serving model directory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    best.add_argument("name", help="study name")
    best.add_argument("--to", required=True, help="TF Serving model base directory")
    best.add_argument(
        "--from",
        dest="source",
        default=os.environ.get("HPSEARCH_OUTPUT_DIR", "hpsearch-output"),
        help="the workers' --output-dir (default $HPSEARCH_OUTPUT_DIR, else ./hpsearch-output)",
    )
    best.add_argument(
        "--trial", type=int, default=None, help="export this trial instead of the best one"
    )
    best.add_argument(
        "--rule",
        default=None,
        help="a study with several metrics: which member of its Pareto front to export, "
        "best:<metric> (the best on that metric) or knee (the most balanced trade-off)",
    )
    add_storage(best)
    best.set_defaults(func=_best)


def _best(args: argparse.Namespace) -> int:
    from hpsearch.export import export_trial

    exported = export_trial(
        args.storage,
        args.name,
        Path(args.to),
        source=Path(args.source),
        trial=args.trial,
        rule=args.rule,
    )
    study, trial = exported.study, exported.trial
    print(
        f"exported trial {trial.number} of {study.name!r} "
        f"({study.config.metric.name}={trial.value}) to {exported.target}"
    )
    return 0
