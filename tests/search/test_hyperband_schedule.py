"""The multi-fidelity schedules: Hyperband equals Keras Tuner's own HyperbandOracle, slot for
slot, and asynchronous successive halving promotes the top of each rung without waiting.

Keras Tuner's oracle and hpsearch's schedule are driven side by side in this process: the
k-th trial each creates gets the same score, so that the two must agree on every epoch
count, bracket, round and promotion (which earlier trial continues), with trials finishing
one at a time or several in flight, in any order."""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path

import pytest

from hpsearch.search.hyperband import AshaSchedule, Decision, HyperbandSchedule, Schedule
from hpsearch.space import Fidelity, Goal, Rung

needs_keras_tuner = pytest.mark.skipif(
    importlib.util.find_spec("keras_tuner") is None,
    reason="the comparison needs keras-tuner (pip install 'hpsearch[tf]')",
)


def _score(index: int) -> float:
    """A score that is not monotonic in the creation order (so promotions are not trivial)."""
    return math.sin(1.7 * index) + 0.01 * index


class _Ours:
    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.running: set[int] = set()
        self.created = 0

    def create(self) -> tuple[str, tuple[int, int, int, int, int | None]] | str:
        decision: Decision = self.schedule.next(ongoing=bool(self.running))
        if decision.kind in ("wait", "done"):
            return decision.kind
        number = self.created
        token = self.schedule.reserve(decision, decision.parent_params or {"x": number})
        self.schedule.settle(token, number)
        self.created += 1
        self.running.add(number)
        rung = decision.rung
        assert rung is not None
        return str(number), (
            rung.epochs,
            rung.initial_epoch,
            rung.bracket,
            rung.round,
            rung.parent,
        )

    def finish(self, number: int) -> None:
        self.running.discard(number)
        self.schedule.record(number, _score(number))


class _KerasTuner:
    def __init__(self, fidelity: Fidelity, directory: Path) -> None:
        import keras_tuner as kt

        hp = kt.HyperParameters()
        hp.Float("x", 0.0, 1.0)
        self.oracle = kt.oracles.HyperbandOracle(
            objective=kt.Objective("score", "max"),
            max_epochs=fidelity.max_epochs,
            factor=fidelity.factor,
            hyperband_iterations=fidelity.hyperband_iterations,
            hyperparameters=hp,
            seed=0,
        )
        self.oracle._set_project_dir(str(directory), "kt")
        self.index: dict[str, int] = {}  # Keras Tuner's trial id -> creation index
        self.trials: dict[int, object] = {}

    def create(self) -> tuple[str, tuple[int, int, int, int, int | None]] | str:
        trial = self.oracle.create_trial(f"tuner{len(self.index)}")
        if trial.status == "STOPPED":
            return "done"
        if trial.status == "IDLE":
            return "wait"
        values = trial.hyperparameters.values
        number = len(self.index)
        self.index[trial.trial_id] = number
        self.trials[number] = trial
        parent = values.get("tuner/trial_id")
        return str(number), (
            values["tuner/epochs"],
            values["tuner/initial_epoch"],
            values["tuner/bracket"],
            values["tuner/round"],
            None if parent is None else self.index[parent],
        )

    def finish(self, number: int) -> None:
        trial = self.trials[number]
        self.oracle.update_trial(trial.trial_id, {"score": _score(number)})  # type: ignore[attr-defined]
        trial.status = "COMPLETED"  # type: ignore[attr-defined]
        self.oracle.end_trial(trial)


def _drive(sides: list, in_flight: int, seed: int, steps: int = 5000) -> list:  # type: ignore[type-arg]
    """Run every side through the same sequence: create while fewer than ``in_flight`` run,
    else finish a running trial chosen by ``seed``; returns the first side's slots."""
    rng = random.Random(seed)
    running: list[int] = []
    slots = []
    for _ in range(steps):
        if len(running) < in_flight:
            answers = [side.create() for side in sides]
            assert all(a == answers[0] for a in answers), answers
            if answers[0] == "done":
                break
            if answers[0] != "wait":
                slots.append(answers[0])
                running.append(int(answers[0][0]))
                continue
        if not running:
            break
        number = running.pop(rng.randrange(len(running)))
        for side in sides:
            side.finish(number)
    return slots


@needs_keras_tuner
@pytest.mark.tf
@pytest.mark.parametrize(
    ("max_epochs", "factor", "iterations", "in_flight"),
    [(27, 3, 1, 1), (27, 3, 2, 4), (10, 2, 1, 3), (81, 3, 1, 8), (9, 4, 2, 2)],
)
def test_hyperband_equals_keras_tuners_own_oracle(
    tmp_path: Path, max_epochs: int, factor: int, iterations: int, in_flight: int
) -> None:
    fidelity = Fidelity(max_epochs=max_epochs, factor=factor, hyperband_iterations=iterations)
    ours = _Ours(HyperbandSchedule(fidelity, Goal.MAXIMIZE))
    theirs = _KerasTuner(fidelity, tmp_path)
    slots = _drive([ours, theirs], in_flight, seed=max_epochs + in_flight)
    assert slots, "nothing was scheduled"
    assert ours.schedule.next(ongoing=False).kind == "done"  # both ran to the end
    promoted = [s for _, s in slots if s[4] is not None]
    assert promoted and all(s[1] > 0 for s in promoted)  # promotions continue from a parent


def test_hyperband_rebuilt_from_its_trials_decides_as_before() -> None:
    """After a restart the schedule is replayed from the trials' tags in creation order."""
    fidelity = Fidelity(max_epochs=27, factor=3, hyperband_iterations=2)
    live = _Ours(HyperbandSchedule(fidelity, Goal.MINIMIZE))
    rng = random.Random(7)
    rungs: list[tuple[int, Rung]] = []
    for _ in range(60):
        decision = live.schedule.next(ongoing=bool(live.running))
        if decision.kind in ("wait", "done") or (live.running and rng.random() < 0.4):
            if not live.running:
                break
            live.finish(rng.choice(sorted(live.running)))
            continue
        assert decision.rung is not None
        number = live.created
        live.schedule.settle(live.schedule.reserve(decision, {"x": number}), number)
        live.created += 1
        live.running.add(number)
        rungs.append((number, decision.rung))
    rebuilt = HyperbandSchedule(fidelity, Goal.MINIMIZE)
    for number, rung in rungs:
        back = Rung.from_tags({"fidelity": rung.to_tag()})
        assert back == rung
        rebuilt.replay(back, number, {"x": number})
    for number, value in live.schedule.values.items():
        rebuilt.record(number, value)
    for ongoing in (True, False):
        assert rebuilt.next(ongoing=ongoing) == live.schedule.next(ongoing=ongoing)


def test_asha_promotes_the_top_of_a_rung_as_soon_as_it_exists() -> None:
    schedule = AshaSchedule(Fidelity(max_epochs=9, factor=3, min_epochs=1), Goal.MAXIMIZE)
    assert schedule.budgets == [1, 3, 9]
    first = schedule.next(ongoing=False)
    assert first.kind == "new" and first.rung is not None
    assert (first.rung.epochs, first.rung.initial_epoch, first.rung.parent) == (1, 0, None)
    for number, value in enumerate([0.1, 0.9, 0.5, 0.2, 0.95, 0.3]):
        schedule.replay(Rung(epochs=1), number, {"x": number})
        schedule.record(number, value)
    up = schedule.next(ongoing=True)  # the top third of six results: trials 4 and 1
    assert up.kind == "promote" and up.rung is not None and up.parent_params == {"x": 4}
    assert (up.rung.parent, up.rung.epochs, up.rung.initial_epoch) == (4, 3, 1)
    schedule.settle(schedule.reserve(up, {"x": 4}), None)  # its insert failed: again
    again = schedule.next(ongoing=True)
    assert again.rung is not None and again.rung.parent == 4
    schedule.settle(schedule.reserve(again, {"x": 4}), 10)
    second = schedule.next(ongoing=True)
    assert second.rung is not None and second.rung.parent == 1
    schedule.settle(schedule.reserve(second, {"x": 1}), 11)
    assert schedule.next(ongoing=True).kind == "new"  # no waiting for rung 1 to fill
    schedule.record(10, 0.5)
    schedule.record(11, 0.7)
    assert schedule.next(ongoing=True).kind == "new"  # two results at rung 1: none on top yet
    schedule.replay(Rung(epochs=3, initial_epoch=1, round=1, parent=0), 12, {"x": 0})
    schedule.record(12, 0.1)
    top = schedule.next(ongoing=True)
    assert top.kind == "promote" and top.rung is not None
    assert (top.rung.parent, top.rung.epochs, top.rung.initial_epoch) == (11, 9, 3)
