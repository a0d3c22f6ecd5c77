"""The chief: one process holding the oracle and serving it over gRPC.

``run_chief(...)`` is what ``hpsearch chief`` calls; it blocks until SIGINT or SIGTERM and
then shuts down gracefully (health answers NOT_SERVING, in-flight calls finish).
:class:`Chief` is the same thing as an object, for tests and in-process demos.
``python -m hpsearch.chief --storage URL --study FILE --port 8000`` runs it without the CLI.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
import uuid
from pathlib import Path
from types import FrameType

from hpsearch.errors import HpsearchError, InvalidArgumentError, NotFoundError
from hpsearch.oracle import DEFAULT_HOLD_SECONDS, Oracle
from hpsearch.records import Study, StudyState
from hpsearch.security import ServerSecurity, is_loopback
from hpsearch.service import Server, build_server
from hpsearch.space import load_study
from hpsearch.store.api import DEFAULT_URL, Store
from hpsearch.store.engine import safe_url
from hpsearch.store.fencing import ChiefLease, ChiefLeaseHeldError, ChiefLeaseLostError

logger = logging.getLogger(__name__)

#: How long the chief's fencing lease lasts; it is renewed every third of that.
DEFAULT_CHIEF_LEASE_SECONDS = 30.0
#: A waiting chief tries again this long after the holder's lease was due to expire.
_LEASE_WAIT_MARGIN = 0.05


class StoppedWhileWaitingError(HpsearchError):
    """The chief was asked to stop (``Chief.done``) while it waited for the chief lease."""


def run_chief(
    port: int = 8000,
    storage: str = DEFAULT_URL,
    study: str | None = None,
    host: str = "0.0.0.0",
    *,
    grace: float = 10.0,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
    security: ServerSecurity | None = None,
    health_port: int | None = None,
    keras_tuner_port: int | None = None,
    chief_lease_seconds: float = DEFAULT_CHIEF_LEASE_SECONDS,
    takeover: bool = False,
    wait_for_lease: bool = True,
    dashboard_port: int | None = None,
    exit_when_done: bool = False,
) -> None:
    """Serve the oracle on ``host:port`` over the database at ``storage`` until signalled.

    ``dashboard_port``: serve the web dashboard too (same token).  ``exit_when_done``: return
    once ``study`` is finished (no longer ACTIVE), e.g. as workerpool0 of a Vertex AI CustomJob,
    which ends when that pool's process exits.

    ``study`` is a study file (created, or resumed when a study of that name exists) or the
    name of an existing study: it is the study stock Keras Tuner workers get.  See
    :class:`Chief` for the other options.  ``wait_for_lease`` (the default here): a chief
    restarted after a crash waits for the dead chief's lease to expire, then serves; False
    raises ChiefLeaseHeldError at once.  Raises ChiefLeaseLostError when this chief was
    fenced while serving.  A signal while it waits returns without serving.
    """
    chief = Chief(
        storage,
        study=study,
        host=host,
        port=port,
        hold_seconds=hold_seconds,
        security=security,
        health_port=health_port,
        keras_tuner_port=keras_tuner_port,
        chief_lease_seconds=chief_lease_seconds,
        takeover=takeover,
        wait_for_lease=wait_for_lease,
        fit_process=True,  # the command's entry points guard __main__
    )
    stop = chief.done

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("chief stopping signal=%s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    dashboard = None
    try:
        try:
            chief.start()
        except StoppedWhileWaitingError:
            logger.info("chief stopped while waiting for the chief lease")
            return
        if dashboard_port is not None:
            from hpsearch.dashboard import serve_dashboard

            dashboard = serve_dashboard(
                chief.store, host=host, port=dashboard_port, token=chief.security.token
            )
            logger.info("dashboard serving url=%s", dashboard.url)
        settle_garbage_collector()
        # Never an untimed wait: a signal the kernel hands to one of gRPC's threads only
        # runs its Python handler once the main thread wakes up, and a main thread asleep
        # in wait(None) never did (the chief ignored that SIGTERM for good).
        while not stop.wait(1.0):
            if exit_when_done and chief.study_finished():
                logger.info("chief exiting: study finished study=%s", chief.study)
                break
    finally:
        if dashboard is not None:
            dashboard.stop()
        chief.stop(grace)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if chief.lost_lease is not None:
        raise chief.lost_lease


def settle_garbage_collector(young: int = 10_000) -> None:
    """Tune the garbage collector for a long-running server, once it has started.

    What start-up loaded (modules, the proto descriptors, SQLAlchemy's and NumPy's
    objects) lives until the process exits; frozen, the full collections stop scanning
    it.  Every RPC allocates short-lived objects; a larger young generation collects them
    in fewer, equally cheap passes, so the collector costs each trial less (measured:
    benchmarks/results/design_figures.md, "Garbage collector settings for the chief").
    Only for the process ``hpsearch chief`` runs (it changes process-wide settings).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young, older, oldest)


class Chief:
    """The oracle, its store and its gRPC server, started and stopped together.

    At start the chief takes the store's fencing lease (``chief_lease_seconds`` long, on the
    database clock) and renews it every third of that; a second chief on the same store
    refuses to start (ChiefLeaseHeldError) unless ``takeover`` fences the first, which
    stops serving on its next renewal (``done`` is set, ``lost_lease`` says why), or
    ``wait_for_lease`` makes it wait: a dead chief's lease expires within
    ``chief_lease_seconds`` of its last renewal and the waiting chief then serves, while a
    live chief keeps renewing and the waiting one stands by (``done`` ends the wait with
    StoppedWhileWaitingError).  ``hpsearch chief`` waits; this object refuses by default.

    ``security`` (:class:`hpsearch.security.ServerSecurity`): TLS, mutual TLS and a bearer
    token.  ``health_port``: gRPC health alone, plaintext, no token (kubelet probes).
    ``keras_tuner_port``: ``keras_tuner.Oracle`` plaintext without a token, for stock Keras
    Tuner workers (they can send neither): keep that port on a private network.
    ``fit_process``: run model fits in a spawned child process (see
    :class:`hpsearch.oracle.Oracle`); only from a program whose main module has an
    ``if __name__ == "__main__":`` guard, as ``hpsearch chief`` has.
    """

    def __init__(
        self,
        storage: str = DEFAULT_URL,
        *,
        study: str | None = None,
        host: str = "0.0.0.0",
        port: int = 8000,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        sweep_seconds: float = 1.0,
        max_workers: int = 64,
        security: ServerSecurity | None = None,
        health_port: int | None = None,
        keras_tuner_port: int | None = None,
        chief_lease_seconds: float = DEFAULT_CHIEF_LEASE_SECONDS,
        takeover: bool = False,
        wait_for_lease: bool = False,
        fit_process: bool = False,
    ) -> None:
        self.storage = storage
        self.wait_for_lease = wait_for_lease
        self.fit_process = fit_process
        self.security = security or ServerSecurity()
        self.health_port = health_port
        self.keras_tuner_port = keras_tuner_port
        self.chief_lease_seconds = chief_lease_seconds
        self.takeover = takeover
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease: ChiefLease | None = None
        #: Set when the chief stops serving by itself (it lost its lease).
        self.done = threading.Event()
        self.lost_lease: HpsearchError | None = None
        self._renewer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._check_lease = threading.Event()  # a fenced write: renew (and learn) now
        self.study_arg = study
        self.host = host
        self.requested_port = port
        self.hold_seconds = hold_seconds
        self.sweep_seconds = sweep_seconds
        self.max_workers = max_workers
        self.store: Store | None = None
        self.oracle: Oracle | None = None
        self.server: Server | None = None
        self.study: str | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        if self.server is None:
            raise RuntimeError("the chief is not started")
        return self.server.port

    @property
    def address(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{host}:{self.port}"

    def start(self) -> Chief:
        from hpsearch.store import Store as SqlStore  # the implementation behind the contract

        self.store = SqlStore(self.storage)
        try:
            self.lease = self._take_lease(self.store)
            # Every write checks the lease in its own transaction: once fenced, none lands,
            # and the first refused one makes the renewer find out and stop serving.
            self.store.fence_writes(self.lease, on_lost=self._check_lease.set)
        except BaseException:
            self.store.close()
            self.store = None
            raise
        logger.info(
            "chief lease taken holder=%s epoch=%d takeover=%s",
            self.holder,
            self.lease.epoch,
            self.takeover,
        )
        try:
            self.oracle = Oracle(
                self.store,
                hold_seconds=self.hold_seconds,
                sweep_seconds=self.sweep_seconds,
                suggest_in_process=self.fit_process,
            )
            if self.study_arg:
                self.study = resolve_study(self.oracle, self.study_arg).name
            self.server = build_server(
                self.oracle,
                study=self.study,
                host=self.host,
                port=self.requested_port,
                max_workers=self.max_workers,
                security=self.security,
                health_port=self.health_port,
                keras_tuner_port=self.keras_tuner_port,
            )
        except BaseException:
            self.stop(0)
            raise
        self.security.warn_if_open(self.host)
        if self.keras_tuner_port is not None and not is_loopback(self.host):
            logger.warning(
                "SECURITY WARNING: --keras-tuner-port %d serves keras_tuner.Oracle plaintext "
                "without a token on %s (stock Keras Tuner workers can send neither): keep it "
                "on a private network",
                self.server.keras_tuner_port,
                self.host,
            )
        self.oracle.start()
        self.server.start()
        self._renewer = threading.Thread(
            target=self._renew_lease, name="hpsearch-chief-lease", daemon=True
        )
        self._renewer.start()
        logger.info(
            "chief serving address=%s:%d tls=%s mutual_tls=%s token=%s health_port=%s "
            "keras_tuner_port=%s study=%s storage=%s",
            self.host,
            self.server.port,
            self.security.tls,
            self.security.tls_client_ca is not None,
            self.security.token is not None,
            self.server.health_port,
            self.server.keras_tuner_port,
            self.study,
            safe_url(self.storage),
        )
        return self

    def _take_lease(self, store: Store) -> ChiefLease:
        """The chief lease, at once or, with ``wait_for_lease``, once its holder's lapses.

        Each try reads the holder's expiry on the database clock and sleeps until then: a
        dead chief's lease has expired by the next try, a live chief's was renewed (this
        chief then stands by, logging each new holder once)."""
        seen: tuple[str, int] | None = None
        while True:
            try:
                return store.acquire_chief_lease(
                    self.holder, self.chief_lease_seconds, takeover=self.takeover
                )
            except ChiefLeaseHeldError as held:
                if not self.wait_for_lease or held.lease is None:
                    raise
                holder = (held.lease.holder, held.lease.epoch)
                if holder != seen:
                    logger.warning(
                        "waiting for the chief lease: held by holder=%s epoch=%d; it "
                        "expires in %.1fs unless that chief is alive and renews it "
                        "(--no-wait-for-lease refuses instead, --takeover fences it)",
                        *holder,
                        held.seconds_left,
                    )
                    seen = holder
                if self.done.wait(held.seconds_left + _LEASE_WAIT_MARGIN):
                    raise StoppedWhileWaitingError(
                        "the chief was stopped while waiting for the chief lease"
                    ) from None

    def _renew_lease(self) -> None:
        """Renew the chief lease every third of its duration; stop serving once it is lost
        (fenced by another chief, or not renewed in time because the database is down)."""
        interval = self.chief_lease_seconds / 3
        last_renewed = time.monotonic()
        while True:
            self._check_lease.wait(interval)
            self._check_lease.clear()
            if self._stopping.is_set():
                return
            store, lease = self.store, self.lease
            if store is None or lease is None:
                return
            try:
                self.lease = store.renew_chief_lease(lease, self.chief_lease_seconds)
                last_renewed = time.monotonic()
                continue
            except ChiefLeaseLostError as error:
                self.lost_lease = error
            except HpsearchError as error:
                if time.monotonic() - last_renewed < self.chief_lease_seconds:
                    logger.warning("chief lease renewal failed, retrying error=%s", error)
                    continue
                self.lost_lease = ChiefLeaseLostError(
                    f"this chief could not renew its lease on the database for "
                    f"{self.chief_lease_seconds:g}s ({error}); it stops serving so that "
                    "another chief may take over"
                )
            logger.error("chief fenced, stopping: %s", self.lost_lease)
            if self.server is not None:
                self.server.stop(0)  # no more calls, so no more writes from this chief
            if self.oracle is not None:
                self.oracle.stop()  # nor from its lease sweeper
            self.done.set()
            return

    def study_finished(self) -> bool:
        """Whether the chief's own study (``--study``) is finished: no longer ACTIVE."""
        if self.oracle is None or self.study is None:
            return False
        return self.oracle.get_study(self.study).state is not StudyState.ACTIVE

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop serving: new calls are refused, held asks answer at once, in-flight calls
        get up to ``grace`` seconds, then the lease is given back and the store closed."""
        self._stopping.set()
        self._check_lease.set()  # wakes the renewer, which sees _stopping and returns
        stopped = self.server.stop(grace) if self.server is not None else None
        if self.oracle is not None:
            self.oracle.stop()  # releases asks held on a study's condition
        if stopped is not None:
            stopped.wait()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=10)
        if self.store is not None:
            if self.lease is not None and self.lost_lease is None:
                try:
                    self.store.release_chief_lease(self.lease)
                except HpsearchError as error:
                    logger.warning("chief lease not released error=%s", error)
            transactions, writes = self.store.write_stats
            batched = self.store.batched_writes
            self.store.close()
            logger.info(
                "store writes=%d transactions=%d (%.1f writes per commit) batched=%d",
                writes,
                transactions,
                writes / max(transactions, 1),
                batched,
            )
        self.done.set()
        logger.info("chief stopped")

    def __enter__(self) -> Chief:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(0)


def resolve_study(oracle: Oracle, study: str) -> Study:
    """A study file is created, or resumed when its name exists: then the file's safe
    changes (budget, leases, early stopping, new parameters) are applied, and any other
    change is refused with what to run instead.  A name must exist."""
    path = Path(study)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        config = load_study(path)
        try:
            oracle.get_study(config.name)
        except NotFoundError:
            return oracle.create_study(config)
        try:
            existing, changes = oracle.update_study(config.name, config)
        except InvalidArgumentError as refused:
            raise InvalidArgumentError(f"{path}: {refused}") from None
        if changes:
            logger.info(
                "study resumed with the file's changes study=%s changes=%r",
                config.name,
                [str(c) for c in changes],
            )
        else:
            logger.info("study resumed study=%s", config.name)
        return existing
    try:
        return oracle.get_study(study)
    except NotFoundError:
        raise NotFoundError(
            f"no study named {study!r} in this database and no such study file; "
            "pass a study file (.yaml/.json) or create the study first"
        ) from None


if __name__ == "__main__":
    # The flags are the CLI's (hpsearch.cli.chief); only this entry point lives here.
    from hpsearch.cli.chief import main_module

    raise SystemExit(main_module())
