"""The oracle: which worker runs which trial, leases, retries, budget and suggestions.

The oracle speaks Python, not gRPC: the service layer decodes a request, calls one method
of :class:`Oracle` and encodes the answer.  The store is the truth; the oracle keeps a
small in-memory mirror per study so that handing out a trial costs one SQL write and no
scan of the study.  Its rooms, one job each:

- :mod:`~hpsearch.oracle.core`: :class:`Oracle`, the public API (studies, asks, leases,
  results), the registry of study mirrors and the lease sweeper thread;
- :mod:`~hpsearch.oracle.mirror`: :class:`~hpsearch.oracle.mirror.StudyMirror`, one study
  in memory (counts, running trials, history and the algorithm's kept state, the buffer
  of ready suggestions), rebuilt from SQL at any time;
- :mod:`~hpsearch.oracle.scheduler`: the hand-out of trials to asking workers (held
  calls, claims, new trials from the buffer, restarted workers) and the study's end;
- :mod:`~hpsearch.oracle.suggester`: the suggester thread and the fit process;
- :mod:`~hpsearch.oracle.stopping`: whether a running trial should stop (study stopped,
  the median rule fed from the measurement caches);
- :mod:`~hpsearch.oracle.answers`: what ``ask``, heartbeats and reports answer.

Threads:
- RPC threads call :meth:`Oracle.ask`, :meth:`Oracle.heartbeat`, :meth:`Oracle.complete`...
  They take a study's own lock for short bookkeeping and never run a search algorithm.
- One suggester thread fills each study's suggestion buffer by calling
  :func:`hpsearch.search.suggest` with no lock held; it is woken when a buffer runs low
  or a result arrives.  In the chief, model-based algorithms run in a child process
  (:class:`~hpsearch.oracle.suggester.FitProcess`), so they do not hold the interpreter
  lock the RPC threads need.
- One sweeper thread expires lapsed leases (``store.expire_leases``) and re-syncs the
  mirrors from SQL, so a lost trial goes back to WAITING and is handed to the next asker.

When no trial can be handed out yet, ``ask`` holds the caller on the study's condition
variable for a bounded time (woken when a trial finishes, a lease lapses or a suggestion
is ready) instead of answering "wait" at once: stock Keras Tuner workers re-ask instantly.
"""

from __future__ import annotations

from hpsearch.oracle.answers import AskResult, AskStatus, LeaseAnswer
from hpsearch.oracle.core import (
    DEFAULT_HOLD_SECONDS,
    MAX_HOLD_SECONDS,
    MAX_TRIALS_PER_ASK,
    Oracle,
)

__all__ = [
    "DEFAULT_HOLD_SECONDS",
    "MAX_HOLD_SECONDS",
    "MAX_TRIALS_PER_ASK",
    "AskResult",
    "AskStatus",
    "LeaseAnswer",
    "Oracle",
]
