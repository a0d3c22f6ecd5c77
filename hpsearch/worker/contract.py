"""The Vertex AI trial contract, exactly as Vertex gives it to a trial's container.

- flags ``--<parameter_id>=<value>``: integers without ".0", doubles in full precision,
  categoricals as their string, booleans as ``true``/``false`` (their Vertex mapping);
- environment ``CLOUD_ML_TRIAL_ID``, ``CLOUD_ML_HP_METRIC_FILE`` and the ``AIP_*_DIR``
  directories under a base directory: ``<base>/<trial>/model/``, ``.../checkpoints/``,
  ``.../logs/``;
- metrics come back through cloudml-hypertune's JSON-lines file, which the library rewrites
  on every report (keeping the last 100 lines, every value a string but ``timestamp``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.space import Fidelity, Goal, Measurement, ParamValue, Rung

#: Keys of a hypertune line that are not metrics.
HYPERTUNE_KEYS = frozenset({"timestamp", "trial", "global_step", "checkpoint_path"})


def trial_flags(params: Mapping[str, ParamValue]) -> list[str]:
    """Command-line flags for a trial's parameters, formatted as Vertex AI formats them."""
    return [f"--{name}={format_value(value)}" for name, value in params.items()]


def budget_flags(fidelity: Fidelity | None, rung: Rung | None) -> list[str]:
    """The budget flag of a multi-fidelity trial (``--epochs=9``), after its parameters so
    that it wins over a default in the worker's command line."""
    if fidelity is None or rung is None:
        return []
    return [f"--{fidelity.parameter}={rung.epochs}"]


def seed_checkpoint(study_dir: str, rung: Rung, dirs: TrialDirs) -> str:
    """Start a promoted trial from its parent's checkpoint: copy the parent trial's
    checkpoint directory into this trial's (``AIP_CHECKPOINT_DIR``), so that a trial
    script that resumes from its checkpoint directory continues at ``rung.initial_epoch``
    and trains up to ``rung.epochs``.  Returns what was done, for the worker's log.

    Nothing is copied when this trial's directory already holds a checkpoint (a retried
    attempt continues its own), nor when the parent's is not on this machine (another
    worker's local disk, or ``gs://``): the trial then trains from scratch."""
    if rung.parent is None:
        return "new configuration: trains from scratch"
    parent = _join(study_dir, str(rung.parent), "checkpoints")
    if "://" in study_dir:
        return f"the parent's checkpoint {parent} is remote: trains from scratch"
    target = Path(dirs.checkpoints)
    if target.is_dir() and any(target.iterdir()):
        return "continues its own checkpoint (a retried attempt)"
    source = Path(parent)
    if not source.is_dir() or not any(source.iterdir()):
        return (
            f"no checkpoint of parent trial {rung.parent} at {source} (another worker's disk?): "
            "trains from scratch"
        )
    shutil.copytree(source, target, dirs_exist_ok=True)
    return f"continues parent trial {rung.parent}'s checkpoint from epoch {rung.initial_epoch}"


def format_value(value: ParamValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(value)


@dataclass(frozen=True, slots=True)
class TrialDirs:
    """The per-trial directories Vertex AI hands a trial (local paths or ``gs://`` URIs)."""

    root: str
    model: str
    checkpoints: str
    logs: str
    metric_file: str


def trial_dirs(base_dir: str, trial_id: str, scratch_dir: str) -> TrialDirs:
    """Directories for one trial; local ones are created, ``gs://`` ones are left to TF.

    The hypertune metric file is always local (it is read here while the trial runs).
    """
    root = _join(base_dir, trial_id)
    dirs = TrialDirs(
        root=root,
        model=_join(root, "model") + "/",
        checkpoints=_join(root, "checkpoints") + "/",
        logs=_join(root, "logs") + "/",
        metric_file=str(Path(scratch_dir) / f"trial-{trial_id}" / "output.metrics"),
    )
    if "://" not in base_dir:
        for path in (dirs.model, dirs.checkpoints, dirs.logs):
            Path(path).mkdir(parents=True, exist_ok=True)
    Path(dirs.metric_file).parent.mkdir(parents=True, exist_ok=True)
    return dirs


def trial_env(
    dirs: TrialDirs,
    trial_id: str,
    *,
    base_env: Mapping[str, str] | None = None,
    cuda_visible_devices: str | None = None,
) -> dict[str, str]:
    """The environment of a trial process: the parent's plus Vertex AI's variables."""
    env = dict(os.environ if base_env is None else base_env)
    # The worker's own Keras Tuner variables must not turn the trial into a KT client.
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    env.update(
        {
            "CLOUD_ML_TRIAL_ID": trial_id,
            "CLOUD_ML_HP_METRIC_FILE": dirs.metric_file,
            "AIP_MODEL_DIR": dirs.model,
            "AIP_CHECKPOINT_DIR": dirs.checkpoints,
            "AIP_TENSORBOARD_LOG_DIR": dirs.logs,
        }
    )
    if cuda_visible_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_visible_devices
    return env


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


# -- the hypertune metric file -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Report:
    """One line of the hypertune file: a step and the metrics reported at it."""

    step: int
    metrics: dict[str, float]
    timestamp: float


class MetricFileReader:
    """Reads a hypertune metric file as it grows, returning each report once.

    The file is rewritten whole on every report (and truncated first), so a read may see
    it empty or with a partial last line; those are skipped and picked up next time.
    Reports are told apart by (timestamp, step, metrics), so the 100-line window sliding
    past old lines loses nothing already returned.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: set[tuple[Any, ...]] = set()
        self.reports: list[Report] = []

    def poll(self) -> list[Report]:
        """The reports that appeared since the last call, in file order."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return []
        new: list[Report] = []
        for line in text.splitlines():
            report = parse_line(line)
            if report is None:
                continue
            key = (report.timestamp, report.step, tuple(sorted(report.metrics.items())))
            if key in self._seen:
                continue
            self._seen.add(key)
            new.append(report)
        self.reports.extend(new)
        return new


def parse_line(line: str) -> Report | None:
    """A hypertune JSON line as a :class:`Report`; ``None`` for a partial or foreign line."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    metrics: dict[str, float] = {}
    for key, value in data.items():
        if key in HYPERTUNE_KEYS:
            continue
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    if not metrics:
        return None
    try:
        step = int(float(data.get("global_step", 0) or 0))
        timestamp = float(data.get("timestamp", 0.0) or 0.0)
    except (TypeError, ValueError):
        return None
    return Report(step=step, metrics=metrics, timestamp=timestamp)


def final_measurement(
    reports: list[Report], metric: str, goal: Goal, selection: Measurement
) -> Report | None:
    """The report whose value becomes the trial's result (Vertex's measurement selection).

    ``last``: the last report carrying the metric; ``best``: the best by the study's goal.
    Reports with a NaN value for the metric count as such (the caller fails the trial).
    """
    carrying = [r for r in reports if metric in r.metrics]
    if not carrying:
        return None
    return carrying[selection.select_index([r.metrics[metric] for r in carrying], goal)]
