"""``hpsearch export best NAME --to DIR``: the best trial's model, ready for TF Serving.

A trial saves its model in ``AIP_MODEL_DIR`` = ``<output-dir>/<study>/<trial>/model/`` as
``<version>/saved_model.pb`` (the layout TF Serving loads).  Export copies the newest such
version of the study's best completed trial into ``DIR/<N>/``, where ``N`` is one more than
the highest version already in ``DIR``, so TF Serving (which serves the highest version)
picks the new model up without a restart.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpsearch.errors import FailedPreconditionError, InvalidArgumentError

log = logging.getLogger(__name__)


def register(subparsers: Any, *, storage_arg: Callable[..., None]) -> None:
    """Add ``hpsearch export`` to the CLI."""
    parser = subparsers.add_parser("export", help="export a trial's model for TF Serving")
    actions = parser.add_subparsers(title="export commands", metavar="ACTION")
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
    storage_arg(best)
    best.set_defaults(handler=_cmd_export_best)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def _cmd_export_best(args: argparse.Namespace) -> int:
    from hpsearch.store import Store

    store = Store(args.storage)
    try:
        study = store.get_study(args.name)
        if args.trial is None:
            best = store.best_trials(args.name, 1)
            if not best:
                raise FailedPreconditionError(
                    f"study {args.name!r} has no completed trial to export yet"
                )
            trial = best[0]
        else:
            trial = store.get_trial(args.name, args.trial)
    finally:
        store.close()
    model_dir = trial.tags.get("model_dir")  # set by `hpsearch vertex import`
    if not model_dir:
        model_dir = str(Path(args.source) / study.name / str(trial.number) / "model")
    if "://" in str(model_dir):
        raise InvalidArgumentError(
            f"trial {trial.number}'s model is at {model_dir}; copy it locally first "
            f"(e.g. gcloud storage cp -r {model_dir} ./model) and pass --trial with --from"
        )
    target = export_model(Path(model_dir), Path(args.to))
    metadata = {
        "study": study.name,
        "trial": trial.number,
        "attempt": trial.attempt,
        study.config.metric.name: trial.value,
        "params": trial.params,
    }
    (target / "hpsearch.json").write_text(json.dumps(metadata, indent=2) + "\n")
    print(
        f"exported trial {trial.number} of {study.name!r} "
        f"({study.config.metric.name}={trial.value}) to {target}"
    )
    return 0


def export_model(model_dir: Path, serving_dir: Path) -> Path:
    """Copy the newest SavedModel under ``model_dir`` to the next version of ``serving_dir``."""
    source = find_saved_model(model_dir)
    serving_dir.mkdir(parents=True, exist_ok=True)
    versions = [int(p.name) for p in serving_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    target = serving_dir / str(max(versions, default=0) + 1)
    partial = serving_dir / f".{target.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    partial.rename(target)  # TF Serving never sees a half-copied version
    log.info("model exported source=%s target=%s", source, target)
    return target


def find_saved_model(model_dir: Path) -> Path:
    """The directory holding ``saved_model.pb``: the highest numbered version, or the dir."""
    if not model_dir.is_dir():
        raise InvalidArgumentError(
            f"no model directory at {model_dir}: pass the workers' --output-dir with --from"
        )
    versions = sorted(
        (
            p
            for p in model_dir.iterdir()
            if p.is_dir() and p.name.isdigit() and (p / "saved_model.pb").is_file()
        ),
        key=lambda p: int(p.name),
    )
    if versions:
        return versions[-1]
    if (model_dir / "saved_model.pb").is_file():
        return model_dir
    raise InvalidArgumentError(
        f"{model_dir} holds no SavedModel (<version>/saved_model.pb); did the trial script "
        "save its model to AIP_MODEL_DIR?"
    )
