"""The chief's fencing lease: at most one chief serves a database at a time.

A chief takes the lease when it starts (:meth:`hpsearch.store.Store.acquire_chief_lease`),
renews it every third of its duration and gives it back when it stops.  The lease lives on
the database clock (``db_now``), like trial leases.  Each acquisition bumps ``epoch``; a
renewal is a guarded ``UPDATE ... WHERE holder = :holder AND epoch = :epoch``, so a chief
that another one fenced (``takeover``) learns it on its next renewal and stops serving.
Taking the lease from a previous chief also pushes every running trial's lease back by the
time since that chief's last renewal: no worker could renew a trial's lease while no chief
served, so a chief restarted after a crash does not give up the trials of live workers.

A fenced store (:meth:`hpsearch.store.Store.fence_writes`) also checks, first in every
write transaction, that its lease is still held, so that a fenced chief writes nothing
from the moment the takeover commits.  On PostgreSQL that check holds a shared
transaction-level advisory lock (``FENCE_LOCK_CLASS``, one per schema) while it reads
the lease, and taking the lease holds the same lock exclusively: a takeover waits for the
write transactions in flight, and a transaction that starts after it sees the new
holder.  (An advisory lock lives in the server's lock table only: unlike ``SELECT ...
FOR SHARE`` on the lease row it writes nothing to the row or the WAL, and it goes with
the BEGIN in one round trip.)  On SQLite a write transaction holds the database's write
lock, with the same effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Dialect

from hpsearch.errors import FailedPreconditionError, InvalidArgumentError
from hpsearch.records import TrialState
from hpsearch.store.engine import db_now
from hpsearch.store.models import ChiefLeaseRow, TrialRow

LEASE_NAME = "chief"
MAX_CHIEF_LEASE_SECONDS = 3600.0
#: The PostgreSQL advisory lock of the fence: this class (the bytes of "hpse") and the
#: hash of the schema, so that stores in different schemas of one database have their own.
FENCE_LOCK_CLASS = 0x6870_7365
_FENCE_KEY = (FENCE_LOCK_CLASS, func.hashtext(func.current_schema()))

_T: Table = ChiefLeaseRow.__table__  # type: ignore[assignment]
_TRIALS: Table = TrialRow.__table__  # type: ignore[assignment]


class ChiefLeaseHeldError(FailedPreconditionError):
    """Another chief holds the lease of this database and it has not expired.

    ``lease`` is that chief's lease as read, ``seconds_left`` its time left on the database
    clock then: a chief that waits for it (:class:`hpsearch.chief.Chief`) tries again after
    that long, and finds the lease expired or, if its holder is alive, renewed.
    """

    def __init__(
        self, message: str, lease: ChiefLease | None = None, seconds_left: float = 0.0
    ) -> None:
        super().__init__(message)
        self.lease = lease
        self.seconds_left = seconds_left


class ChiefLeaseLostError(FailedPreconditionError):
    """This chief's lease was taken over (fenced) by another chief."""


@dataclass(frozen=True, slots=True)
class ChiefLease:
    """A chief's hold on a database: who, which epoch, until when (database clock)."""

    holder: str
    epoch: int
    expires_at: float


def acquire(conn: Connection, holder: str, lease_seconds: float, *, takeover: bool) -> ChiefLease:
    """Take the lease for ``holder`` (epoch + 1); ChiefLeaseHeldError when another holder's
    lease has not expired and ``takeover`` is False."""
    _check(holder, lease_seconds)
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # wait for the fenced writes in flight; later ones wait for this commit
        conn.execute(select(func.pg_advisory_xact_lock(*_FENCE_KEY)))
    insert = pg_insert if postgres else sqlite_insert
    conn.execute(
        insert(_T)
        .values(
            name=LEASE_NAME, holder="", epoch=0, expires_at=0.0, acquired_at=0.0, renewed_at=0.0
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )
    row = conn.execute(
        select(_T.c.holder, _T.c.epoch, _T.c.expires_at, _T.c.renewed_at, db_now().label("now"))
        .where(_T.c.name == LEASE_NAME)
        .with_for_update()
    ).one()
    if row.holder and row.holder != holder and row.expires_at > row.now and not takeover:
        left = float(row.expires_at - row.now)
        raise ChiefLeaseHeldError(
            f"another chief ({row.holder}, epoch {row.epoch}) serves this database; its lease "
            f"expires at {_utc(row.expires_at)} (in {left:.0f}s) unless it renews it. Stop "
            "that chief first, or pass --takeover to fence it (it stops on its next renewal)",
            ChiefLease(str(row.holder), int(row.epoch), float(row.expires_at)),
            left,
        )
    epoch = int(row.epoch) + 1
    if row.holder:
        _stop_the_clock(conn, float(row.now - row.renewed_at))
    expires_at = conn.execute(
        update(_T)
        .where(_T.c.name == LEASE_NAME)
        .values(
            holder=holder,
            epoch=epoch,
            expires_at=db_now() + lease_seconds,
            acquired_at=db_now(),
            renewed_at=db_now(),
        )
        .returning(_T.c.expires_at)
    ).scalar_one()
    return ChiefLease(holder, epoch, float(expires_at))


def _stop_the_clock(conn: Connection, unserved: float) -> None:
    """Push every running trial's lease back by ``unserved`` seconds: the time since the
    previous chief last renewed its lease, when no chief could take a heartbeat.

    A worker cannot renew a trial's lease while no chief serves, so without this a chief
    restarted after a crash would give up (and run again) every trial whose lease lapsed
    during the outage, though its worker was alive and training.  The previous chief may
    have served up to a third of its lease after its last renewal: those seconds are
    granted too.  A worker that died meanwhile loses its trial that much later."""
    if unserved > 0:
        conn.execute(
            update(_TRIALS)
            .where(
                _TRIALS.c.state == TrialState.RUNNING.value,
                _TRIALS.c.lease_expires_at.is_not(None),
            )
            .values(lease_expires_at=_TRIALS.c.lease_expires_at + unserved)
        )


def renew(conn: Connection, lease: ChiefLease, lease_seconds: float) -> ChiefLease:
    """Extend ``lease``; ChiefLeaseLostError when another chief took it since."""
    _check(lease.holder, lease_seconds)
    expires_at = conn.execute(
        update(_T)
        .where(_T.c.name == LEASE_NAME, _T.c.holder == lease.holder, _T.c.epoch == lease.epoch)
        .values(expires_at=db_now() + lease_seconds, renewed_at=db_now())
        .returning(_T.c.expires_at)
    ).scalar_one_or_none()
    if expires_at is None:
        raise lost_error(conn, lease)
    return ChiefLease(lease.holder, lease.epoch, float(expires_at))


def release(conn: Connection, lease: ChiefLease) -> bool:
    """End ``lease`` now so that the next chief starts at once; False if it was lost."""
    result = conn.execute(
        update(_T)
        .where(_T.c.name == LEASE_NAME, _T.c.holder == lease.holder, _T.c.epoch == lease.epoch)
        .values(expires_at=db_now(), renewed_at=db_now())
    )
    return bool(result.rowcount)


#: Still held by (holder, epoch)?  Run first in every write transaction of a fenced store,
#: on PostgreSQL after SHARE_FENCE (see the module's docstring).
STILL_HELD = select(_T.c.epoch).where(
    _T.c.name == LEASE_NAME,
    _T.c.holder == bindparam("b_holder"),
    _T.c.epoch == bindparam("b_epoch"),
)
#: PostgreSQL: the fence's shared lock, held until the transaction ends.
SHARE_FENCE = select(func.pg_advisory_xact_lock_shared(*_FENCE_KEY))


def still_held_postgres_sql(lease: ChiefLease, dialect: Dialect) -> str:
    """SHARE_FENCE and STILL_HELD for ``lease`` as plain SQL (its values inlined), to go
    with a transaction's BEGIN in one round trip."""
    parts = [
        SHARE_FENCE,
        STILL_HELD.params(b_holder=lease.holder, b_epoch=int(lease.epoch)),
    ]
    return "; ".join(
        str(part.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        for part in parts
    )


def lost_error(conn: Connection, lease: ChiefLease) -> ChiefLeaseLostError:
    """The error for a chief whose lease another chief now holds."""
    current = current_lease(conn)
    by = f"{current.holder} (epoch {current.epoch})" if current else "nobody"
    return ChiefLeaseLostError(
        f"this chief ({lease.holder}, epoch {lease.epoch}) lost its lease on the database "
        f"to {by}: it was fenced by a --takeover and stops serving"
    )


def current_lease(conn: Connection) -> ChiefLease | None:
    """The lease as stored (expired or not), or None if no chief ever took it."""
    row = conn.execute(
        select(_T.c.holder, _T.c.epoch, _T.c.expires_at).where(_T.c.name == LEASE_NAME)
    ).one_or_none()
    if row is None or not row.holder:
        return None
    return ChiefLease(str(row.holder), int(row.epoch), float(row.expires_at))


def _check(holder: str, lease_seconds: float) -> None:
    if not isinstance(holder, str) or not holder or len(holder) > 256:
        raise InvalidArgumentError(f"chief lease holder must be 1-256 characters, got {holder!r}")
    if not 0 < lease_seconds <= MAX_CHIEF_LEASE_SECONDS:
        raise InvalidArgumentError(
            f"chief lease must last (0, {MAX_CHIEF_LEASE_SECONDS:g}] seconds, "
            f"got {lease_seconds!r}"
        )


def _utc(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
