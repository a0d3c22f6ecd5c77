"""Whether a running trial should stop: the study was stopped, the trial reached its budget
(a multi-fidelity study), or the study's early-stopping rule says so.

The rule itself is pure (:mod:`hpsearch.early_stopping`); this room feeds it: the
running attempt's curve from the mirror's measurement cache, and the completed trials'
curves, loaded from SQL once per study and then kept up to date as trials complete
(:meth:`hpsearch.oracle.mirror.StudyMirror.record_end`).
"""

from __future__ import annotations

from hpsearch.early_stopping import median_rule
from hpsearch.oracle.mirror import StudyMirror
from hpsearch.records import StudyState, TrialState
from hpsearch.space import Rung
from hpsearch.store.api import Store


class Stopping:
    """The stop decisions of the oracle (one per oracle)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def study_stopped(self, mirror: StudyMirror) -> tuple[bool, str]:
        """Stop every trial of a stopped study."""
        if mirror.state is StudyState.STOPPED:
            return True, "the study was stopped"
        return False, ""

    def after_report(
        self, mirror: StudyMirror, number: int, attempt: int, step: int
    ) -> tuple[bool, str]:
        """Whether ``attempt`` of trial ``number`` should stop after its report at ``step``."""
        stop, reason = self.study_stopped(mirror)
        if stop:
            return stop, reason
        trial = mirror.trials.get(number)
        rung = None if trial is None else Rung.from_tags(trial.tags)
        if rung is not None and step > rung.epochs:
            # A report at the budget itself is the trial's last: it must still finish
            # (and report COMPLETED); one past it means the client ignores the budget.
            return True, f"the trial went past its budget of {rung.epochs} epochs"
        return self._median_rule(mirror, number, attempt, step)

    def _median_rule(
        self, mirror: StudyMirror, number: int, attempt: int, step: int
    ) -> tuple[bool, str]:
        """The study's early-stopping rule (:mod:`hpsearch.early_stopping`) for one report."""
        rule = mirror.config.early_stopping
        metric = mirror.config.metric
        if rule.rule != "median" or step < rule.min_steps:
            return False, ""
        with mirror.cache_lock:
            cached = mirror.measured.get(number)
            mine = (
                [
                    (s, r.metrics[metric.name])
                    for s, r in cached[1].items()
                    if s <= step and metric.name in r.metrics
                ]
                if cached is not None and cached[0] == attempt
                else []
            )
        decision = median_rule(
            mine,
            list(self._curves(mirror).values()),
            metric.goal,
            min_trials=rule.min_trials,
            min_steps=rule.min_steps,
        )
        return decision.stop, decision.reason

    def _curves(self, mirror: StudyMirror) -> dict[int, list[tuple[int, float]]]:
        """The completed trials' objective by step (loaded from SQL once, then kept)."""
        if mirror.curves is None:
            name = mirror.config.metric.name
            completed = {
                t.number: t.attempt
                for t in self.store.list_trials(mirror.name, states=[TrialState.COMPLETED])
            }
            curves: dict[int, list[tuple[int, float]]] = {}
            for m in self.store.list_measurements(mirror.name):
                if completed.get(m.trial_number) == m.attempt and name in m.metrics:
                    curves.setdefault(m.trial_number, []).append((m.step, m.metrics[name]))
            with mirror.cache_lock:
                if mirror.curves is None:
                    mirror.curves = curves
        return mirror.curves


__all__ = ["Stopping"]
