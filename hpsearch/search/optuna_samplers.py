"""Optuna's TPE, CMA-ES and NSGA-II samplers behind hpsearch's pure interface (optional extra).

The history is replayed into an in-memory Optuna study (completed trials as COMPLETE,
pending ones as RUNNING, so TPE's constant liar sees them) and ``n`` trials are asked.
For TPE that study is kept between calls in this process (:class:`_Replay`): a call adds
only the trials completed since the last one, instead of replaying the whole history (which
took 80% of a suggestion's time at 150 trials, in Optuna's ``add_trial``).  The pending and
asked trials are told FAIL afterwards, which TPE ignores, so the suggestions are those of
a fresh replay with the same generator.  ``optuna`` is imported lazily: without it these
algorithms raise an error that says what to install.  CMA-ES also needs the ``cmaes``
package.

Reverse-log doubles have no Optuna counterpart: Optuna searches their unit coordinate
and hpsearch maps it back, which keeps the declared scale.

A multi-objective study replays its trials with every objective (Optuna's ``values``),
and a study with constraints with Optuna's constraint values (``constraints_func``): TPE
and NSGA-II both rank feasible trials first.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from hpsearch.errors import FailedPreconditionError
from hpsearch.search.algorithm import Algorithm, Observation
from hpsearch.search.encoding import params_key
from hpsearch.space import (
    BooleanParam,
    CategoricalParam,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    Goal,
    IntegerParam,
    Parameter,
    Params,
    Scale,
    StudyConfig,
)

logger = logging.getLogger(__name__)


def suggest_optuna(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
    sampler_name: str,
) -> list[Params]:
    """``n`` suggestions from Optuna's TPE (``tpe``), CMA-ES (``cmaes``) or NSGA-II
    (``nsga2``) sampler."""
    try:
        import optuna
    except ImportError:
        raise FailedPreconditionError(
            f"algorithm {sampler_name!r} needs Optuna: pip install 'hpsearch[optuna]'"
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = int(rng.integers(0, 2**31 - 1))
    sampler: Any
    if sampler_name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise FailedPreconditionError(
                "algorithm 'cmaes' needs the cmaes package: pip install cmaes"
            ) from None
        # Optuna's CMA-ES keeps its state in the trials it sampled itself; the history here
        # is re-added as plain trials on every call, so warm-start each call from it
        # (WS-CMA-ES: ``source_trials``, from 10 completed trials) rather than restart from
        # the centre on every call, which searched worse than random search (measured:
        # benchmarks/results/design_figures.md, "CMA-ES warm-started from the history").
        # Only where CMA-ES itself models every parameter (numbers, no conditions): Optuna
        # refuses source trials with others ("No compatible source_trials").
        numeric = all(
            isinstance(p, (DoubleParam, IntegerParam)) and not p.conditions for p in config.space
        )
        source = (
            [_frozen(optuna, config.space, o.params, o.value) for o in completed]
            if numeric
            else []
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # source_trials is marked experimental
            sampler = optuna.samplers.CmaEsSampler(
                seed=seed, source_trials=source if len(source) >= 10 else None
            )
    elif sampler_name == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(
            seed=seed, constraints_func=_constraints_func(optuna, config)
        )
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # multivariate/group are marked experimental
            sampler = optuna.samplers.TPESampler(
                seed=seed,
                constant_liar=True,
                multivariate=True,
                group=True,
                constraints_func=_constraints_func(optuna, config),
            )
    directions = [
        optuna.study.StudyDirection.MAXIMIZE
        if metric.goal is Goal.MAXIMIZE
        else optuna.study.StudyDirection.MINIMIZE
        for metric in config.metrics
    ]
    if sampler_name == "tpe":
        with _replayed(optuna, config, completed, directions) as replay:
            return replay.ask(sampler, pending, n)
    replay = _Replay(optuna, config, optuna.create_study(directions=directions, sampler=sampler))
    replay.extend(completed)  # also what ask() must not suggest again
    return replay.ask(sampler, pending, n, keep=False)


class _Replay:
    """A study's completed trials in an in-memory Optuna study, kept between calls.

    ``observed`` are the observations added, in order; every other trial in the Optuna
    study (a pending trial, an asked one) ends FAIL once its call is over, and TPE reads
    only COMPLETE, PRUNED and (constant liar) RUNNING trials, so they change nothing.
    """

    #: Rebuilt from scratch once the FAIL trials outnumber the observed ones by this much
    #: (each call adds its pending and asked trials; the store of them grows meanwhile).
    SCRATCH_FACTOR = 4

    def __init__(self, optuna: Any, config: StudyConfig, study: Any) -> None:
        self.optuna = optuna
        self.config = config
        self.study = study
        self.observed: list[Observation] = []
        self.trials = len(study.get_trials(deepcopy=False))  # the next trial's number
        # NSGA-II's (generation attr key, population size): the replayed trials are its
        # generations, population by population in completion order.
        self.generations: tuple[str, int] | None = None
        sampler = study.sampler
        if hasattr(sampler, "_get_generation_key") and sampler.population_size:
            self.generations = (sampler._get_generation_key(), int(sampler.population_size))
        self.lock = threading.Lock()

    def extend(self, observations: Sequence[Observation]) -> None:
        for obs in observations:
            frozen = _observed(self.optuna, self.config, obs)
            if self.generations is not None:  # a genetic sampler's generation, in order
                key, size = self.generations
                frozen.system_attrs[key] = len(self.observed) // size
            self.study.add_trial(frozen)
            self.trials += 1
            self.observed.append(obs)

    def worn(self) -> bool:
        scratch = self.trials - len(self.observed)
        return scratch > self.SCRATCH_FACTOR * len(self.observed) + 256

    def ask(self, sampler: Any, pending: Sequence[Params], n: int, keep: bool = True) -> list:
        """``n`` new parameter sets from ``sampler`` with ``pending`` running."""
        optuna, study, space = self.optuna, self.study, self.config.space
        failed = optuna.trial.TrialState.FAIL
        study.sampler = sampler
        scratch: list[int] = []  # trial numbers to end FAIL
        try:
            for params in pending:
                study.add_trial(_frozen(optuna, space, params, None))
                scratch.append(self.trials)
                self.trials += 1
            seen = {params_key(o.params) for o in self.observed}
            seen |= {params_key(p) for p in pending}
            out: list[Params] = []
            for _ in range(4 * n + 8):
                if len(out) == n:
                    break
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    trial = study.ask()
                    self.trials += 1
                    params = _sample(space, trial)
                key = params_key(params)
                if key in seen:
                    # Tell Optuna it failed so it moves on; a duplicate is never handed out.
                    study.tell(trial, state=failed)
                    continue
                scratch.append(trial.number)
                seen.add(key)
                out.append(params)
            return out
        finally:
            if keep:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    for number in scratch:
                        study.tell(number, state=failed)


#: Kept replays by (study name, sampler); a few studies per process (the chief's fit
#: process serves every study of the chief).
_REPLAYS: OrderedDict[str, _Replay] = OrderedDict()
_REPLAYS_KEPT = 8
_REPLAYS_LOCK = threading.Lock()


@contextmanager
def _replayed(
    optuna: Any, config: StudyConfig, completed: Sequence[Observation], directions: Any
) -> Iterator[_Replay]:
    """The kept replay of ``config``'s study brought up to ``completed`` (a new one when
    the kept one is not a prefix of it: another study of that name, a history read again
    in another order, a changed declaration), held for this call alone; dropped if the
    call fails half-way."""
    with _REPLAYS_LOCK:
        replay = _REPLAYS.pop(config.name, None)
    if replay is not None:
        k = len(replay.observed)
        if (
            replay.config != config
            or replay.worn()
            or len(completed) < k
            or list(completed[:k]) != replay.observed
        ):
            replay = None
    if replay is None:
        replay = _Replay(optuna, config, optuna.create_study(directions=directions))
    with replay.lock:
        replay.extend(completed[len(replay.observed) :])
        yield replay
    with _REPLAYS_LOCK:
        _REPLAYS[config.name] = replay
        while len(_REPLAYS) > _REPLAYS_KEPT:
            _REPLAYS.popitem(last=False)


def _distribution(optuna: Any, param: Parameter) -> Any:
    d = optuna.distributions
    if isinstance(param, DoubleParam):
        if param.scale is Scale.REVERSE_LOG:
            return d.FloatDistribution(0.0, 1.0)
        return d.FloatDistribution(
            param.min,
            param.max,
            log=param.scale is Scale.LOG,
            step=None if param.scale is Scale.LOG else param.step,
        )
    if isinstance(param, IntegerParam):
        log = param.scale is not Scale.LINEAR
        return d.IntDistribution(param.min, param.max, log=log, step=1 if log else param.step or 1)
    if isinstance(param, (CategoricalParam, DiscreteParam)):
        return d.CategoricalDistribution(list(param.values))
    if isinstance(param, BooleanParam):
        return d.CategoricalDistribution([False, True])
    raise AssertionError(param)  # pragma: no cover


def _to_optuna(param: Parameter, value: Any) -> Any:
    if isinstance(param, DoubleParam) and param.scale is Scale.REVERSE_LOG:
        return param.to_unit(value)
    return value


def _observed(optuna: Any, config: StudyConfig, obs: Observation) -> Any:
    """A completed trial as an Optuna trial: COMPLETE with its objective value(s) and, in a
    study with constraints, Optuna's constraint values (<= 0: kept) in its system attrs,
    where ``constraints_func``-aware samplers (NSGA-II, TPE) read them.  An infeasible
    trial without its objectives is a FAIL, which Optuna's samplers skip."""
    if not config.multi_objective and not config.constraints:
        return _frozen(optuna, config.space, obs.params, obs.value)
    values = config.objectives(obs.metrics) if config.multi_objective else (obs.value,)
    if values is None or not all(np.isfinite(values)):
        return _frozen(optuna, config.space, obs.params, None, fail=True)
    attrs = {}
    if config.constraints:
        attrs[_CONSTRAINTS_KEY] = _constraint_values(config, obs)
    return _frozen(optuna, config.space, obs.params, list(values), system_attrs=attrs)


#: Where Optuna's samplers read a trial's constraint values (optuna.samplers._base).
_CONSTRAINTS_KEY = "constraints"


def _constraint_values(config: StudyConfig, obs: Observation) -> list[float]:
    """Optuna's constraint values of a trial (<= 0 kept): minus each constraint's slack; a
    metric not reported, or a trial that said it was infeasible, counts as broken by 1."""
    out = []
    for constraint in config.constraints:
        value = obs.metrics.get(constraint.metric)
        out.append(1.0 if value is None else -constraint.slack(float(value)))
    if not obs.feasible and all(v <= 0 for v in out):
        out = [1.0 for _ in out]
    return out


def _constraints_of(trial: Any) -> Any:
    return trial.system_attrs.get(_CONSTRAINTS_KEY, ())


def _constraints_func(optuna: Any, config: StudyConfig) -> Any:
    """Optuna 4 reads the replayed constraint values only through a ``constraints_func``;
    Optuna 5 reads them from the system attrs itself (and deprecates the argument)."""
    if not config.constraints or int(optuna.__version__.split(".")[0]) >= 5:
        return None
    return _constraints_of


def _frozen(
    optuna: Any,
    space: Any,
    params: Params,
    value: float | list[float] | None,
    *,
    fail: bool = False,
    system_attrs: dict[str, Any] | None = None,
) -> Any:
    dists = {}
    values = {}
    for param in space:
        if isinstance(param, FixedParam) or param.name not in params:
            continue
        dists[param.name] = _distribution(optuna, param)
        values[param.name] = _to_optuna(param, params[param.name])
    states = optuna.trial.TrialState
    state = states.FAIL if fail else states.COMPLETE if value is not None else states.RUNNING
    return optuna.trial.create_trial(
        state=state,
        value=value if not isinstance(value, list) else None,
        values=value if isinstance(value, list) else None,
        params=values,
        distributions=dists,
        system_attrs=system_attrs,
    )


def _sample(space: Any, trial: Any) -> Params:
    params: Params = {}
    for param in space:
        if not space.is_active(param, params):
            continue
        if isinstance(param, FixedParam):
            params[param.name] = param.value
        elif isinstance(param, DoubleParam):
            if param.scale is Scale.REVERSE_LOG:
                value = param.from_unit(trial.suggest_float(param.name, 0.0, 1.0))
            else:
                log = param.scale is Scale.LOG
                value = trial.suggest_float(
                    param.name,
                    param.min,
                    param.max,
                    log=log,
                    step=None if log else param.step,
                )
            params[param.name] = param.validate(min(max(float(value), param.min), param.max))
        elif isinstance(param, IntegerParam):
            log = param.scale is not Scale.LINEAR
            value = trial.suggest_int(
                param.name, param.min, param.max, log=log, step=1 if log else param.step or 1
            )
            params[param.name] = param.validate(value)
        elif isinstance(param, (CategoricalParam, DiscreteParam)):
            params[param.name] = param.validate(
                trial.suggest_categorical(param.name, list(param.values))
            )
        else:
            params[param.name] = param.validate(
                trial.suggest_categorical(param.name, [False, True])
            )
    return params


class OptunaTPE(Algorithm):
    """``tpe``: Optuna's multivariate TPE sampler with the constant liar."""

    name = "tpe"

    def suggest(
        self,
        config: StudyConfig,
        completed: Sequence[Observation],
        pending: Sequence[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> list[Params]:
        return suggest_optuna(config, completed, pending, n, rng, self.name)


class OptunaCMAES(OptunaTPE):
    """``cmaes``: Optuna's CMA-ES sampler, warm-started from the history."""

    name = "cmaes"


class OptunaNSGA2(OptunaTPE):
    """``nsga2``: Optuna's NSGA-II sampler (multi-objective, with constraints): its
    generations are rebuilt from the replayed history on every call."""

    name = "nsga2"
