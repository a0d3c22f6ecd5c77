"""What a search algorithm is: a small interface, its traits, and the name -> algorithm table.

An algorithm is an object (compare Optuna's ``BaseSampler`` and OSS Vizier's
``policy_factory``): it suggests parameter sets from a study's history, purely
(deterministic for a given random generator, no storage, threads or network), and it
declares the traits the oracle schedules by, so the oracle never asks which algorithm it
runs:

- ``model_based``: its suggestions depend on the results so far (it fits a model), so a
  new result makes the suggestions kept ready stale; the oracle keeps few ready, refreshes
  them after each result, and computes them in the chief's fit process.  A cheap
  algorithm (random search) keeps many ready and computes them in the suggester thread.
- ``uses_history``: ``suggest`` reads the completed observations.  An algorithm that does
  not (random search) is given only its kept state, not a copy of the whole history on
  every call.
- kept state (:meth:`Algorithm.initial_state`, :meth:`Algorithm.observe`): what the
  algorithm folds in from each completed trial, in completion order.  The oracle keeps it
  next to the history and rebuilds it from the store after a restart, so it must be
  derived from the completed trials alone.

Multi-fidelity (Hyperband, ASHA) and multi-objective algorithms plug in here: a class with
a ``name``, its traits and ``suggest``, and one line in :data:`ALGORITHMS`.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import Params, StudyConfig


@dataclass(frozen=True, slots=True)
class Observation:
    """A finished trial as the search sees it: its parameters and objective value (the
    first objective's in a multi-objective study; NaN when an infeasible trial has none),
    its metrics and feasibility, and in a multi-fidelity study the epochs it was trained
    to (``budget``; None otherwise) and the epochs it started from (``initial_budget``:
    > 0 for a promoted trial)."""

    params: Params
    value: float
    budget: int | None = None
    initial_budget: int = 0
    #: Every metric the trial reported (the objectives of a multi-objective study, the
    #: constraint metrics).
    metrics: Mapping[str, float] = field(default_factory=dict)
    #: False for a trial that broke a constraint (its ``value`` may then be NaN).
    feasible: bool = True


class Algorithm(ABC):
    """A search algorithm (see the module docstring).  Instances hold no study state:
    one instance serves every study that uses it."""

    #: The name a study file uses (``algorithm: bayesian``).
    name: ClassVar[str]
    #: Suggestions depend on the results so far (see the module docstring).
    model_based: ClassVar[bool] = True
    #: ``suggest`` reads the completed observations (else only its kept state).
    uses_history: ClassVar[bool] = True

    def initial_state(self) -> Any:
        """The kept state of a study with no completed trial (None: keeps nothing)."""
        return None

    def observe(self, state: Any, observation: Observation) -> None:  # noqa: B027
        """Fold one completed trial into ``state`` (in place), in completion order; by
        default the algorithm keeps nothing."""

    def new_schedule(self, config: StudyConfig) -> Any:
        """A multi-fidelity algorithm's schedule of slots for a new study (see
        :mod:`hpsearch.search.hyperband`): which trial a free worker gets, a new
        configuration or a promotion, and its budget.  None: every trial is a new
        configuration, trained as the trial script decides."""
        return None

    def state_of(self, completed: Sequence[Observation]) -> Any:
        """The kept state after ``completed``, as the oracle rebuilds it on restart."""
        state = self.initial_state()
        for observation in completed:
            self.observe(state, observation)
        return state

    @abstractmethod
    def suggest(
        self,
        config: StudyConfig,
        completed: Sequence[Observation],
        pending: Sequence[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> list[Params]:
        """``n`` new parameter sets (fewer only when the space is exhausted).

        ``completed``: finished trials (empty when ``uses_history`` is False); ``pending``:
        trials running now or kept ready, which must not be repeated; ``state``: the kept
        state after ``completed``.  Must not change ``state`` and must be deterministic
        for a given ``rng`` state."""


#: Every algorithm by name: (module, class), imported on first use so that an optional
#: dependency (Optuna) is only needed by the studies that choose it.
ALGORITHMS: dict[str, tuple[str, str]] = {
    "bayesian": ("hpsearch.search.bayesian", "GaussianProcessSearch"),
    "random": ("hpsearch.search.random", "RandomSearch"),
    "grid": ("hpsearch.search.grid", "GridSearch"),
    "tpe": ("hpsearch.search.optuna_samplers", "OptunaTPE"),
    "cmaes": ("hpsearch.search.optuna_samplers", "OptunaCMAES"),
    "nsga2": ("hpsearch.search.optuna_samplers", "OptunaNSGA2"),
    "hyperband": ("hpsearch.search.hyperband", "HyperbandSearch"),
    "asha": ("hpsearch.search.hyperband", "AshaSearch"),
}

_loaded: dict[str, Algorithm] = {}
_lock = threading.Lock()


def get_algorithm(name: str) -> Algorithm:
    """The algorithm called ``name`` (InvalidArgumentError for an unknown name)."""
    found = _loaded.get(name)
    if found is not None:
        return found
    where = ALGORITHMS.get(name)
    if where is None:
        raise InvalidArgumentError(
            f"algorithm {name!r} is unknown; use one of {', '.join(ALGORITHMS)}"
        )
    with _lock:
        found = _loaded.get(name)
        if found is None:
            module, cls = where
            found = _loaded[name] = getattr(importlib.import_module(module), cls)()
    return found


__all__ = ["ALGORITHMS", "Algorithm", "Observation", "get_algorithm"]
