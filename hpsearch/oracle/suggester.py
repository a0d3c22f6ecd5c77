"""The suggester: one thread that keeps every study's buffer of ready suggestions filled.

It is woken when a buffer runs low or a result makes a model-based study's suggestions
stale, and calls :func:`hpsearch.search.suggest` with no lock held, so no RPC thread ever
waits for a search algorithm.  In the chief, model-based algorithms run in a child
process (:class:`FitProcess`), so a model fit does not even hold the interpreter lock the
RPC threads need.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from hpsearch import search
from hpsearch.errors import StorageError
from hpsearch.oracle.mirror import StudyMirror
from hpsearch.search.encoding import params_key
from hpsearch.space import Params, StudyConfig

logger = logging.getLogger(__name__)


class Suggester:
    """The suggester thread over the studies ``mirrors()`` returns."""

    def __init__(
        self, mirrors: Callable[[], list[StudyMirror]], *, fit_process: bool = False
    ) -> None:
        self._mirrors = mirrors
        self._fits = FitProcess() if fit_process else None
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="hpsearch-suggester", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._fits is not None:
            self._fits.close()

    def wake(self) -> None:
        """Have the thread look at every study's buffer now."""
        self._wakeup.set()

    def refill(self, mirror: StudyMirror) -> None:
        """Top up one study's buffer if it needs it (on the caller's thread)."""
        with mirror.cond:
            if not mirror.needs_suggestions():
                return
            config = mirror.config
            refresh = mirror.stale
            kept = [] if refresh else list(mirror.buffer)
            room = config.budget.max_trials - mirror.total
            n = min(mirror.target - len(kept), room - len(kept))
            if n <= 0:
                return
            # An algorithm that keeps state of its own (random search: the keys tried) is
            # given that, live, instead of a copy of the history: O(n) per refill.
            history = list(mirror.history) if mirror.algorithm.uses_history else []
            state = mirror.search_state
            known = len(mirror.history)
            # Failed trials count as busy points: they taught nothing, and with the history
            # and the running set as before them the search would propose them again (the
            # same Sobol point; in a seeded study the very same parameters).
            pending = (
                list(mirror.pending_params.values())
                + mirror.in_flight
                + kept
                + mirror.failed_params
            )
            version = mirror.space_version
            replay = mirror.replay_inputs() if mirror.exact_replay else None
            mirror.dirty = False
        # Exact replay (see StudyMirror.exact_replay): a generator of the seed and the
        # inputs, not the study's running one, whose draws depend on how many fits ran.
        rng = (
            mirror.rng
            if replay is None
            else np.random.default_rng([config.seed or 0, known, len(pending)])
        )
        started = time.perf_counter()
        if self._fits is not None and mirror.algorithm.model_based:
            proposals, rng = self._fits.suggest(config, history, pending, n, rng, state)
        else:
            proposals = search.suggest(config, history, pending, n, rng, state)
        if replay is None:
            mirror.rng = rng
        elapsed = time.perf_counter() - started
        valid = [config.space.validate(p) for p in proposals]
        with mirror.cond:
            if mirror.space_version != version:
                return  # the space changed while computing: these are stale
            if replay is not None and mirror.replay_inputs() != replay:
                return  # a trial ended or a retry started meanwhile: computed again
            # Trials handed out while this ran were not in ``pending``: a deterministic
            # design (a Sobol point) could propose one of them again.
            taken = mirror.taken_since(known)
            if taken:
                valid = [p for p in valid if params_key(p) not in taken]
            if refresh or not mirror.buffer:
                mirror.buffer = deque(valid)
                mirror.buffer_computed(known)
            else:
                mirror.buffer.extend(valid)
            mirror.cond.notify_all()
        logger.debug(
            "suggestions ready study=%s n=%d history=%d seconds=%.3f",
            mirror.name,
            len(valid),
            known,
            elapsed,
        )

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.wait(1.0)
            self._wakeup.clear()
            if self._stopping.is_set():
                return
            for mirror in self._mirrors():
                try:
                    self.refill(mirror)
                except StorageError as error:  # the database is restarting: one line
                    logger.warning("suggestion deferred study=%s: %s", mirror.name, error)
                    mirror.suggest_failed_at = time.monotonic()
                except Exception:  # a broken algorithm must not kill the chief
                    logger.exception("suggestion failed study=%s", mirror.name)
                    mirror.suggest_failed_at = time.monotonic()


def suggest_remote(
    config: StudyConfig,
    history: list[search.Observation],
    pending: list[Params],
    n: int,
    rng: np.random.Generator,
    state: Any,
) -> tuple[list[Params], np.random.Generator]:
    """:func:`hpsearch.search.suggest`, in the fit process (or in-thread as its fallback);
    the generator comes back advanced, so a seeded study draws the same suggestions."""
    return search.suggest(config, history, pending, n, rng, state), rng


class FitProcess:
    """Model fits (Bayesian suggestions) in a child process of the chief.

    The suggester thread already keeps fits off the RPC threads, but a fit is mostly
    Python and NumPy holding the interpreter lock, so in a thread it still delays every
    RPC by a few lock hand-overs.  One child process (``spawn``: the chief runs gRPC
    threads, which must not be forked) runs them instead; it starts at the first fit.  If
    it dies, the fit runs in-thread once and the next one starts a new child.

    The child dies with the chief (:func:`die_with_parent`), even a chief killed with
    SIGKILL, so a crashed chief leaves no process behind: multiprocessing's resource tracker,
    the chief's other child, then sees its pipe close and exits too.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._disabled = False

    def suggest(
        self,
        config: StudyConfig,
        history: list[search.Observation],
        pending: list[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> tuple[list[Params], np.random.Generator]:
        with self._lock:
            if self._pool is None and not self._disabled:
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=die_with_parent,
                    initargs=(os.getpid(),),
                )
            pool = self._pool
        if pool is not None:
            try:
                future = pool.submit(suggest_remote, config, history, pending, n, rng, state)
            except Exception as error:  # no process can start (e.g. an unguarded __main__)
                logger.warning("fits run in the chief's own process: no fit process (%s)", error)
                self._drop(pool, disable=True)
            else:
                try:
                    return future.result()  # an error of the algorithm itself is raised
                except BrokenProcessPool:
                    logger.warning(
                        "fit process died; this fit runs in the chief, the next in a new one"
                    )
                    self._drop(pool)
        return suggest_remote(config, history, pending, n, rng, state)  # here, in this thread

    def _drop(self, pool: ProcessPoolExecutor, *, disable: bool = False) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
            self._disabled = self._disabled or disable
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def die_with_parent(parent_pid: int) -> None:
    """In a child process (Linux): be sent SIGKILL when the parent dies, and exit now if it
    already has (the child was then adopted by another process).

    The kernel sends the signal when the thread that started the child ends: the fit
    process is started by the suggester thread, which lives as long as the oracle (were
    another thread to start it and end first, the child dies and the next fit starts a new
    one, as after any death of the fit process).
    """
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


_PR_SET_PDEATHSIG = 1

__all__ = ["FitProcess", "Suggester", "die_with_parent", "suggest_remote"]
