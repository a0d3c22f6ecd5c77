"""What the oracle answers: the result of an ``ask`` and of a heartbeat or measurement."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from hpsearch.records import Trial


class AskStatus(str, Enum):
    """What :meth:`hpsearch.oracle.Oracle.ask` answers."""

    TRIALS = "TRIALS"  # the trials to run
    WAIT = "WAIT"  # nothing to run yet: ask again
    DONE = "DONE"  # the study is finished: the worker should exit


@dataclass(frozen=True, slots=True)
class AskResult:
    status: AskStatus
    trials: list[Trial] = field(default_factory=list)
    lease_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class LeaseAnswer:
    """The answer to a heartbeat or a measurement: the renewed trial and whether to stop."""

    trial: Trial | None  # None when the lease was not renewed by this call
    should_stop: bool = False
    reason: str = ""


__all__ = ["AskResult", "AskStatus", "LeaseAnswer"]
