"""The study file: name, metric, parameters, budget, algorithm (YAML or JSON).

The vocabulary is Vertex AI's, so the mapping to a HyperparameterTuningJob is 1:1::

    name: mnist-mlp
    metric: {name: val_accuracy, goal: maximize}   # or metrics: [{...}, {...}] (a front)
    constraints: ["latency_ms <= 20"]             # optional: else the trial is infeasible
    parameters:
      learning_rate: {type: double, min: 0.0001, max: 0.1, scale: log}
      optimizer:     {type: categorical, values: [sgd, adam]}
      momentum:      {type: double, min: 0.0, max: 0.99, when: {optimizer: [sgd]}}
    budget: {max_trials: 100, parallel_trials: 20, max_failed_trials: 10}
    algorithm: bayesian
    measurement: best
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from hpsearch.errors import InvalidArgumentError
from hpsearch.space.params import (
    BooleanParam,
    CategoricalParam,
    Condition,
    DiscreteParam,
    DoubleParam,
    FixedParam,
    IntegerParam,
    Parameter,
    Scale,
    Space,
)

T = TypeVar("T")

ALGORITHMS = ("bayesian", "random", "grid", "tpe", "cmaes", "nsga2", "hyperband", "asha")
#: Algorithms that give each trial a budget of epochs (the study's ``fidelity``).
MULTI_FIDELITY_ALGORITHMS = ("hyperband", "asha")
#: Algorithms that search a study with several metrics (a Pareto front) ...
MULTI_OBJECTIVE_ALGORITHMS = ("bayesian", "random", "grid", "tpe", "nsga2")
#: ... and those that learn where its constraints hold.
CONSTRAINED_ALGORITHMS = ("bayesian", "random", "grid", "tpe", "nsga2")
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
#: Two days: a stock Keras Tuner worker's trial of up to a day keeps its lease with room.
DEFAULT_KERAS_TUNER_LEASE_SECONDS = 2 * 86400.0
MAX_KERAS_TUNER_LEASE_SECONDS = 7 * 86400.0


class _StudyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, plus YAML 1.2 floats such as ``1e-4``.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-4``) and ``1e-4`` is a
    string; people write ``1e-4`` for learning rates all the time.
    """


class _StudyDumper(yaml.SafeDumper):
    """Quotes the strings :class:`_StudyLoader` would read back as floats (``'1e-4'``)."""


_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
for _cls in (_StudyLoader, _StudyDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789."))


class Goal(str, Enum):
    """Whether the study metric is to be maximized or minimized: the one home of "best"."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"

    @property
    def sign(self) -> float:
        """+1 for maximize, -1 for minimize: ``sign * value`` is larger when better."""
        return 1.0 if self is Goal.MAXIMIZE else -1.0

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self is Goal.MAXIMIZE else a < b

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` (ValueError when empty, as ``max``)."""
        return max(values) if self is Goal.MAXIMIZE else min(values)

    def best_of(self, items: Iterable[T], key: Callable[[T], float]) -> T:
        """The item whose ``key`` is best (the first of equals)."""
        return max(items, key=key) if self is Goal.MAXIMIZE else min(items, key=key)


class Measurement(str, Enum):
    """Which intermediate measurement becomes the final value (Vertex's selection)."""

    BEST = "best"
    LAST = "last"

    def select(self, values: Sequence[float], goal: Goal) -> float | None:
        """The final value among one attempt's values in report order (None if none):
        the last, or the best by ``goal``.  A NaN is selected as such under ``best`` (the
        caller decides what a NaN means)."""
        if not values:
            return None
        index = self.select_index(values, goal)
        return values[index]

    def select_index(self, values: Sequence[float], goal: Goal) -> int:
        """The position in ``values`` (not empty) of the final value, see :meth:`select`."""
        if self is Measurement.LAST:
            return len(values) - 1
        for i, value in enumerate(values):
            if math.isnan(value):
                return i
        return goal.best_of(range(len(values)), key=lambda i: values[i])


def finite_metrics(metrics: Mapping[str, Any], *, where: str) -> dict[str, float]:
    """``metrics`` as floats, or InvalidArgumentError naming the first that is not a finite
    number: the one check of reported metrics (a NaN or an infinity is never stored)."""
    clean: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"{where}: metric names must be non-empty strings")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError(f"{where}: metric {name!r} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise InvalidArgumentError(
                f"{where}: metric {name!r} is {value!r}; report finite numbers only "
                "(fail the trial instead if training diverged)"
            )
        clean[name] = float(value)
    return clean


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    goal: Goal = Goal.MAXIMIZE

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise InvalidArgumentError(
                f"metric name must be a non-empty string such as val_accuracy, got {self.name!r}"
            )
        try:
            object.__setattr__(self, "goal", Goal(self.goal))
        except ValueError:
            raise InvalidArgumentError(
                f"metric goal must be maximize or minimize, got {self.goal!r}"
            ) from None

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` under this goal."""
        return a > b if self.goal is Goal.MAXIMIZE else a < b


CONSTRAINT_TEXT = re.compile(r"^\s*([^<>=\s]+)\s*(<=|>=)\s*(\S+)\s*$")


@dataclass(frozen=True, slots=True)
class Constraint:
    """A metric a trial must keep on one side of a bound (``latency_ms <= 20``): a trial
    that reports it beyond the bound is infeasible (Vertex AI's safety metrics, Optuna's
    ``constraints_func``).  The search learns where the feasible region is."""

    metric: str
    op: str  # "<=" or ">="
    bound: float

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric.strip():
            raise InvalidArgumentError(
                f"a constraint needs a metric name, e.g. 'latency_ms <= 20', got {self.metric!r}"
            )
        if self.op not in ("<=", ">="):
            raise InvalidArgumentError(
                f"constraint on {self.metric!r}: the operator must be <= or >=, got {self.op!r}"
            )
        if (
            isinstance(self.bound, bool)
            or not isinstance(self.bound, (int, float))
            or not math.isfinite(self.bound)
        ):
            raise InvalidArgumentError(
                f"constraint on {self.metric!r}: the bound must be a finite number, "
                f"got {self.bound!r}"
            )
        object.__setattr__(self, "bound", float(self.bound))

    def slack(self, value: float) -> float:
        """How far inside the bound ``value`` is (negative: violated)."""
        return self.bound - value if self.op == "<=" else value - self.bound

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True, slots=True)
class Budget:
    max_trials: int = 100
    parallel_trials: int = 1
    max_failed_trials: int | None = None
    max_attempts: int = 3  # attempts per trial before a lost/failed trial is given up

    def __post_init__(self) -> None:
        for name in ("max_trials", "parallel_trials", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"budget.{name} must be an integer >= 1, got {value!r}")
        failed = self.max_failed_trials
        if failed is not None and (
            isinstance(failed, bool) or not isinstance(failed, int) or failed < 0
        ):
            raise InvalidArgumentError(
                f"budget.max_failed_trials must be an integer >= 0 or left out, got {failed!r}"
            )


@dataclass(frozen=True, slots=True)
class EarlyStopping:
    """Median stopping rule over intermediate measurements (Vertex's and Vizier's)."""

    rule: str = "none"  # none | median
    min_trials: int = 5
    min_steps: int = 1

    def __post_init__(self) -> None:
        if self.rule not in ("none", "median"):
            raise InvalidArgumentError(
                f"early_stopping.rule must be none or median, got {self.rule!r}"
            )
        for name in ("min_trials", "min_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(
                    f"early_stopping.{name} must be an integer >= 1, got {value!r}"
                )


@dataclass(frozen=True, slots=True)
class Fidelity:
    """The budget of a multi-fidelity study (``algorithm: hyperband`` or ``asha``), in
    Keras Tuner's words: a trial trains at most ``max_epochs``; each rung keeps the best
    ``1/factor`` of its trials and trains them ``factor`` times longer, from
    ``min_epochs`` up; ``hyperband_iterations`` sweeps of all brackets (Hyperband only).
    ``parameter`` is the flag a trial script gets its epochs by (``--epochs=9``)."""

    max_epochs: int = 100
    factor: int = 3
    hyperband_iterations: int = 1
    min_epochs: int = 1
    parameter: str = "epochs"

    def __post_init__(self) -> None:
        for name in ("max_epochs", "factor", "hyperband_iterations", "min_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(
                    f"fidelity.{name} must be an integer >= 1, got {value!r}"
                )
        if self.factor < 2:
            raise InvalidArgumentError(f"fidelity.factor must be >= 2, got {self.factor}")
        if self.min_epochs > self.max_epochs:
            raise InvalidArgumentError(
                f"fidelity.min_epochs ({self.min_epochs}) must not exceed max_epochs "
                f"({self.max_epochs})"
            )
        if not isinstance(self.parameter, str) or not re.match(
            r"^[A-Za-z_][\w-]*$", self.parameter
        ):
            raise InvalidArgumentError(
                f"fidelity.parameter must be a flag name such as epochs, got {self.parameter!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_epochs": self.max_epochs,
            "factor": self.factor,
            "hyperband_iterations": self.hyperband_iterations,
            "min_epochs": self.min_epochs,
            "parameter": self.parameter,
        }


@dataclass(frozen=True, slots=True)
class WarmStart:
    """Start a study from the completed trials of another study of the same database
    (``warm_start: {study: other}``): the search sees them as history, they are not trials
    of this study (see hpsearch.space.lifecycle.fit_to_space for which ones fit)."""

    study: str

    def __post_init__(self) -> None:
        if not isinstance(self.study, str) or not STUDY_NAME.match(self.study):
            raise InvalidArgumentError(
                f"warm_start.study must name a study, e.g. warm_start: {{study: mnist-v1}}, "
                f"got {self.study!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study}


@dataclass(frozen=True, slots=True)
class Rung:
    """The budget of one trial of a multi-fidelity study, kept in its tags (``fidelity``).

    ``epochs``: train up to this many epochs in all; ``initial_epoch``: the epochs its
    parent trained (0 for a new configuration); ``parent``: the trial whose checkpoint to
    continue from (None: train from scratch); ``bracket`` and ``round``: Keras Tuner's
    ``tuner/bracket`` and ``tuner/round``.  ``instance``, ``bracket_num`` and
    ``iteration`` place the trial in the schedule when it is rebuilt after a restart."""

    epochs: int
    initial_epoch: int = 0
    bracket: int = 0
    round: int = 0
    parent: int | None = None
    instance: int = 0
    bracket_num: int = 0
    iteration: int = 0

    TAG: ClassVar[str] = "fidelity"

    def to_tag(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "initial_epoch": self.initial_epoch,
            "bracket": self.bracket,
            "round": self.round,
            "parent": self.parent,
            "instance": self.instance,
            "bracket_num": self.bracket_num,
            "iteration": self.iteration,
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, Any]) -> Rung | None:
        """The rung stored in a trial's tags, or None (not a multi-fidelity trial)."""
        data = tags.get(cls.TAG)
        if not isinstance(data, Mapping):
            return None
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True, slots=True)
class StudyConfig:
    """Everything a study is declared with."""

    name: str
    metric: Metric
    space: Space = field(default_factory=Space)
    budget: Budget = field(default_factory=Budget)
    algorithm: str = "bayesian"
    measurement: Measurement = Measurement.BEST
    lease_seconds: float = 60.0
    early_stopping: EarlyStopping = field(default_factory=EarlyStopping)
    seed: int | None = None
    #: The lease of an attempt handed to a stock Keras Tuner worker, which sends nothing
    #: while it trains (Keras Tuner 1.4 reports once, after ``fit``), so no heartbeat can
    #: renew it: long enough for any real training run.  A worker that restarts under the
    #: same tuner id gives its trial back at once, without waiting for this lease.
    keras_tuner_lease_seconds: float = DEFAULT_KERAS_TUNER_LEASE_SECONDS
    #: The epochs budget of a multi-fidelity study (None for the other algorithms).
    fidelity: Fidelity | None = None
    #: Another study whose completed trials the search starts from (None: a cold start).
    warm_start: WarmStart | None = None
    #: Every objective, the first being ``metric`` (one unless the study is
    #: multi-objective; left empty, it is ``(metric,)``).
    metrics: tuple[Metric, ...] = ()
    #: Metrics a trial must keep within bounds, else it is infeasible.
    constraints: tuple[Constraint, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not STUDY_NAME.match(self.name):
            raise InvalidArgumentError(
                f"study name {self.name!r} is not valid; use 1-128 letters, digits, '_', '-' "
                "or '.', starting with a letter or digit"
            )
        if self.algorithm not in ALGORITHMS:
            raise InvalidArgumentError(
                f"algorithm {self.algorithm!r} is unknown; use one of {', '.join(ALGORITHMS)}"
            )
        if not (
            isinstance(self.lease_seconds, (int, float))
            and not isinstance(self.lease_seconds, bool)
            and 1 <= self.lease_seconds <= 86400
        ):
            raise InvalidArgumentError(
                f"lease_seconds must be between 1 and 86400, got {self.lease_seconds!r}"
            )
        if not (
            isinstance(self.keras_tuner_lease_seconds, (int, float))
            and not isinstance(self.keras_tuner_lease_seconds, bool)
            and 1 <= self.keras_tuner_lease_seconds <= MAX_KERAS_TUNER_LEASE_SECONDS
        ):
            raise InvalidArgumentError(
                "keras_tuner_lease_seconds must be between 1 and "
                f"{MAX_KERAS_TUNER_LEASE_SECONDS:g} (7 days), "
                f"got {self.keras_tuner_lease_seconds!r}"
            )
        multi_fidelity = self.algorithm in MULTI_FIDELITY_ALGORITHMS
        if multi_fidelity and self.fidelity is None:
            object.__setattr__(self, "fidelity", Fidelity())
        if self.fidelity is not None and not multi_fidelity:
            raise InvalidArgumentError(
                f"fidelity is for algorithm hyperband or asha, not {self.algorithm}; remove "
                "it or choose one of those"
            )
        if multi_fidelity and self.fidelity is not None and self.fidelity.parameter in self.space:
            raise InvalidArgumentError(
                f"fidelity.parameter {self.fidelity.parameter!r} is also a parameter of the "
                "space; the budget is set by the algorithm: remove that parameter"
            )
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            raise InvalidArgumentError(
                f"seed must be an integer >= 0 or left out, got {self.seed!r}"
            )
        if not isinstance(self.space, Space):
            raise InvalidArgumentError(f"space must be a Space, got {self.space!r}")
        if self.warm_start is not None and self.warm_start.study == self.name:
            raise InvalidArgumentError(
                f"study {self.name!r} cannot warm start from itself; name another study"
            )
        self._check_metrics()

    def _check_metrics(self) -> None:
        metrics = tuple(self.metrics) or (self.metric,)
        if len(metrics) == 1 and metrics[0] != self.metric:
            metrics = (self.metric,)  # a one-metric study whose metric was replaced
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "constraints", tuple(self.constraints))
        if metrics[0] != self.metric:
            raise InvalidArgumentError(
                f"metric {self.metric.name!r} must be the first of metrics "
                f"{[m.name for m in metrics]}"
            )
        names = [m.name for m in metrics]
        if len(set(names)) != len(names):
            raise InvalidArgumentError(f"metrics {names} name one metric twice; list each once")
        for constraint in self.constraints:
            if not isinstance(constraint, Constraint):
                raise InvalidArgumentError(f"constraints hold Constraint, got {constraint!r}")
            if constraint.metric in names:
                raise InvalidArgumentError(
                    f"constraint '{constraint}' is on an objective; a constraint is on "
                    "another metric the trial reports (e.g. latency_ms <= 20)"
                )
        if len(metrics) > 1 and self.algorithm not in MULTI_OBJECTIVE_ALGORITHMS:
            raise InvalidArgumentError(
                f"algorithm {self.algorithm!r} optimises one metric; a study with "
                f"{len(metrics)} metrics uses one of {', '.join(MULTI_OBJECTIVE_ALGORITHMS)}"
            )
        if len(metrics) > 1 and self.early_stopping.rule != "none":
            raise InvalidArgumentError(
                f"early_stopping rule {self.early_stopping.rule!r} compares one metric; a "
                "study with several metrics has no median curve: set early_stopping: none"
            )
        if self.constraints and self.algorithm not in CONSTRAINED_ALGORITHMS:
            raise InvalidArgumentError(
                f"algorithm {self.algorithm!r} cannot learn constraints; a study with "
                f"constraints uses one of {', '.join(CONSTRAINED_ALGORITHMS)}"
            )

    @property
    def multi_objective(self) -> bool:
        """Whether the study has more than one objective (its best is a Pareto front)."""
        return len(self.metrics) > 1

    def objectives(self, metrics: Mapping[str, float]) -> tuple[float, ...] | None:
        """The objective values in ``metrics``, in ``self.metrics`` order (None if one is
        missing)."""
        try:
            return tuple(float(metrics[m.name]) for m in self.metrics)
        except KeyError:
            return None

    def violations(self, metrics: Mapping[str, float]) -> list[str]:
        """Why a trial that reported ``metrics`` is infeasible (empty: it is feasible
        under the declared constraints).  A constraint metric not reported is a violation:
        the trial cannot show it kept the bound."""
        found = []
        for constraint in self.constraints:
            value = metrics.get(constraint.metric)
            if value is None:
                found.append(f"{constraint.metric} was not reported (constraint {constraint})")
            elif constraint.slack(float(value)) < 0:
                found.append(f"{constraint.metric} = {float(value):g} breaks {constraint}")
        return found

    def with_space(self, space: Space) -> StudyConfig:
        return replace(self, space=space)

    # -- dict / file form -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The study file form; ``from_dict(to_dict(c)) == c``."""
        data: dict[str, Any] = {
            "name": self.name,
            **self._metrics_dict(),
            "parameters": {p.name: parameter_to_dict(p) for p in self.space},
            "budget": {
                "max_trials": self.budget.max_trials,
                "parallel_trials": self.budget.parallel_trials,
                "max_failed_trials": self.budget.max_failed_trials,
                "max_attempts": self.budget.max_attempts,
            },
            "algorithm": self.algorithm,
            "measurement": self.measurement.value,
            "lease_seconds": self.lease_seconds,
            "keras_tuner_lease_seconds": self.keras_tuner_lease_seconds,
            "early_stopping": {
                "rule": self.early_stopping.rule,
                "min_trials": self.early_stopping.min_trials,
                "min_steps": self.early_stopping.min_steps,
            },
        }
        if self.seed is not None:
            data["seed"] = self.seed
        if self.fidelity is not None:
            data["fidelity"] = self.fidelity.to_dict()
        if self.warm_start is not None:
            data["warm_start"] = self.warm_start.to_dict()
        if self.constraints:
            data["constraints"] = [str(c) for c in self.constraints]
        return data

    def _metrics_dict(self) -> dict[str, Any]:
        forms = [{"name": m.name, "goal": m.goal.value} for m in self.metrics]
        return {"metrics": forms} if self.multi_objective else {"metric": forms[0]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StudyConfig:
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(
                "a study file holds a mapping (name, metric, parameters, ...), "
                f"got {type(data).__name__}"
            )
        known = {
            "name",
            "metric",
            "parameters",
            "budget",
            "algorithm",
            "measurement",
            "lease_seconds",
            "keras_tuner_lease_seconds",
            "early_stopping",
            "seed",
            "fidelity",
            "warm_start",
            "metrics",
            "constraints",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgumentError(
                f"unknown key(s) {unknown} in the study file; known keys: {sorted(known)}"
            )
        if "name" not in data:
            raise InvalidArgumentError("the study file needs a name, e.g. name: mnist-mlp")
        metrics = _metrics(data)
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, Mapping):
            raise InvalidArgumentError(
                "parameters must be a mapping of name to spec, e.g. "
                "parameters: {lr: {type: double, min: 0.0001, max: 0.1, scale: log}}"
            )
        space = Space(tuple(parameter_from_dict(str(k), v) for k, v in parameters.items()))
        budget_data = data.get("budget") or {}
        if not isinstance(budget_data, Mapping):
            raise InvalidArgumentError("budget must be a mapping, e.g. budget: {max_trials: 50}")
        budget_known = {"max_trials", "parallel_trials", "max_failed_trials", "max_attempts"}
        extra = sorted(set(budget_data) - budget_known)
        if extra:
            raise InvalidArgumentError(
                f"unknown budget key(s) {extra}; known: {sorted(budget_known)}"
            )
        budget = Budget(**{k: _maybe_int(v, f"budget.{k}") for k, v in budget_data.items()})
        measurement = str(data.get("measurement", "best")).lower()
        if measurement not in ("best", "last"):
            raise InvalidArgumentError(f"measurement must be best or last, got {measurement!r}")
        early = data.get("early_stopping") or {}
        if isinstance(early, str):
            early = {"rule": early}
        if not isinstance(early, Mapping):
            raise InvalidArgumentError("early_stopping must be a rule name or a mapping")
        early_known = {"rule", "min_trials", "min_steps"}
        extra = sorted(set(early) - early_known)
        if extra:
            raise InvalidArgumentError(
                f"unknown early_stopping key(s) {extra}; known: {sorted(early_known)}"
            )
        early_args: dict[str, Any] = {
            str(k): str(v).lower() if k == "rule" else _maybe_int(v, f"early_stopping.{k}")
            for k, v in early.items()
        }
        seed = data.get("seed")
        return cls(
            fidelity=_fidelity(data.get("fidelity")),
            warm_start=_warm_start(data.get("warm_start")),
            name=str(data["name"]),
            metric=metrics[0],
            metrics=metrics,
            constraints=_constraints(data.get("constraints")),
            space=space,
            budget=budget,
            algorithm=str(data.get("algorithm", "bayesian")).lower(),
            measurement=Measurement(measurement),
            lease_seconds=float(
                _number_or_raise(data.get("lease_seconds", 60.0), "lease_seconds")
            ),
            early_stopping=EarlyStopping(**early_args),
            seed=None if seed is None else _maybe_int(seed, "seed"),
            keras_tuner_lease_seconds=float(
                _number_or_raise(
                    data.get("keras_tuner_lease_seconds", DEFAULT_KERAS_TUNER_LEASE_SECONDS),
                    "keras_tuner_lease_seconds",
                )
            ),
        )


def _fidelity(value: Any) -> Fidelity | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            "fidelity must be a mapping, e.g. fidelity: {max_epochs: 27, factor: 3}"
        )
    known = {"max_epochs", "factor", "hyperband_iterations", "min_epochs", "parameter"}
    extra = sorted(set(value) - known)
    if extra:
        raise InvalidArgumentError(f"unknown fidelity key(s) {extra}; known: {sorted(known)}")
    args: dict[str, Any] = {
        str(k): str(v) if k == "parameter" else _maybe_int(v, f"fidelity.{k}")
        for k, v in value.items()
    }
    return Fidelity(**args)


def _warm_start(value: Any) -> WarmStart | None:
    if value is None:
        return None
    if isinstance(value, str):
        return WarmStart(value)
    if not isinstance(value, Mapping) or set(value) != {"study"}:
        raise InvalidArgumentError(
            f"warm_start must be a mapping with one key, study, e.g. warm_start: "
            f"{{study: mnist-v1}}, got {value!r}"
        )
    return WarmStart(str(value["study"]))


def _metrics(data: Mapping[str, Any]) -> tuple[Metric, ...]:
    """The study's objectives: ``metric`` (one) or ``metrics`` (a list), not both."""
    listed = data.get("metrics")
    if listed is None:
        return (_metric(data.get("metric")),)
    if data.get("metric") is not None:
        raise InvalidArgumentError(
            "the study file has both metric and metrics; keep metrics (a list) for several "
            "objectives, or metric for one"
        )
    if not isinstance(listed, Sequence) or isinstance(listed, str) or not listed:
        raise InvalidArgumentError(
            "metrics must be a non-empty list, e.g. metrics: [{name: val_accuracy, goal: "
            "maximize}, {name: latency_ms, goal: minimize}]"
        )
    return tuple(_metric(item) for item in listed)


def _constraints(value: Any) -> tuple[Constraint, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, Mapping)):
        value = [value]
    if not isinstance(value, Sequence):
        raise InvalidArgumentError(
            "constraints must be a list, e.g. constraints: ['latency_ms <= 20', "
            "{metric: model_mb, max: 50}]"
        )
    return tuple(_constraint(item) for item in value)


def _constraint(item: Any) -> Constraint:
    if isinstance(item, str):
        match = CONSTRAINT_TEXT.match(item)
        if match is None:
            raise InvalidArgumentError(
                f"constraint {item!r} is not 'metric <= bound' or 'metric >= bound', "
                "e.g. 'latency_ms <= 20'"
            )
        name, op, bound = match.groups()
        return Constraint(name, op, _number_or_raise(bound, f"constraint {item!r}"))
    if isinstance(item, Mapping) and "metric" in item:
        sides = [k for k in ("max", "min") if k in item]
        extra = sorted(set(item) - {"metric", "max", "min"})
        if len(sides) != 1 or extra:
            raise InvalidArgumentError(
                f"constraint {dict(item)!r} needs a metric and exactly one of max or min, "
                "e.g. {metric: latency_ms, max: 20}"
            )
        side = sides[0]
        bound = _number_or_raise(item[side], f"constraint on {item['metric']!r}")
        return Constraint(str(item["metric"]), "<=" if side == "max" else ">=", bound)
    raise InvalidArgumentError(
        f"constraint {item!r} is not valid; write 'latency_ms <= 20' or "
        "{metric: latency_ms, max: 20}"
    )


def _metric(value: Any) -> Metric:
    if value is None:
        raise InvalidArgumentError(
            "the study file needs a metric, e.g. metric: {name: val_accuracy, goal: maximize}"
        )
    if isinstance(value, str):
        return Metric(value)
    if not isinstance(value, Mapping) or "name" not in value:
        raise InvalidArgumentError(
            f"metric must be a mapping with a name and a goal, got {value!r}"
        )
    goal = str(value.get("goal", "maximize")).lower()
    goal = {"max": "maximize", "min": "minimize"}.get(goal, goal)
    if goal not in ("maximize", "minimize"):
        raise InvalidArgumentError(f"metric goal must be maximize or minimize, got {goal!r}")
    return Metric(str(value["name"]), Goal(goal))


def _number_or_raise(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise InvalidArgumentError(f"{where} must be finite, got {value!r}")
    return number


def _maybe_int(value: Any, where: str) -> Any:
    """An integral number or numeric string as an int; anything else unchanged (checked later)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (str, float)):
        number = _number_or_raise(value, where)
        return int(number) if number == int(number) else value
    return value


_PARAM_KEYS = {
    "double": {"type", "min", "max", "scale", "step", "default", "when"},
    "integer": {"type", "min", "max", "scale", "step", "default", "when"},
    "categorical": {"type", "values", "default", "when"},
    "discrete": {"type", "values", "ordered", "default", "when"},
    "boolean": {"type", "default", "when"},
    "fixed": {"type", "value", "when"},
}
_TYPE_ALIASES = {"float": "double", "int": "integer", "choice": "categorical", "bool": "boolean"}


def parameter_from_dict(name: str, spec: Any) -> Parameter:
    """Build a parameter from its study-file spec, with errors that name the parameter."""
    if not isinstance(spec, Mapping):
        raise InvalidArgumentError(
            f"parameter {name!r}: expected a mapping such as {{type: double, min: 0, max: 1}}, "
            f"got {spec!r}"
        )
    kind = str(spec.get("type", "")).lower()
    kind = _TYPE_ALIASES.get(kind, kind)
    if kind not in _PARAM_KEYS:
        raise InvalidArgumentError(
            f"parameter {name!r}: type must be one of {', '.join(_PARAM_KEYS)}, got "
            f"{spec.get('type')!r}"
        )
    extra = sorted(set(spec) - _PARAM_KEYS[kind])
    if extra:
        raise InvalidArgumentError(
            f"parameter {name!r}: unknown key(s) {extra} for type {kind}; "
            f"allowed: {sorted(_PARAM_KEYS[kind])}"
        )
    conditions = _conditions(name, spec.get("when"))
    where = f"parameter {name!r}"
    default = spec.get("default")
    for key in ("min", "max"):
        if kind in ("double", "integer") and key not in spec:
            raise InvalidArgumentError(f"{where}: {kind} needs {key}")
    if kind == "double":
        return DoubleParam(
            name,
            min=_number_or_raise(spec["min"], f"{where} min"),
            max=_number_or_raise(spec["max"], f"{where} max"),
            scale=Scale.parse(spec.get("scale"), where=where),
            step=None
            if spec.get("step") is None
            else _number_or_raise(spec["step"], f"{where} step"),
            conditions=conditions,
            default=default,
        )
    if kind == "integer":
        scale = Scale.parse(spec.get("scale"), where=where)
        return IntegerParam(
            name,
            min=spec["min"],
            max=spec["max"],
            scale=scale,
            step=spec.get("step"),
            conditions=conditions,
            default=default,
        )
    if kind in ("categorical", "discrete"):
        values = spec.get("values")
        if values is None or isinstance(values, (str, Mapping)) or not hasattr(values, "__iter__"):
            raise InvalidArgumentError(
                f"{where}: {kind} needs a list of values, e.g. values: [a, b]"
            )
        if kind == "categorical":
            return CategoricalParam(
                name, values=tuple(values), conditions=conditions, default=default
            )
        ordered = spec.get("ordered", True)
        if not isinstance(ordered, bool):
            raise InvalidArgumentError(f"{where}: ordered must be true or false, got {ordered!r}")
        return DiscreteParam(
            name, values=tuple(values), ordered=ordered, conditions=conditions, default=default
        )
    if kind == "boolean":
        return BooleanParam(name, conditions=conditions, default=default)
    if "value" not in spec:
        raise InvalidArgumentError(f"{where}: fixed needs a value, e.g. value: 32")
    return FixedParam(name, value=spec["value"], conditions=conditions)


def parameter_to_dict(param: Parameter) -> dict[str, Any]:
    """The study-file spec of a parameter; ``parameter_from_dict(name, spec) == param``."""
    data: dict[str, Any] = {"type": param.kind}
    if isinstance(param, (DoubleParam, IntegerParam)):
        data["min"], data["max"] = param.min, param.max
        if param.scale is not Scale.LINEAR:
            data["scale"] = param.scale.value
        if param.step is not None:
            data["step"] = param.step
    elif isinstance(param, (CategoricalParam, DiscreteParam)):
        data["values"] = list(param.values)
        if isinstance(param, DiscreteParam) and not param.ordered:
            data["ordered"] = False
    elif isinstance(param, FixedParam):
        data["value"] = param.value
    if param.default is not None:
        data["default"] = param.default
    if param.conditions:
        data["when"] = {c.parent: list(c.values) for c in param.conditions}
    return data


def _conditions(name: str, when: Any) -> tuple[Condition, ...]:
    if when is None:
        return ()
    if not isinstance(when, Mapping) or not when:
        raise InvalidArgumentError(
            f"parameter {name!r}: when must map a parent to its values, "
            "e.g. when: {optimizer: [sgd]}"
        )
    conditions = []
    for parent, values in when.items():
        if isinstance(values, (str, int, float, bool)):
            values = [values]
        if not isinstance(values, (list, tuple)) or not values:
            raise InvalidArgumentError(
                f"parameter {name!r}: the condition on {parent!r} needs a list of parent values"
            )
        conditions.append(Condition(str(parent), tuple(values)))
    return tuple(conditions)


# -- files ------------------------------------------------------------------------------------
def load_study(path: str | Path) -> StudyConfig:
    """Read a study file (``.yaml``/``.yml`` or ``.json``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgumentError(f"study file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot read study file {str(path)!r}: {exc.strerror}"
        ) from None
    return loads_study(
        text, fmt="json" if path.suffix.lower() == ".json" else "yaml", source=str(path)
    )


def loads_study(text: str, *, fmt: str = "yaml", source: str = "<string>") -> StudyConfig:
    """Parse a study file's text (``fmt`` is ``yaml`` or ``json``); errors name ``source``."""
    if fmt not in ("yaml", "json"):
        raise InvalidArgumentError(f"unknown study file format {fmt!r}; use yaml or json")
    try:
        data = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_StudyLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidArgumentError(f"{source} is not valid {fmt.upper()}: {exc}") from None
    try:
        return StudyConfig.from_dict(data)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"{source}: {exc}") from None


def dumps_study(config: StudyConfig, *, fmt: str = "yaml") -> str:
    """The study file text of ``config``; ``loads_study(dumps_study(c, fmt=f), fmt=f) == c``."""
    data = config.to_dict()
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "yaml":
        raise InvalidArgumentError(f"unknown study file format {fmt!r}; use yaml or json")
    text = yaml.dump(
        data, Dumper=_StudyDumper, sort_keys=False, default_flow_style=None, allow_unicode=True
    )
    if not text.isascii() and yaml.safe_load(text) != data:
        # PyYAML's emitter folds Unicode line breaks (NEL, LS, PS) in plain and single-quoted
        # scalars; escaping everything outside ASCII keeps such values intact.
        text = yaml.dump(data, Dumper=_StudyDumper, sort_keys=False, default_flow_style=None)
    return text


def dump_study(config: StudyConfig, path: str | Path) -> None:
    """Write ``config`` as YAML, or as JSON when ``path`` ends in ``.json``."""
    path = Path(path)
    path.write_text(
        dumps_study(config, fmt="json" if path.suffix.lower() == ".json" else "yaml"),
        encoding="utf-8",
    )
