"""The one exception hierarchy of hpsearch.

Every error a user can cause is an :class:`HpsearchError` whose message says what is
wrong and what to do about it.  The gRPC layer maps these classes to status codes in
one place (``hpsearch.wire``); the CLI prints ``str(error)`` on one line.
"""

from __future__ import annotations


class HpsearchError(Exception):
    """Base class of every error hpsearch raises on purpose."""


class InvalidArgumentError(HpsearchError, ValueError):
    """The caller sent something malformed: a bad space, a value out of range, a NaN metric."""


class NotFoundError(HpsearchError, LookupError):
    """A study, trial or worker that does not exist."""


class AlreadyExistsError(HpsearchError):
    """Creating something whose name is already taken."""


class FailedPreconditionError(HpsearchError):
    """The request is well-formed but the system is not in a state that allows it.

    Example: completing a trial whose lease expired and that was handed to another worker.
    """


class StaleAttemptError(FailedPreconditionError):
    """A report for a trial attempt that is no longer the running one (lease expired, retried)."""


class UnauthenticatedError(HpsearchError):
    """A call without valid credentials."""


class StorageError(HpsearchError):
    """The database could not be reached or is not at the expected schema version."""


class TrialInfeasible(Exception):
    """Raised by an objective of :func:`hpsearch.optimize` (or a worker's trial) whose
    trial ran but is infeasible (Vertex AI's INFEASIBLE: out of memory at this batch
    size, a model too large to serve): the trial is COMPLETED as infeasible with the
    message as its reason, and ``metrics`` (optional) kept with it.  The search learns to
    avoid such parameters; the trial never counts among the best."""

    def __init__(self, reason: str = "infeasible", metrics: dict[str, float] | None = None):
        super().__init__(reason)
        self.metrics = dict(metrics or {})
