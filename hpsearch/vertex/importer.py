"""Copy a Vertex AI HyperparameterTuningJob's trials into an hpsearch study.

The job arrives as its REST JSON dict (what ``GET .../hyperparameterTuningJobs/ID`` returns,
or :func:`hpsearch.vertex.api.get_tuning_job`).  :func:`import_job` creates the study from
the job's study spec when it does not exist yet (or uses the existing study of that name),
then adds every *finished* Vertex trial as one hpsearch trial: its parameters, its
intermediate measurements, then COMPLETED with the final measurement's value, or FAILED for
an infeasible trial or one without a final value.  Trials still running on Vertex are left
for a later import.

Import is idempotent: each imported trial carries the tags ``vertex_job`` and
``vertex_trial_id``; a trial already imported is left as it is, so importing the same job
again adds only the trials that finished since.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpsearch.errors import InvalidArgumentError, NotFoundError, StaleAttemptError
from hpsearch.records import Trial, TrialState
from hpsearch.space import (
    Budget,
    Measurement,
    Params,
    Space,
    StudyConfig,
)
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)

#: The worker id imported trials are recorded under.
IMPORT_WORKER = "vertex-import"
TAG_JOB = "vertex_job"
TAG_TRIAL = "vertex_trial_id"
#: Lease for the moment between creating an imported trial and finishing it.
_IMPORT_LEASE_SECONDS = 3600.0

ALGORITHM_FROM_VERTEX = {
    "ALGORITHM_UNSPECIFIED": "bayesian",
    "GRID_SEARCH": "grid",
    "RANDOM_SEARCH": "random",
}
FINISHED_VERTEX_STATES = ("SUCCEEDED", "INFEASIBLE")


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import did."""

    study: str
    job: str
    created_study: bool
    completed: int = 0  # trials added as COMPLETED
    failed: int = 0  # trials added as FAILED (infeasible, or no final value)
    unchanged: int = 0  # trials imported before
    pending: int = 0  # Vertex trials not finished yet (import again later)
    numbers: dict[str, int] = field(default_factory=dict)  # vertex trial id -> trial number

    @property
    def added(self) -> int:
        return self.completed + self.failed


def import_job(store: Store, job: Mapping[str, Any], *, study: str | None = None) -> ImportResult:
    """Import ``job``'s finished trials into the study ``study`` (default: the job's name).

    Every trial's parameters are checked against the study's space before anything is
    written, so a job that does not fit an existing study changes nothing.
    """
    job_name = str(job.get("name") or "")
    if not job_name:
        raise InvalidArgumentError(
            "the job has no resource name; pass the job as Vertex returns it"
        )
    config = study_config_from_job(job, name=study)
    try:
        existing = store.get_study(config.name)
        created = False
    except NotFoundError:
        existing = store.create_study(config)
        created = True
        logger.info("vertex import created study=%s job=%s", config.name, job_name)
    space = existing.config.space
    metric = existing.config.metric.name

    already = _imported_trials(store, existing.name, job_name)
    todo: list[tuple[str, Mapping[str, Any], Params]] = []
    pending = unchanged = 0
    numbers: dict[str, int] = {}
    for vertex_trial in job.get("trials", []):
        trial_id = str(vertex_trial.get("id", ""))
        state = str(vertex_trial.get("state", "STATE_UNSPECIFIED"))
        previous = already.get(trial_id)
        if previous is not None and previous.state.finished:
            unchanged += 1
            numbers[trial_id] = previous.number
            continue
        if state not in FINISHED_VERTEX_STATES:
            pending += 1
            continue
        params = _params(vertex_trial, space, trial_id)
        todo.append((trial_id, vertex_trial, params))

    completed = failed = 0
    for trial_id, vertex_trial, params in todo:
        trial = already.get(trial_id)
        if trial is None:
            trial = store.create_trial(
                existing.name,
                params,
                worker_id=IMPORT_WORKER,
                lease_seconds=_IMPORT_LEASE_SECONDS,
                tags=_tags(job, vertex_trial),
            )
        elif trial.state is not TrialState.RUNNING:
            # Created by an import that stopped half-way and was since requeued: leave it.
            logger.warning(
                "vertex import skips trial=%s vertex_trial=%s state=%s",
                trial.number,
                trial_id,
                trial.state.value,
            )
            continue
        numbers[trial_id] = trial.number
        try:
            finished = _finish(store, existing.name, trial, vertex_trial, metric)
        except StaleAttemptError:
            logger.warning(
                "vertex import lost the lease trial=%s vertex_trial=%s", trial.number, trial_id
            )
            continue
        if finished.state is TrialState.COMPLETED:
            completed += 1
        else:
            failed += 1
    result = ImportResult(
        study=existing.name,
        job=job_name,
        created_study=created,
        completed=completed,
        failed=failed,
        unchanged=unchanged,
        pending=pending,
        numbers=numbers,
    )
    logger.info(
        "vertex import done study=%s job=%s completed=%d failed=%d unchanged=%d pending=%d",
        result.study,
        job_name,
        completed,
        failed,
        unchanged,
        pending,
    )
    return result


def study_config_from_job(job: Mapping[str, Any], *, name: str | None = None) -> StudyConfig:
    """The study a job declares: space, metric and goal, budget, algorithm, measurement."""
    from hpsearch.space.vertex import metrics_from_vertex, parameter_specs_from_vertex

    spec = job.get("studySpec") or {}
    metrics = spec.get("metrics") or []
    if not metrics:
        raise InvalidArgumentError(
            "the job's study spec has no metrics; hpsearch imports jobs with at least one"
        )
    objectives, constraints = metrics_from_vertex(metrics)
    space = parameter_specs_from_vertex(_with_zero_bounds(spec.get("parameters") or []))
    if not isinstance(space, Space):
        space = Space(tuple(space))
    measurement = {"LAST_MEASUREMENT": "last"}.get(
        str(spec.get("measurementSelectionType", "")), "best"
    )
    max_trials = int(job.get("maxTrialCount") or 1)
    parallel = min(int(job.get("parallelTrialCount") or 1), max_trials)
    failed = job.get("maxFailedTrialCount")
    return StudyConfig(
        name=name or _study_name(job),
        metric=objectives[0],
        metrics=objectives,
        constraints=constraints,
        space=space,
        budget=Budget(
            max_trials=max_trials,
            parallel_trials=parallel,
            max_failed_trials=int(failed) if failed else None,
        ),
        algorithm=ALGORITHM_FROM_VERTEX.get(str(spec.get("algorithm", "")), "bayesian"),
        measurement=Measurement(measurement),
    )


def job_summary(job: Mapping[str, Any]) -> dict[str, Any]:
    """State, trial counts by Vertex state, and the best finished trial of a job."""
    spec = job.get("studySpec") or {}
    metrics = spec.get("metrics") or [{}]
    metric_id = metrics[0].get("metricId")
    maximize = str(metrics[0].get("goal", "MAXIMIZE")) != "MINIMIZE"
    counts: dict[str, int] = {}
    best: tuple[float, Mapping[str, Any]] | None = None
    for trial in job.get("trials", []):
        state = str(trial.get("state", "STATE_UNSPECIFIED"))
        counts[state] = counts.get(state, 0) + 1
        value = _final_value(trial, str(metric_id)) if state == "SUCCEEDED" else None
        if value is not None and (
            best is None or (value > best[0] if maximize else value < best[0])
        ):
            best = (value, trial)
    summary: dict[str, Any] = {
        "name": job.get("name"),
        "display_name": job.get("displayName"),
        "state": job.get("state", "JOB_STATE_UNSPECIFIED"),
        "metric": metric_id,
        "goal": "maximize" if maximize else "minimize",
        "max_trials": job.get("maxTrialCount"),
        "trials": counts,
        "create_time": job.get("createTime"),
        "end_time": job.get("endTime"),
    }
    if job.get("error"):
        summary["error"] = job["error"].get("message", job["error"])
    if best is not None:
        summary["best"] = {
            "trial_id": best[1].get("id"),
            "value": best[0],
            "params": {
                p.get("parameterId"): p.get("value") for p in best[1].get("parameters", [])
            },
        }
    return summary


# -- helpers ---------------------------------------------------------------------------------
def _study_name(job: Mapping[str, Any]) -> str:
    display = str(job.get("displayName") or "")
    candidate = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in display)[:128]
    if candidate and candidate[0].isalnum():
        return candidate
    return "vertex-" + str(job.get("name", "")).rsplit("/", 1)[-1]


def _with_zero_bounds(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Put back the bounds the JSON form leaves out when they are 0 (the proto3 default).

    ``{"doubleValueSpec": {"maxValue": 0.5}}`` means [0, 0.5], but
    :func:`~hpsearch.space.vertex.parameter_specs_from_vertex` wants both bounds spelled out.
    """
    out = []
    for spec in specs:
        spec = dict(spec)
        for key in ("doubleValueSpec", "integerValueSpec"):
            if key in spec:
                spec[key] = {"minValue": 0, "maxValue": 0, **spec[key]}
        children = []
        for child in spec.get("conditionalParameterSpecs") or []:
            child = dict(child)
            child["parameterSpec"] = _with_zero_bounds([child.get("parameterSpec") or {}])[0]
            children.append(child)
        if children:
            spec["conditionalParameterSpecs"] = children
        out.append(spec)
    return out


def _imported_trials(store: Store, study: str, job_name: str) -> dict[str, Trial]:
    found: dict[str, Trial] = {}
    for trial in store.list_trials(study):
        if trial.tags.get(TAG_JOB) == job_name and TAG_TRIAL in trial.tags:
            found[str(trial.tags[TAG_TRIAL])] = trial
    return found


def _params(vertex_trial: Mapping[str, Any], space: Space, trial_id: str) -> Params:
    raw: dict[str, Any] = {}
    for parameter in vertex_trial.get("parameters", []):
        raw[str(parameter.get("parameterId"))] = parameter.get("value")
    try:
        return space.validate(raw)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(
            f"Vertex trial {trial_id} does not fit the study's space: {exc}; import into a "
            "new study with --study NAME"
        ) from None


def _tags(job: Mapping[str, Any], vertex_trial: Mapping[str, Any]) -> dict[str, Any]:
    trial_id = str(vertex_trial.get("id", ""))
    tags: dict[str, Any] = {
        TAG_JOB: str(job.get("name", "")),
        TAG_TRIAL: trial_id,
        "vertex_state": str(vertex_trial.get("state", "")),
    }
    base = (job.get("trialJobSpec") or {}).get("baseOutputDirectory", {}).get("outputUriPrefix")
    if base and trial_id:
        # Vertex AI's per-trial directories (AIP_MODEL_DIR, ...): the dashboard lists them.
        trial_dir = f"{str(base).rstrip('/')}/{trial_id}"
        tags["model_dir"] = f"{trial_dir}/model/"
        tags["checkpoint_dir"] = f"{trial_dir}/checkpoints/"
        tags["log_dir"] = f"{trial_dir}/logs/"
    for key, tag in (
        ("startTime", "vertex_start_time"),
        ("endTime", "vertex_end_time"),
        ("customJob", "vertex_custom_job"),
    ):
        if vertex_trial.get(key):
            tags[tag] = str(vertex_trial[key])
    return tags


def _finish(
    store: Store, study: str, trial: Trial, vertex_trial: Mapping[str, Any], metric: str
) -> Trial:
    for step, metrics in _measurements(vertex_trial.get("measurements", [])):
        if metrics:
            store.add_measurement(study, trial.number, trial.attempt, step, metrics)
    state = str(vertex_trial.get("state"))
    final = _metrics(vertex_trial.get("finalMeasurement", {}).get("metrics", []))
    value = final.get(metric)
    if state == "INFEASIBLE":  # it ran, and its result must not count: kept as infeasible
        reason = str(
            vertex_trial.get("infeasibleReason") or "Vertex AI marked the trial infeasible"
        )
        return store.complete_trial(
            study, trial.number, trial.attempt, value, final, infeasible_reason=reason
        )
    config = store.get_study(study).config
    broken = config.violations(final)
    if broken and value is not None:  # a safety metric out of bounds
        return store.complete_trial(
            study, trial.number, trial.attempt, value, final, infeasible_reason="; ".join(broken)
        )
    if value is None:
        return store.fail_trial(
            study,
            trial.number,
            trial.attempt,
            f"Vertex AI reported no final value of {metric!r} for this trial",
        )
    return store.complete_trial(study, trial.number, trial.attempt, value, final)


def _final_value(vertex_trial: Mapping[str, Any], metric: str) -> float | None:
    return _metrics(vertex_trial.get("finalMeasurement", {}).get("metrics", [])).get(metric)


def _measurements(measurements: Sequence[Mapping[str, Any]]) -> list[tuple[int, dict[str, float]]]:
    out = []
    for measurement in measurements:
        # The JSON form leaves out a step count of 0 (the proto default).
        step = int(measurement.get("stepCount") or 0)
        out.append((step, _metrics(measurement.get("metrics", []))))
    return out


def _metrics(metrics: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    values: dict[str, float] = {}
    for metric in metrics:
        value = metric.get("value")
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        ):
            values[str(metric.get("metricId"))] = float(value)
    return values
