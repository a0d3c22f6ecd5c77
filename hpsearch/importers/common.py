"""Writing another tuner's finished trials into an hpsearch study: what every importer shares.

An importer reads its source into :class:`ForeignTrial` values (hpsearch's words: a state,
validated-to-be parameters, a value, metrics, intermediate measurements) and a proposed
:class:`~hpsearch.space.StudyConfig`; :func:`import_trials` creates the study when it does
not exist (or checks that the existing one optimizes the same metric the same way), then
adds every finished foreign trial as one trial of the study:

- created RUNNING under the worker id ``<kind>-import``, its measurements added, then
  COMPLETED with its value, FAILED with its message or STOPPED (with its value, if any),
  through the same store calls a worker's reports go through;
- tagged ``imported_from`` (the kind), the source's identity tags and the trial's key, so
  importing the same source again adds only the trials finished since (the rest are
  counted as ``unchanged``); trials still running in the source are counted as ``pending``.

Every finished trial's parameters are checked against the study's space before anything is
written, so a source that does not fit an existing study changes nothing.  A failed trial
whose parameters do not fit (a trial that failed before it had drawn all of them) is
skipped and counted: it holds no result the model could use.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from hpsearch.errors import InvalidArgumentError, NotFoundError, StaleAttemptError
from hpsearch.records import Study, Trial, TrialState
from hpsearch.space import Params, StudyConfig
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)

#: The tag naming what a trial was imported from ("optuna", "keras_tuner").
SOURCE_TAG = "imported_from"
#: Lease for the moment between creating an imported trial and finishing it.
IMPORT_LEASE_SECONDS = 3600.0
FINISHED = (TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED)


@dataclass(frozen=True, slots=True)
class ForeignTrial:
    """One trial of another tuner in hpsearch's terms (each importer says how it maps)."""

    key: str  # its id in the source: Optuna's trial number, Keras Tuner's trial_id
    state: TrialState  # COMPLETED, FAILED or STOPPED; WAITING or RUNNING: not finished yet
    params: Mapping[str, Any]
    value: float | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    measurements: Sequence[tuple[int, Mapping[str, float]]] = ()
    failure_message: str = ""
    tags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Source:
    """Where the trials come from: ``kind`` ("optuna"), the tags that identify the source
    on every trial (``{"optuna_study": "x", ...}``), the tag holding each trial's key, and
    how to name the source in messages."""

    kind: str
    identity: Mapping[str, str]
    key_tag: str
    description: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import did."""

    study: str
    source: str
    created_study: bool
    completed: int = 0  # trials added as COMPLETED
    failed: int = 0  # added as FAILED
    stopped: int = 0  # added as STOPPED (pruned, early-stopped)
    unchanged: int = 0  # imported before
    pending: int = 0  # not finished in the source yet (import again later)
    skipped: int = 0  # failed trials whose parameters do not fit the space
    total_trials: int = 0  # trials of the study afterwards
    max_trials: int = 0  # the study's budget
    numbers: dict[str, int] = field(default_factory=dict)  # source key -> trial number

    @property
    def added(self) -> int:
        return self.completed + self.failed + self.stopped


def import_trials(
    store: Store,
    config: StudyConfig,
    source: Source,
    trials: Sequence[ForeignTrial],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Add ``trials`` to the study ``config.name``, creating it from ``config`` when it does
    not exist.  ``progress(done, total)`` is called after each trial."""
    study, created = _study(store, config, source)
    space = study.config.space
    already = _imported(store, study.name, source)

    todo: list[tuple[ForeignTrial, Params]] = []
    pending = unchanged = skipped = 0
    numbers: dict[str, int] = {}
    for foreign in trials:
        previous = already.get(foreign.key)
        if previous is not None and previous.state.finished:
            unchanged += 1
            numbers[foreign.key] = previous.number
        elif foreign.state not in FINISHED:
            pending += 1
        else:
            try:
                todo.append((foreign, space.validate(foreign.params)))
            except InvalidArgumentError as exc:
                if foreign.state is TrialState.FAILED:
                    skipped += 1
                    continue
                raise InvalidArgumentError(
                    f"trial {foreign.key} of the {source.description} does not fit the space "
                    f"of study {study.name!r}: {exc}; import into a new study (--into NAME)"
                ) from None

    counts = dict.fromkeys(FINISHED, 0)
    for done, (foreign, params) in enumerate(todo, start=1):
        trial = already.get(foreign.key)
        if trial is None:
            trial = store.create_trial(
                study.name,
                params,
                worker_id=f"{source.kind}-import",
                lease_seconds=IMPORT_LEASE_SECONDS,
                tags={
                    **foreign.tags,
                    SOURCE_TAG: source.kind,
                    **source.identity,
                    source.key_tag: foreign.key,
                },
            )
        elif trial.state is not TrialState.RUNNING:
            # Created by an import cut short and since handed out again: leave it.
            logger.warning(
                "import skips trial=%s source_trial=%s state=%s",
                trial.number,
                foreign.key,
                trial.state.value,
            )
            continue
        numbers[foreign.key] = trial.number
        try:
            finished = _finish(store, study.name, trial, foreign)
        except StaleAttemptError:
            logger.warning("import lost the lease trial=%s source=%s", trial.number, foreign.key)
            continue
        counts[finished.state] += 1
        if progress is not None:
            progress(done, len(todo))

    total = sum(store.count_trials(study.name).values())
    result = ImportResult(
        study=study.name,
        source=source.description,
        created_study=created,
        completed=counts[TrialState.COMPLETED],
        failed=counts[TrialState.FAILED],
        stopped=counts[TrialState.STOPPED],
        unchanged=unchanged,
        pending=pending,
        skipped=skipped,
        total_trials=total,
        max_trials=study.config.budget.max_trials,
        numbers=numbers,
    )
    logger.info(
        "import done study=%s source=%s completed=%d failed=%d stopped=%d unchanged=%d "
        "pending=%d skipped=%d",
        result.study,
        source.kind,
        result.completed,
        result.failed,
        result.stopped,
        unchanged,
        pending,
        skipped,
    )
    return result


def finite(value: Any) -> TypeGuard[float]:
    """Whether ``value`` is a finite number (not a bool, not None)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def valid_study_name(name: str, prefix: str) -> str:
    """A valid hpsearch study name made from a foreign one (``prefix-...`` when it does not
    start with a letter or digit)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in name)[:128]
    return cleaned if cleaned and cleaned[0].isalnum() else f"{prefix}-{cleaned}"[:128]


def default_max_trials(imported: int) -> int:
    """The budget of a study created by an import: room to search on after the imported
    trials (``--max-trials`` overrides it)."""
    return imported + 100


# -- helpers ---------------------------------------------------------------------------------
def _study(store: Store, config: StudyConfig, source: Source) -> tuple[Study, bool]:
    try:
        study = store.get_study(config.name)
    except NotFoundError:
        study = store.create_study(config)
        logger.info("import created study=%s source=%s", config.name, source.kind)
        return study, True
    have, want = study.config.metric, config.metric
    if (have.name, have.goal) != (want.name, want.goal):
        raise InvalidArgumentError(
            f"study {study.name!r} optimizes {have.name} ({have.goal.value}) but the "
            f"{source.description} optimizes {want.name} ({want.goal.value}); import into "
            "a new study (--into NAME), or name the objective with --metric"
        )
    return study, False


def _imported(store: Store, study: str, source: Source) -> dict[str, Trial]:
    found: dict[str, Trial] = {}
    for trial in store.list_trials(study):
        tags = trial.tags
        if tags.get(SOURCE_TAG) == source.kind and all(
            tags.get(k) == v for k, v in source.identity.items()
        ):
            found[str(tags.get(source.key_tag))] = trial
    return found


def _finish(store: Store, study: str, trial: Trial, foreign: ForeignTrial) -> Trial:
    for step, metrics in foreign.measurements:
        if metrics:
            store.add_measurement(study, trial.number, trial.attempt, step, metrics)
    if foreign.state is TrialState.COMPLETED:
        if foreign.value is None:
            return store.fail_trial(
                study, trial.number, trial.attempt, "completed without a value in the source"
            )
        return store.complete_trial(
            study, trial.number, trial.attempt, foreign.value, dict(foreign.metrics)
        )
    if foreign.state is TrialState.STOPPED:
        return store.stop_trial(study, trial.number, trial.attempt, value=foreign.value)
    return store.fail_trial(
        study, trial.number, trial.attempt, foreign.failure_message or "failed in the source"
    )
