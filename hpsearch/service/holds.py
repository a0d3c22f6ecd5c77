"""The budget of held calls: asks that wait for a trial must leave RPC threads free."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class HoldSlots:
    """How many calls may be held at once (an ask, a Keras Tuner CreateTrial, waiting for a
    trial): fewer than the server's RPC threads, so that heartbeats, results and health
    checks always find a thread.  A held call takes a thread for its whole hold; with more
    waiting workers than threads, a heartbeat used to queue until some hold ran out (9 s
    with 8 threads and 12 asks held for 10 s).  A call over the limit is answered at once
    (WAIT, or IDLE to Keras Tuner); :class:`hpsearch.client.Client` then backs off before
    asking again."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._free = threading.BoundedSemaphore(self.slots)

    @classmethod
    def for_threads(cls, threads: int) -> HoldSlots:
        """For a pool of ``threads``: a quarter of them (at least 4) stay free of holds."""
        return cls(threads - max(4, threads // 4))

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """True while this call holds a slot and may be held; False: answer at once."""
        taken = self._free.acquire(blocking=False)
        try:
            yield taken
        finally:
            if taken:
                self._free.release()
