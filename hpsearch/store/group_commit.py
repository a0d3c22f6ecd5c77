"""Group commit: write transactions of concurrent threads, committed together.

:class:`GroupCommit` queues the writes of concurrent callers; a leader runs a group of them
in one transaction (:func:`hpsearch.store.transactions.run_transaction`), commits once and
hands each caller its own result.  Separate from the transactions it runs because it is a
scheduler of callers (a queue, leaders, hand-offs between threads), not a transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from hpsearch.errors import StorageError
from hpsearch.store.driver import BatchMissed
from hpsearch.store.transactions import Guard, Opening, WriteConnections, run_transaction

T = TypeVar("T")


_UNSET: Any = object()


class _Write:
    """One caller's write in the group-commit queue."""

    __slots__ = ("error", "fn", "group", "part", "result", "served", "what")

    def __init__(self, fn: Callable[[Connection], Any], what: str, part: Any) -> None:
        self.fn = fn
        self.what = what
        self.part = part  # the write as one statement, for a batch (None: it is not)
        self.served = threading.Lock()
        self.served.acquire()  # released by the leader that ran it, or to make it lead
        self.group: list[_Write] | None = None  # the group it is to lead, when handed one
        self.result: Any = _UNSET
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.error is not None or self.result is not _UNSET


class _WriteFailed(Exception):
    """One write of a group raised: the group is rolled back and run one by one."""


class GroupCommit:
    """Write transactions of concurrent threads, committed together.

    Up to ``keep_connections`` write connections stay open between groups
    (:class:`WriteConnections`).

    A caller that finds fewer than ``max_leaders`` groups running becomes a leader: it
    takes the writes queued so far (up to ``max_group``, its own included), runs them in
    one transaction, commits once, and hands each caller its own result; callers that
    arrive while every leader is busy queue up, and the first of them leads the next
    group.  One leader on SQLite (one writer at a time anyway); a few on PostgreSQL, where
    a group's commit waits for a disk flush and other groups can run meanwhile.

    Each caller still returns only after the commit that holds its write (a result is
    committed before the RPC that reported it returns), and the outcome of each write is
    what it would have been alone, run in that order.  What it saves: the per-transaction
    cost (pool checkout, BEGIN, COMMIT, on PostgreSQL a flush to disk per commit) is paid
    once per group, and threads no longer convoy on the database's write lock one
    transaction at a time.

    When any write of a group raises (a domain error, a constraint violation, a lost lock
    race inside it), the group is rolled back and its writes are run again one per
    transaction, so that each caller gets its own outcome; a write may therefore run more
    than once, which :func:`run_transaction` already asks of it.

    Where every write of a group also comes as one statement (``part``) and ``batch``
    is set (PostgreSQL: :class:`hpsearch.store.driver.Batch`), the group's statements
    are sent with its BEGIN in one round trip; when that cannot give every write its
    result, the transaction is rolled back before its commit and the group runs as above.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        write_lock: AbstractContextManager[Any] | None = None,
        max_group: int = 64,
        max_leaders: int = 1,
        keep_connections: int = 0,
    ) -> None:
        self._engine = engine
        self._write_lock = write_lock
        self.connections = WriteConnections(engine, keep=keep_connections)
        # Run first in every write transaction (a fenced chief's check).
        self.guard: Guard | None = None
        # Makes the Opening that sends a group's statements at once (None: never batch).
        self.batch: Callable[[list[Any]], Opening] | None = None
        self._max_group = max_group
        self._max_leaders = max_leaders
        self._mutex = threading.Lock()
        self._queue: list[_Write] = []
        self._leaders = 0
        self.groups = 0  # transactions committed for groups (statistics)
        self.writes = 0  # writes run
        self.batched = 0  # writes run in batches (one round trip for a group's statements)

    def run(self, fn: Callable[[Connection], T], what: str, part: Any = None) -> T:
        """Run ``fn`` in a group's transaction; ``part``, when given, is the same write as
        one statement for a batch (see the class)."""
        write = _Write(fn, what, part)
        with self._mutex:
            self._queue.append(write)
            group = None
            if self._leaders < self._max_leaders:
                self._leaders += 1
                group = self._take(write)
        if group is None:
            write.served.acquire()  # until a leader ran it, or handed this thread a group
            group = write.group
        if group is not None:
            self._lead(group, write)
            with self._mutex:
                if self._queue:  # the next queued caller leads the next group
                    successor = self._queue[0]
                    successor.group = self._take(successor)
                    successor.served.release()
                else:
                    self._leaders -= 1
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    def _take(self, own: _Write) -> list[_Write]:
        """The next group, which holds ``own`` (the leader's write): the queue's first
        ``max_group`` writes, or ``own`` and the first ones before it.  Concurrent writes
        have no order among them; one caller has one write in flight at a time."""
        queue, size = self._queue, self._max_group
        window = queue[:size]
        if any(w is own for w in window):
            del queue[:size]
            return window
        queue.remove(own)
        group = [*queue[: size - 1], own]
        del queue[: size - 1]
        return group

    def _lead(self, group: list[_Write], own: _Write) -> None:
        try:
            self._run_group(group)
        finally:
            with self._mutex:
                self.groups += 1
                self.writes += len(group)
            for write in group:
                if not write.done:
                    write.error = StorageError(f"database {write.what} was interrupted")
                if write is not own:
                    write.served.release()

    def _transaction(
        self, fn: Callable[[Connection], T], what: str, opening: Opening | None = None
    ) -> T:
        return run_transaction(
            self._engine,
            fn,
            write=True,
            what=what,
            write_lock=self._write_lock,
            connections=self.connections,
            guard=self.guard,
            opening=opening,
        )

    def _run_group(self, group: list[_Write]) -> None:
        batch = self.batch
        if (
            batch is not None
            and len(group) > 1
            and all(write.part is not None for write in group)
            and self._run_batch(group, batch([write.part for write in group]))
        ):
            return
        if len(group) > 1:

            def body(conn: Connection) -> list[Any]:
                results = []
                for write in group:
                    try:
                        results.append(write.fn(conn))
                    except Exception as exc:
                        raise _WriteFailed from exc
                return results

            try:
                results = self._transaction(body, _group_what(group))
            except _WriteFailed:
                pass  # rolled back: run them one by one below
            except BaseException as exc:  # every caller gets the failure
                for write in group:
                    write.error = exc
                return
            else:
                for write, result in zip(group, results, strict=True):
                    write.result = result
                return
        for write in group:
            try:
                write.result = self._transaction(write.fn, write.what)
            except BaseException as exc:  # handed to its caller
                write.error = exc

    def _run_batch(self, group: list[_Write], opening: Opening) -> bool:
        """Run ``group`` as one batch; False when it must run the usual way (nothing of
        it was committed then)."""
        taken = False

        def body(conn: Connection) -> list[Any]:
            nonlocal taken
            taken = True  # the opening gave every write its result: next is the commit
            return opening.results

        try:
            results = self._transaction(body, _group_what(group), opening)
        except Exception as exc:
            if isinstance(exc, BatchMissed) or not taken:
                return False  # rolled back before any commit: the usual way decides
            for write in group:  # a commit failed: every caller gets the failure
                write.error = exc
            return True
        except BaseException as exc:
            for write in group:
                write.error = exc
            return True
        for write, result in zip(group, results, strict=True):
            write.result = result
        with self._mutex:
            self.batched += len(group)
        return True


def _group_what(group: list[_Write]) -> str:
    return f"{len(group)} writes ({group[0].what}, ...)"
