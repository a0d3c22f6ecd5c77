"""Multi-fidelity search: Hyperband (Keras Tuner's brackets) and asynchronous successive
halving (ASHA), with new configurations proposed by the GP (BOHB style).

A multi-fidelity study gives each trial a budget of epochs (:class:`~hpsearch.space.Rung`,
kept in the trial's tags): most trials train a few epochs, and the best of each rung are
*promoted*: a new trial with the same parameters trains ``factor`` times longer,
continuing from its parent's checkpoint (Keras Tuner's ``tuner/trial_id``).  Two parts:

- a **schedule** (:class:`HyperbandSchedule`, :class:`AshaSchedule`): which slot comes next
  -- a new configuration in some bracket, the promotion of a finished trial, wait, or
  done.  It is decided when a worker asks (the oracle's scheduler calls
  :meth:`Schedule.next` under the study's lock), from the trials created so far and the
  results in; it is cheap, and it is rebuilt after a restart by replaying the trials'
  tags in creation order.  :class:`HyperbandSchedule` is Keras Tuner 1.4's
  ``HyperbandOracle.populate_space`` (its brackets, sizes, epochs, promotions and
  ``tuner/*`` values, the ``tuner/bracket`` quirk included: it reports the bracket
  counter, not always the bracket being filled), so stock ``keras_tuner.Hyperband``
  workers see what Keras Tuner's own chief would send them.  :class:`AshaSchedule` never
  waits for a rung to fill: a finished trial in the top ``1/factor`` of its rung is
  promoted as soon as a worker is free, else a new configuration starts at the bottom.
- the **proposals** of new configurations (:class:`MultiFidelitySearch.suggest`): random
  until some budget has ``initial_design_size`` results of configurations that began
  there, then the GP (:mod:`hpsearch.search.bayesian`) fitted on every result at the
  largest such budget, with the trials in flight as its pending points (BOHB's choice of
  budget, counting only unselected configurations; the GP replaces BOHB's TPE).  The
  oracle keeps a few of them ready, as for ``bayesian``.

Both are pure: no storage, threads or network.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import numpy as np

from hpsearch.search.algorithm import Algorithm, Observation
from hpsearch.search.bayesian import initial_design_size, suggest_bayesian
from hpsearch.search.encoding import params_key
from hpsearch.space import Fidelity, Goal, Params, Rung, StudyConfig

MAX_RANDOM_DRAWS = 100

Kind = Literal["new", "promote", "wait", "done"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What a free worker gets: a new configuration or a promotion at ``rung``, or nothing
    now (``wait``) or ever (``done``).  ``new_bracket``: Hyperband starts a bracket."""

    kind: Kind
    rung: Rung | None = None
    parent_params: Params | None = None
    new_bracket: bool = False


@dataclass(slots=True)
class _Entry:
    number: int  # the trial number; negative while its insert is in flight
    parent: int | None
    params: Params


class Schedule:
    """The slots of a multi-fidelity study.  Not thread-safe: the oracle calls it under the
    study's lock."""

    def __init__(self, fidelity: Fidelity, goal: Goal) -> None:
        self.fidelity = fidelity
        self.goal = goal
        self.values: dict[int, float] = {}  # number -> value of the COMPLETED trials
        self.params: dict[int, Params] = {}  # number -> params, of every trial placed
        self._next_token = -1

    # -- what the oracle calls -----------------------------------------------------------
    def next(self, *, ongoing: bool) -> Decision:
        """The next slot; ``ongoing``: some trial runs or waits for a retry."""
        raise NotImplementedError

    def reserve(self, decision: Decision, params: Params) -> int:
        """Place ``decision`` before its trial exists; returns a token for :meth:`settle`."""
        token = self._next_token
        self._next_token -= 1
        assert decision.rung is not None
        self._place(decision, token, params)
        return token

    def settle(self, token: int, number: int | None) -> None:
        """The trial reserved as ``token`` was created as ``number`` (None: it was not)."""
        raise NotImplementedError

    def replay(self, rung: Rung, number: int, params: Params) -> None:
        """Fold in an existing trial (in creation order), as after a restart."""
        raise NotImplementedError

    def record(self, number: int, value: float) -> None:
        """Trial ``number`` COMPLETED with ``value``."""
        self.values[number] = value

    # -- shared ---------------------------------------------------------------------------
    def epochs(self, rung_index: int, top: int) -> int:
        """Keras Tuner's ``ceil(max_epochs / factor ** (top - rung_index))``."""
        return math.ceil(self.fidelity.max_epochs / self.fidelity.factor ** (top - rung_index))

    def _best(self, numbers: Iterable[int]) -> int:
        """The best finished trial of ``numbers`` (the first of equals, as a stable sort)."""
        ranked = sorted(numbers, key=lambda n: self.values[n], reverse=self.goal is Goal.MAXIMIZE)
        return ranked[0]

    def _place(self, decision: Decision, number: int, params: Params) -> None:
        raise NotImplementedError


@dataclass(slots=True)
class _Bracket:
    instance: int  # 0, 1, 2... in the order brackets were started
    num: int  # Keras Tuner's bracket_num: bracket ``num`` has ``num + 1`` rounds
    iteration: int
    rounds: list[list[_Entry]] = field(default_factory=list)


class HyperbandSchedule(Schedule):
    """Keras Tuner 1.4's ``HyperbandOracle`` brackets (see the module docstring)."""

    def __init__(self, fidelity: Fidelity, goal: Goal) -> None:
        super().__init__(fidelity, goal)
        self.current_bracket = self._num_brackets() - 1
        self.current_iteration = 0
        self.brackets: list[_Bracket] = []
        self._start_bracket()

    def next(self, *, ongoing: bool) -> Decision:
        for bracket in self._incomplete():
            rounds = bracket.rounds
            if len(rounds[0]) < self._size(bracket.num, 0):
                return Decision("new", self._rung(bracket, 0, None))
            for round_num in range(1, len(rounds)):
                already = {e.parent for e in rounds[round_num]}
                candidates = [
                    e.number
                    for e in rounds[round_num - 1]
                    if e.number not in already and e.number in self.values
                ]
                size = self._size(bracket.num, round_num)
                past_size = self._size(bracket.num, round_num - 1)
                if len(candidates) > past_size - size:
                    best = self._best(candidates)
                    return Decision(
                        "promote", self._rung(bracket, round_num, best), self.params[best]
                    )
        if self.current_bracket == 0 and self.current_iteration + 1 == self._iterations():
            return Decision("wait" if ongoing else "done")
        num, iteration = self.current_bracket - 1, self.current_iteration
        if num < 0:
            num, iteration = self._num_brackets() - 1, iteration + 1
        bracket = _Bracket(len(self.brackets), num, iteration)
        return Decision("new", replace(self._rung(bracket, 0, None), bracket=num), None, True)

    def settle(self, token: int, number: int | None) -> None:
        for bracket in self.brackets:
            for round_entries in bracket.rounds:
                for entry in round_entries:
                    if entry.number == token:
                        if number is None:
                            round_entries.remove(entry)
                        else:
                            entry.number = number
                            self.params[number] = entry.params
                        return

    def replay(self, rung: Rung, number: int, params: Params) -> None:
        decision = Decision(
            "promote" if rung.parent is not None else "new",
            rung,
            new_bracket=rung.instance == len(self.brackets),
        )
        self._place(decision, number, params)
        self.params[number] = params

    def _place(self, decision: Decision, number: int, params: Params) -> None:
        rung = decision.rung
        assert rung is not None
        if decision.new_bracket or rung.instance >= len(self.brackets):
            self.current_bracket, self.current_iteration = rung.bracket_num, rung.iteration
            self._start_bracket()
        bracket = self.brackets[rung.instance]
        bracket.rounds[rung.round].append(_Entry(number, rung.parent, params))

    # -- Keras Tuner's arithmetic -----------------------------------------------------------
    def _rung(self, bracket: _Bracket, round_num: int, parent: int | None) -> Rung:
        return Rung(
            epochs=self._epochs(bracket.num, round_num),
            initial_epoch=self._epochs(bracket.num, round_num - 1) if round_num else 0,
            bracket=self.current_bracket,  # Keras Tuner reports its counter (see above)
            round=round_num,
            parent=parent,
            instance=bracket.instance,
            bracket_num=bracket.num,
            iteration=bracket.iteration,
        )

    def _start_bracket(self) -> None:
        num = self.current_bracket
        rounds: list[list[_Entry]] = [[] for _ in range(num + 1)]
        self.brackets.append(_Bracket(len(self.brackets), num, self.current_iteration, rounds))

    def _incomplete(self) -> list[_Bracket]:
        return [
            b for b in self.brackets if len(b.rounds[-1]) != self._size(b.num, len(b.rounds) - 1)
        ]

    def _size(self, bracket_num: int, round_num: int) -> int:
        end_size = math.ceil(1 + math.log(self.fidelity.max_epochs, self.fidelity.factor))
        return math.ceil(
            end_size / (bracket_num + 1) * self.fidelity.factor ** (bracket_num - round_num)
        )

    def _epochs(self, bracket_num: int, round_num: int) -> int:
        return self.epochs(round_num, bracket_num)

    def _num_brackets(self) -> int:
        epochs: float = self.fidelity.max_epochs
        brackets = 0
        while epochs >= self.fidelity.min_epochs:
            epochs = epochs / self.fidelity.factor
            brackets += 1
        return brackets

    def _iterations(self) -> int:
        return self.fidelity.hyperband_iterations


class AshaSchedule(Schedule):
    """Asynchronous successive halving: rung ``r`` trains ``min_epochs * factor**r`` epochs
    (the last rung ``max_epochs``); a free worker promotes the best not yet promoted trial of
    the highest rung whose top ``1/factor`` has one, else starts a new configuration."""

    def __init__(self, fidelity: Fidelity, goal: Goal) -> None:
        super().__init__(fidelity, goal)
        budgets = []
        epochs = fidelity.min_epochs
        while epochs < fidelity.max_epochs:
            budgets.append(epochs)
            epochs *= fidelity.factor
        budgets.append(fidelity.max_epochs)
        self.budgets = budgets
        self.rungs: list[list[_Entry]] = [[] for _ in budgets]
        self.promoted: set[int] = set()  # parents promoted (or being promoted)

    def next(self, *, ongoing: bool) -> Decision:
        for r in range(len(self.rungs) - 2, -1, -1):
            finished = [e.number for e in self.rungs[r] if e.number in self.values]
            keep = len(finished) // self.fidelity.factor
            if keep == 0:
                continue
            ranked = sorted(
                finished, key=lambda n: self.values[n], reverse=self.goal is Goal.MAXIMIZE
            )
            for number in ranked[:keep]:
                if number not in self.promoted:
                    return Decision("promote", self._rung(r + 1, number), self.params[number])
        return Decision("new", self._rung(0, None))

    def settle(self, token: int, number: int | None) -> None:
        for entries in self.rungs:
            for entry in entries:
                if entry.number == token:
                    if number is None:
                        entries.remove(entry)
                        if entry.parent is not None:
                            self.promoted.discard(entry.parent)
                    else:
                        entry.number = number
                        self.params[number] = entry.params
                    return

    def replay(self, rung: Rung, number: int, params: Params) -> None:
        self._place(Decision("new", rung), number, params)
        self.params[number] = params

    def _place(self, decision: Decision, number: int, params: Params) -> None:
        rung = decision.rung
        assert rung is not None
        self.rungs[min(rung.round, len(self.rungs) - 1)].append(
            _Entry(number, rung.parent, params)
        )
        if rung.parent is not None:
            self.promoted.add(rung.parent)

    def _rung(self, r: int, parent: int | None) -> Rung:
        return Rung(
            epochs=self.budgets[r],
            initial_epoch=self.budgets[r - 1] if r else 0,
            bracket=0,
            round=r,
            parent=parent,
        )


class MultiFidelitySearch(Algorithm):
    """Proposals of new configurations for a multi-fidelity study (module docstring)."""

    schedule_class: ClassVar[type[Schedule]]

    def new_schedule(self, config: StudyConfig) -> Schedule:  # see Algorithm.new_schedule
        assert config.fidelity is not None  # StudyConfig sets it for these algorithms
        return self.schedule_class(config.fidelity, config.metric.goal)

    def suggest(
        self,
        config: StudyConfig,
        completed: Sequence[Observation],
        pending: Sequence[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> list[Params]:
        tried = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
        by_budget: dict[int, list[Observation]] = {}
        started: dict[int, int] = {}  # budget -> results of configurations begun there
        for observation in completed:
            if observation.budget is not None:
                by_budget.setdefault(observation.budget, []).append(observation)
                if observation.initial_budget == 0:
                    started[observation.budget] = started.get(observation.budget, 0) + 1
        # A budget qualifies once enough configurations *began* there: the results of
        # promoted trials alone are the winners of a lower rung, a sample clustered around
        # the incumbent, on which the GP has no picture of the rest of the space (ASHA's
        # upper rungs only ever hold promotions: it models its bottom rung).
        enough = initial_design_size(config.space)
        ready = [b for b, count in started.items() if count >= enough]
        out: list[Params] = []
        if ready:
            level = by_budget[max(ready)]
            for params in suggest_bayesian(config, level, pending, n, rng):
                key = params_key(params)
                if key not in tried:
                    tried.add(key)
                    out.append(params)
        while len(out) < n:
            for _ in range(MAX_RANDOM_DRAWS):
                params = config.space.sample(rng)
                key = params_key(params)
                if key not in tried:
                    tried.add(key)
                    out.append(params)
                    break
            else:
                break  # a small finite space is (nearly) exhausted
        return out


class HyperbandSearch(MultiFidelitySearch):
    """``hyperband``: Keras Tuner's Hyperband brackets, GP proposals."""

    name = "hyperband"
    schedule_class = HyperbandSchedule


class AshaSearch(MultiFidelitySearch):
    """``asha``: asynchronous successive halving, GP proposals."""

    name = "asha"
    schedule_class = AshaSchedule


__all__ = [
    "AshaSchedule",
    "AshaSearch",
    "Decision",
    "HyperbandSchedule",
    "HyperbandSearch",
    "MultiFidelitySearch",
    "Schedule",
]
