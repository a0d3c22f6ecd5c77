"""A trial's model, copied where TF Serving loads it (``hpsearch export best``).

TF Serving serves the highest numbered version under a model base directory, so each export
is a new version, copied in full before it appears.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpsearch.errors import FailedPreconditionError, InvalidArgumentError
from hpsearch.records import Study, Trial

if TYPE_CHECKING:
    from hpsearch.store import Store

log = logging.getLogger(__name__)


def export_trial(
    storage: str,
    study: str,
    to: Path,
    *,
    source: Path,
    trial: int | None = None,
    rule: str | None = None,
) -> ExportedTrial:
    """Export trial ``trial`` of ``study`` (default: its best completed trial) to ``to``.

    A study with several metrics has a front, not one best trial: name the trial, or give
    a ``rule`` (:func:`hpsearch.space.pareto.choose`: ``best:<metric>`` or ``knee``);
    without either, FailedPreconditionError lists the front.

    The model is looked for where the trial saved it: its ``model_dir`` tag (set by
    ``hpsearch vertex import``), else ``source/<study>/<trial>/model``; ``hpsearch.json``
    beside the exported model says which trial it is.
    """
    from hpsearch.store import Store

    store = Store(storage)
    try:
        record = store.get_study(study)
        if trial is None and record.config.multi_objective:
            chosen = _front_member(store, record, rule)
        elif trial is None:
            best = store.best_trials(study, 1)
            if not best:
                raise FailedPreconditionError(
                    f"study {study!r} has no completed trial to export yet"
                )
            chosen = best[0]
        else:
            chosen = store.get_trial(study, trial)
    finally:
        store.close()
    model_dir = chosen.tags.get("model_dir")  # set by `hpsearch vertex import`
    if not model_dir:
        model_dir = str(source / record.name / str(chosen.number) / "model")
    if "://" in str(model_dir):
        raise InvalidArgumentError(
            f"trial {chosen.number}'s model is at {model_dir}; copy it locally first "
            f"(e.g. gcloud storage cp -r {model_dir} ./model) and pass --trial with --from"
        )
    target = export_model(Path(model_dir), to)
    metadata = {
        "study": record.name,
        "trial": chosen.number,
        "attempt": chosen.attempt,
        **{m.name: chosen.metrics.get(m.name, chosen.value) for m in record.config.metrics},
        "params": chosen.params,
    }
    (target / "hpsearch.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return ExportedTrial(record, chosen, target)


def _front_member(store: Store, record: Study, rule: str | None) -> Trial:
    from hpsearch.space.pareto import choose

    front = store.best_trials(record.name, 10_000)
    if not front:
        raise FailedPreconditionError(
            f"study {record.name!r} has no feasible completed trial to export yet"
        )
    if rule is None:
        names = [m.name for m in record.config.metrics]
        members = "; ".join(
            f"trial {t.number}: " + ", ".join(f"{n}={t.metrics.get(n)}" for n in names)
            for t in front[:20]
        )
        raise FailedPreconditionError(
            f"study {record.name!r} has {len(names)} metrics and {len(front)} trials on its "
            f"Pareto front ({members}{' ...' if len(front) > 20 else ''}); choose one with "
            f"--trial N, or give a rule: --rule best:{names[0]} or --rule knee"
        )
    return choose(record.config, front, lambda t: t.metrics, rule)


@dataclass(frozen=True)
class ExportedTrial:
    """What :func:`export_trial` exported, and where to."""

    study: Study
    trial: Trial
    target: Path


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
