"""Import an Optuna study (any Optuna storage) into an hpsearch study.

``hpsearch import optuna --from STORAGE --study NAME [--into NAME]`` and
:func:`import_optuna`.  ``STORAGE`` is what Optuna takes as a storage: an RDB URL
(``sqlite:///optuna.db``, ``postgresql://...``, ``mysql://...``) or the path of a journal
file (``JournalFileBackend``); from Python, a loaded ``optuna.Study`` works too (an
in-memory study).

How Optuna's values map (the space is the union of the distributions the trials used):

==============================================  ==============================================
Optuna                                          hpsearch
==============================================  ==============================================
``FloatDistribution(low, high)``                ``double`` [low, high], linear
``FloatDistribution(log=True)``                 ``double``, ``scale: log``
``FloatDistribution(step=s)``                   ``double`` with ``step: s``
``IntDistribution(low, high, log, step)``       ``integer`` (``scale: log``; ``step`` when > 1)
``CategoricalDistribution`` of strings          ``categorical``, same values
``CategoricalDistribution`` of numbers          ``discrete`` with ``ordered: false`` (Optuna's
                                                choices are unordered), ints stay ints
``CategoricalDistribution([False, True])``      ``boolean``
one choice, or ``low == high``                  ``fixed``
choices mixing types or holding ``None``        ``categorical`` of their ``str()`` (the only
                                                lossy case: the values come back as strings)
a parameter only some trials drew               conditional: ``when: {parent: [values]}`` on
                                                the parameter whose values decide it
==============================================  ==============================================

A parameter whose ranges differ between trials (Optuna's dynamic spaces) gets the widest
one.  Define-by-run conditionals are found from the completed trials: a parameter drawn by
only some of them is made conditional on another parameter (integer, categorical, discrete
or boolean) whose values in those trials never occur in the others; when no parameter
explains it, the import stops and says which parameter it is.

Trials: COMPLETE -> COMPLETED (``trial.value``), PRUNED -> STOPPED (its value, else its last
intermediate value), FAIL -> FAILED, RUNNING and WAITING are left for a later import.
Intermediate values become measurements of the objective at their steps.  The objective is
named by ``--metric``, else by the study's ``metric_names``, else ``value``.  Each trial
keeps ``optuna_trial`` (its number), ``optuna_state``, its start and end times and its user
attributes in its tags.  Multi-objective studies are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hpsearch.errors import InvalidArgumentError, NotFoundError
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
from hpsearch.space import (
    BooleanParam,
    Budget,
    CategoricalParam,
    Condition,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    Goal,
    IntegerParam,
    Metric,
    Parameter,
    Scale,
    Space,
    StudyConfig,
)
from hpsearch.space.params import PARENT_KINDS
from hpsearch.store.api import Store

#: Optuna's trial states, by name, as hpsearch's.
STATES = {
    "COMPLETE": TrialState.COMPLETED,
    "PRUNED": TrialState.STOPPED,
    "FAIL": TrialState.FAILED,
    "RUNNING": TrialState.RUNNING,
    "WAITING": TrialState.WAITING,
}


def import_optuna(
    store: Store,
    storage: Any,
    study_name: str | None = None,
    *,
    into: str | None = None,
    metric: str | None = None,
    max_trials: int | None = None,
    algorithm: str = "bayesian",
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Import the Optuna study ``study_name`` of ``storage`` (a storage URL, a journal file
    path, an Optuna storage object, or a loaded ``optuna.Study``) into the hpsearch study
    ``into`` (default: the Optuna study's name), creating it when it does not exist."""
    study, shown = load_optuna_study(storage, study_name)
    if len(study.directions) != 1:
        raise InvalidArgumentError(
            f"Optuna study {study.study_name!r} has {len(study.directions)} objectives; "
            "hpsearch imports single-objective studies"
        )
    trials = study.get_trials(deepcopy=False)
    space = space_from_optuna(trials)
    metric_name = metric or (study.metric_names or ["value"])[0]
    finished = [t for t in trials if STATES.get(t.state.name) in FINISHED]
    config = StudyConfig(
        name=into or valid_study_name(study.study_name, "optuna"),
        metric=Metric(metric_name, Goal(study.direction.name.lower())),
        space=space,
        budget=Budget(max_trials=max_trials or default_max_trials(len(finished))),
        algorithm=algorithm,
    )
    source = Source(
        kind="optuna",
        identity={"optuna_storage": shown, "optuna_study": study.study_name},
        key_tag="optuna_trial",
        description=f"Optuna study {study.study_name!r} ({shown})",
    )
    foreign = [foreign_trial(t, metric_name, space) for t in trials]
    return import_trials(store, config, source, foreign, progress=progress)


def load_optuna_study(storage: Any, study_name: str | None) -> tuple[Any, str]:
    """The ``optuna.Study`` and how to name its storage in tags and messages (a URL's
    password hidden)."""
    optuna = _optuna()
    if isinstance(storage, optuna.Study):
        return storage, _storage_name(storage._storage)
    shown = str(storage)
    if isinstance(storage, str):
        shown = _safe_url(storage)
        storage = _storage(optuna, storage)
    names = optuna.study.get_all_study_names(storage)
    if study_name is None:
        if len(names) != 1:
            raise InvalidArgumentError(
                f"{shown} holds {len(names)} Optuna studies "
                f"({', '.join(sorted(names)) or 'none'}); name one with --study"
            )
        study_name = names[0]
    elif study_name not in names:
        raise NotFoundError(
            f"no Optuna study {study_name!r} in {shown}; it holds: "
            f"{', '.join(sorted(names)) or 'none'}"
        )
    return optuna.load_study(study_name=study_name, storage=storage), shown


def space_from_optuna(trials: Sequence[Any]) -> Space:
    """The hpsearch space of a list of Optuna ``FrozenTrial``: the union of their
    distributions, with conditions inferred from which completed trials drew what."""
    distributions: dict[str, Any] = {}
    for trial in trials:
        for name, distribution in trial.distributions.items():
            distributions[name] = (
                _widest(name, distributions[name], distribution)
                if name in distributions
                else distribution
            )
    params = {name: parameter_from_optuna(name, d) for name, d in distributions.items()}
    completed = [t for t in trials if t.state.name == "COMPLETE"] or list(trials)
    drawn = [{n: _value(params[n], v) for n, v in t.params.items()} for t in completed]
    return Space(tuple(_with_condition(param, params, drawn) for param in params.values()))


def parameter_from_optuna(name: str, distribution: Any) -> Parameter:
    """One Optuna distribution as an hpsearch parameter (see the module's table)."""
    optuna = _optuna()
    dist = optuna.distributions
    ranges: tuple[tuple[Any, Any, Any], ...] = (
        (dist.FloatDistribution, DoubleParam, float),
        (dist.IntDistribution, IntegerParam, int),
    )
    for kind, param, number in ranges:
        if isinstance(distribution, kind):
            low, high = number(distribution.low), number(distribution.high)
            if low == high:
                return FixedParam(name, low)
            step = distribution.step
            if param is IntegerParam and step == 1:
                step = None  # every integer (a step of 1 is not a log-scale factor)
            scale = Scale.LOG if distribution.log else Scale.LINEAR
            return param(  # type: ignore[no-any-return]
                name, low, high, scale=scale, step=None if step is None else number(step)
            )
    if isinstance(distribution, dist.CategoricalDistribution):
        return _categorical(name, tuple(distribution.choices))
    raise InvalidArgumentError(
        f"parameter {name!r}: Optuna distribution {type(distribution).__name__} is not known "
        "to hpsearch"
    )


def foreign_trial(trial: Any, metric: str, space: Space) -> ForeignTrial:
    """One Optuna ``FrozenTrial`` as a trial to import, its parameters as ``space`` holds
    them (a mixed categorical's choice as its text)."""
    state = STATES.get(trial.state.name, TrialState.FAILED)
    steps = sorted(trial.intermediate_values.items())
    measurements = [(int(step), {metric: float(v)}) for step, v in steps if finite(v)]
    value = trial.value if finite(trial.value) else None
    if state is TrialState.STOPPED and value is None and measurements:
        value = measurements[-1][1][metric]
    tags: dict[str, Any] = {"optuna_state": trial.state.name}
    if trial.datetime_start is not None:
        tags["optuna_datetime_start"] = trial.datetime_start.isoformat()
    if trial.datetime_complete is not None:
        tags["optuna_datetime_complete"] = trial.datetime_complete.isoformat()
    if trial.user_attrs:
        tags["optuna_user_attrs"] = dict(trial.user_attrs)
    failure = ""
    if state is TrialState.FAILED:
        reason = trial.system_attrs.get("fail_reason")
        failure = f"failed in Optuna: {reason}" if reason else "failed in Optuna"
    return ForeignTrial(
        key=str(trial.number),
        state=state,
        params={
            name: _value(space[name], v) if name in space else v
            for name, v in trial.params.items()
        },
        value=value,
        metrics={metric: value} if value is not None else {},
        measurements=measurements,
        failure_message=failure,
        tags=tags,
    )


# -- helpers ---------------------------------------------------------------------------------
def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise InvalidArgumentError(
            "importing from Optuna needs the optuna package: pip install 'hpsearch[optuna]'"
        ) from None
    return optuna


def _storage(optuna: Any, storage: str) -> Any:
    """An RDB URL as it is; an existing file that is not SQLite as a journal file."""
    path = Path(storage)
    if "://" not in storage and path.is_file():
        with open(path, "rb") as handle:
            if handle.read(16) != b"SQLite format 3\x00":
                from optuna.storages import JournalStorage
                from optuna.storages.journal import JournalFileBackend

                return JournalStorage(JournalFileBackend(str(path)))
        raise InvalidArgumentError(
            f"{storage} is an SQLite file: pass it as a URL, sqlite:///{path.resolve()}"
        )
    if "://" not in storage:
        raise InvalidArgumentError(
            f"Optuna storage {storage!r} is neither a URL (sqlite:///optuna.db, "
            "postgresql://...) nor an existing journal file"
        )
    return storage


def _safe_url(url: str) -> str:
    if "://" not in url:
        return str(Path(url).resolve())
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not an RDB URL: shown as given
        return url


def _storage_name(storage: Any) -> str:
    url = getattr(storage, "url", None)
    return _safe_url(str(url)) if url else type(storage).__name__


def _widest(name: str, first: Any, second: Any) -> Any:
    """Optuna's dynamic spaces: the same parameter drawn from different ranges."""
    if first == second:
        return first
    optuna = _optuna()
    dist = optuna.distributions
    if isinstance(first, dist.CategoricalDistribution) and isinstance(
        second, dist.CategoricalDistribution
    ):
        choices = list(first.choices)
        choices += [c for c in second.choices if c not in choices]
        return dist.CategoricalDistribution(choices)
    for kind in (dist.FloatDistribution, dist.IntDistribution):
        if (
            isinstance(first, kind)
            and isinstance(second, kind)
            and (first.log, first.step) == (second.log, second.step)
        ):
            return kind(
                min(first.low, second.low),
                max(first.high, second.high),
                log=first.log,
                step=first.step,
            )
    raise InvalidArgumentError(
        f"parameter {name!r} was drawn as {first} in some trials and as {second} in others; "
        "hpsearch can merge ranges of one kind and scale, not these"
    )


def _categorical(name: str, choices: tuple[Any, ...]) -> Parameter:
    if len(choices) == 1 and isinstance(choices[0], (bool, int, float, str)):
        return FixedParam(name, choices[0])
    if all(isinstance(c, bool) for c in choices) and set(choices) == {False, True}:
        return BooleanParam(name)
    if all(isinstance(c, str) for c in choices):
        return CategoricalParam(name, choices)
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices):
        return DiscreteParam(name, choices, ordered=False)
    labels = tuple(str(c) for c in choices)
    if len(set(labels)) != len(labels):
        raise InvalidArgumentError(
            f"parameter {name!r}: the choices {list(choices)} are not told apart as strings"
        )
    return CategoricalParam(name, labels)


def _value(param: Parameter, value: Any) -> Any:
    """An Optuna value as the parameter holds it (a mixed categorical's choice as text)."""
    value = _plain(value)
    if isinstance(param, CategoricalParam) and not isinstance(value, str):
        return str(value)
    return value


def _with_condition(
    param: Parameter, params: Mapping[str, Parameter], drawn: Sequence[Mapping[str, Any]]
) -> Parameter:
    """``param`` made conditional on the parameter that decides when it is drawn.

    Among the parameters whose values split the trials that drew ``param`` from the others,
    the one that needs the fewest values wins (then categorical and boolean ones, then the
    first declared): with few trials an integer can split them by chance, while a
    define-by-run ``if optimizer == "sgd":`` needs one value."""
    present = [t for t in drawn if param.name in t]
    if len(present) == len(drawn):
        return param
    absent = [t for t in drawn if param.name not in t]
    candidates: list[tuple[int, int, int, Condition]] = []
    for index, parent in enumerate(params.values()):
        if parent.name == param.name or parent.kind not in PARENT_KINDS:
            continue
        if any(parent.name not in t for t in present):
            continue
        values = _unique(t[parent.name] for t in present)
        if any(t.get(parent.name, _MISSING) in values for t in absent):
            continue
        rank = 0 if parent.kind in ("categorical", "boolean") else 1
        candidates.append((len(values), rank, index, Condition(parent.name, tuple(values))))
    if candidates:
        return replace(param, conditions=(min(candidates, key=lambda c: c[:3])[3],))
    raise InvalidArgumentError(
        f"parameter {param.name!r} was drawn in {len(present)} of {len(drawn)} completed "
        "trials and no other parameter's value decides when; hpsearch needs a conditional "
        "parameter to depend on a parent (an integer, categorical, discrete or boolean "
        "parameter): import into a study declared with that condition (--into NAME)"
    )


_MISSING = object()


def _unique(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if not any(type(v) is type(value) and v == value for v in out):
            out.append(value)
    return out


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # a NumPy scalar
    return item() if callable(item) and not isinstance(value, (str, bytes)) else value
