"""Import a Keras Tuner project directory into an hpsearch study.

``hpsearch import keras-tuner DIR [--into NAME] [--metric NAME]`` and
:func:`import_keras_tuner`.  ``DIR`` is the project directory a tuner writes
(``<directory>/<project_name>``): its ``oracle.json`` and ``trial_*/trial.json`` files,
read as JSON (neither Keras Tuner nor TensorFlow is imported).

How Keras Tuner's values map:

- the space is the oracle's ``hyperparameters`` config, converted as everywhere in hpsearch
  (:mod:`hpsearch.space.keras_tuner`: ``Float``, ``Int``, ``Choice``, ``Boolean``,
  ``Fixed``, ``conditional_scope`` parents); each trial's values are validated against it,
  values of inactive hyperparameters (which Keras Tuner keeps) are dropped;
- the ``tuner/epochs``, ``tuner/initial_epoch``, ``tuner/bracket``, ``tuner/round`` and
  ``tuner/trial_id`` values Hyperband adds are not parameters: they are dropped from the
  parameters and kept in the trial's ``keras_tuner_budget`` tag.  A Hyperband trial that
  trained fewer epochs is imported with its score like any other (hpsearch's model does not
  know the budget it was trained with);
- the objective: Keras Tuner stores no objective name, only each trial's ``score`` (the
  objective at ``best_step``) and each metric's direction.  ``--metric`` names it; without
  it, the metric whose value at ``best_step`` equals the score in every completed trial is
  taken (its direction is the study's goal), and an ambiguous or missing match is an error
  naming the candidates;
- trials: COMPLETED -> COMPLETED (``score``, and every metric's value at ``best_step`` as
  the final metrics), STOPPED -> STOPPED (with its score, if any), FAILED and INVALID ->
  FAILED (with Keras Tuner's message), RUNNING and IDLE are left for a later import; every
  metric's observations become measurements at their steps;
- each trial keeps ``keras_tuner_trial_id``, ``keras_tuner_status`` and ``trial_dir`` (its
  directory, with the checkpoint Keras Tuner saved; the dashboard lists it) in its tags.

A new study's budget is ``--max-trials``, else the trials imported plus 100; its algorithm
is ``--algorithm`` (default bayesian).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hpsearch.errors import InvalidArgumentError
from hpsearch.importers.common import (
    FINISHED,
    ForeignTrial,
    ImportResult,
    Source,
    default_max_trials,
    finite,
    import_trials,
    valid_study_name,
)
from hpsearch.records import TrialState
from hpsearch.space import Budget, Goal, Metric, StudyConfig, space_from_keras_tuner
from hpsearch.store.api import Store

#: Keras Tuner's trial statuses as hpsearch's.
STATES = {
    "COMPLETED": TrialState.COMPLETED,
    "STOPPED": TrialState.STOPPED,
    "FAILED": TrialState.FAILED,
    "INVALID": TrialState.FAILED,
    "RUNNING": TrialState.RUNNING,
    "IDLE": TrialState.WAITING,
}
#: The values Keras Tuner's Hyperband adds to a trial's hyperparameters.
BUDGET_PREFIX = "tuner/"
_DIRECTIONS = {"max": Goal.MAXIMIZE, "min": Goal.MINIMIZE}


def import_keras_tuner(
    store: Store,
    project_dir: str | Path,
    *,
    into: str | None = None,
    metric: str | None = None,
    max_trials: int | None = None,
    algorithm: str = "bayesian",
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import the trials of the Keras Tuner project in ``project_dir`` into the hpsearch
    study ``into`` (default: the project's directory name), creating it when needed."""
    project = Path(project_dir).resolve()
    oracle = _read_json(project / "oracle.json", "the oracle's state")
    if "hyperparameters" not in oracle:
        raise InvalidArgumentError(
            f"{project / 'oracle.json'} has no 'hyperparameters': is it a Keras Tuner "
            "oracle.json (Keras Tuner 1.1 or later)?"
        )
    space = space_from_keras_tuner(oracle["hyperparameters"])
    raw = read_trials(project)
    objective, goal = objective_of(raw, metric)
    finished = [t for t in raw if STATES.get(str(t.get("status"))) in FINISHED]
    config = StudyConfig(
        name=into or valid_study_name(project.name, "keras-tuner"),
        metric=Metric(objective, goal),
        space=space,
        budget=Budget(max_trials=max_trials or default_max_trials(len(finished))),
        algorithm=algorithm,
    )
    source = Source(
        kind="keras_tuner",
        identity={"keras_tuner_project": str(project)},
        key_tag="keras_tuner_trial_id",
        description=f"Keras Tuner project {project}",
    )
    foreign = [foreign_trial(t, objective, project) for t in raw]
    return import_trials(store, config, source, foreign, progress=progress)


def read_trials(project: Path) -> list[dict[str, Any]]:
    """Every ``trial_*/trial.json`` of the project, in trial id order."""
    paths = sorted(project.glob("trial_*/trial.json"))
    if not paths:
        raise InvalidArgumentError(
            f"{project} holds no trial_*/trial.json: give the project directory "
            "(<directory>/<project_name>) of a tuner that ran"
        )
    return [_read_json(path, "a trial") for path in paths]


def objective_of(trials: Sequence[Mapping[str, Any]], metric: str | None) -> tuple[str, Goal]:
    """The objective's name and goal: ``metric`` (its direction read from the trials), or
    the one metric whose value at ``best_step`` is the score in every completed trial."""
    directions: dict[str, str] = {}
    for trial in trials:
        for name, history in _metrics(trial).items():
            directions.setdefault(name, str(history.get("direction")))
    if metric is not None:
        if metric not in directions:
            raise InvalidArgumentError(
                f"no trial recorded a metric {metric!r}; they recorded: "
                f"{', '.join(sorted(directions)) or 'none'}"
            )
        return metric, _goal(metric, directions[metric])
    scored = [t for t in trials if t.get("status") == "COMPLETED" and finite(t.get("score"))]
    candidates = [
        name
        for name in sorted(directions)
        if scored and all(_close(_at_best_step(t, name), t["score"]) for t in scored)
    ]
    if len(candidates) != 1:
        found = ", ".join(candidates) if candidates else "none"
        raise InvalidArgumentError(
            "Keras Tuner does not store the objective's name and the scores match "
            f"{found} of the metrics ({', '.join(sorted(directions)) or 'none recorded'}): "
            "name it with --metric"
        )
    return candidates[0], _goal(candidates[0], directions[candidates[0]])


def foreign_trial(trial: Mapping[str, Any], objective: str, project: Path) -> ForeignTrial:
    """One ``trial.json`` as a trial to import."""
    trial_id = str(trial.get("trial_id"))
    status = str(trial.get("status"))
    state = STATES.get(status, TrialState.FAILED)
    values = dict((trial.get("hyperparameters") or {}).get("values") or {})
    budget = {
        k.removeprefix(BUDGET_PREFIX): v for k, v in values.items() if k.startswith(BUDGET_PREFIX)
    }
    params = {k: v for k, v in values.items() if not k.startswith(BUDGET_PREFIX)}
    by_step: dict[int, dict[str, float]] = {}
    for name, history in _metrics(trial).items():
        for observation in history.get("observations") or []:
            value = _first(observation.get("value"))
            if finite(value):
                by_step.setdefault(int(observation.get("step") or 0), {})[name] = float(value)
    score = trial.get("score")
    value = float(score) if finite(score) else None
    best_step = trial.get("best_step")
    final = dict(by_step.get(int(best_step), {})) if isinstance(best_step, int) else {}
    if value is not None:
        final[objective] = value
    tags: dict[str, Any] = {
        "keras_tuner_status": status,
        "trial_dir": str(project / f"trial_{trial_id}"),
    }
    if budget:
        tags["keras_tuner_budget"] = budget
    return ForeignTrial(
        key=trial_id,
        state=state,
        params=params,
        value=value,
        metrics=final,
        measurements=sorted(by_step.items()),
        failure_message=f"{status} in Keras Tuner: {trial.get('message') or 'no message'}",
        tags=tags,
    )


# -- helpers ---------------------------------------------------------------------------------
def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgumentError(
            f"{path} not found: give a Keras Tuner project directory (<directory>/"
            "<project_name>, holding oracle.json and trial_*/)"
        ) from None
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(f"cannot read {what} from {path}: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"{path} does not hold {what} (a JSON object)")
    return data


def _metrics(trial: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    metrics = ((trial.get("metrics") or {}).get("metrics")) or {}
    return {str(k): v for k, v in metrics.items() if isinstance(v, Mapping)}


def _at_best_step(trial: Mapping[str, Any], name: str) -> float | None:
    history = _metrics(trial).get(name)
    if history is None:
        return None
    for observation in history.get("observations") or []:
        if observation.get("step") == trial.get("best_step"):
            value = _first(observation.get("value"))
            return float(value) if finite(value) else None
    return None


def _first(value: Any) -> Any:
    """An observation's value: a list of one number in Keras Tuner 1.4."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _goal(name: str, direction: str) -> Goal:
    if direction not in _DIRECTIONS:
        raise InvalidArgumentError(
            f"metric {name!r} has direction {direction!r}; Keras Tuner writes 'min' or 'max'"
        )
    return _DIRECTIONS[direction]


def _close(a: float | None, b: Any) -> bool:
    return a is not None and finite(b) and math.isclose(a, float(b), rel_tol=1e-9, abs_tol=1e-12)
