"""Serving the dashboard: cheroot (a maintained, threaded WSGI server), or wsgiref as a fallback.

``serve_dashboard(store_or_url, host, port)`` returns at once with a running server;
``hpsearch dashboard`` blocks on it, ``hpsearch chief --dashboard-port`` runs it beside
the oracle.  No web framework is needed: the app is a plain WSGI callable.

It is served by cheroot (CherryPy's HTTP server, in the ``dashboard`` extra): a pool of
worker threads, HTTP/1.1 keep-alive with idle connections parked outside the pool, request
size limits and timeouts.  The standard library's ``wsgiref``, which its documentation
calls unfit for production, is used only when cheroot is not installed (with a warning),
or when asked for by name.
"""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine

from hpsearch.dashboard.app import DashboardApp
from hpsearch.errors import InvalidArgumentError, StorageError
from hpsearch.security import bearer_matches, is_loopback

logger = logging.getLogger(__name__)

#: The WSGI servers ``serve_dashboard`` knows; "auto" is the first one installed.
SERVERS = ("auto", "cheroot", "wsgiref")
#: cheroot's worker threads: requests served at once (idle keep-alive connections hold none).
THREADS = 16
#: What the ``Server`` response header says.
SERVER_NAME = "hpsearch-dashboard"


class _Backend(Protocol):
    """A bound WSGI server: ``serve`` runs until ``shutdown`` (from another thread)."""

    name: str
    address: tuple[str, int]

    def serve(self) -> None: ...

    def shutdown(self) -> None: ...


class DashboardServer:
    """A dashboard being served; ``url`` is where to open it, ``stop()`` ends it.
    ``backend`` names the WSGI server (``cheroot`` or ``wsgiref``)."""

    def __init__(self, backend: _Backend, app: DashboardApp, owned: Any = None) -> None:
        self._backend = backend
        self.app = app
        self.backend = backend.name
        self._owned = owned  # a Store this server opened itself and closes on stop
        host, port = backend.address
        self.host = str(host)
        self.port = int(port)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.url = f"http://{shown}:{self.port}/"
        self._thread = threading.Thread(
            target=backend.serve, name=f"hpsearch-dashboard-{self.port}", daemon=True
        )
        self._stopped = threading.Event()

    def start(self) -> DashboardServer:
        self._thread.start()
        try:
            logger.info("dashboard serving url=%s server=%s", self.url, self.backend)
        except BaseException:  # a Ctrl-C here: the caller never gets the server to stop
            self.stop()
            raise
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` passes); True once stopped."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop serving and close the listening socket (and a store it opened itself)."""
        if self._stopped.is_set():
            return
        self._backend.shutdown()
        self._thread.join(timeout=5)
        if self._owned is not None:
            self._owned.close()
        self._stopped.set()
        logger.info("dashboard stopped url=%s", self.url)

    def __enter__(self) -> DashboardServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_dashboard(
    store_or_url: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    token: str | None = None,
    server: str = "auto",
) -> DashboardServer:
    """Serve the dashboard of a store (a :class:`hpsearch.store.Store`, or a storage URL
    that is opened here) on ``host:port`` from a background thread; ``port=0`` picks a
    free port.  Returns the running server (``.url``, ``.backend``, ``.stop()``).

    With ``token`` every request needs ``Authorization: Bearer <token>`` (401 otherwise).
    ``server``: ``auto`` (cheroot when installed, else wsgiref with a warning), ``cheroot``
    or ``wsgiref``.  StorageError when the port is taken or the database cannot be opened.
    """
    if server not in SERVERS:
        raise InvalidArgumentError(
            f"unknown dashboard server {server!r}; use one of {', '.join(SERVERS)}"
        )
    owned = None
    if isinstance(store_or_url, str):
        from hpsearch.store import Store

        store = Store(store_or_url)
        owned = store
    else:
        store = store_or_url
    engine = store_engine(store)
    app = DashboardApp(engine)
    served: Any = app if token is None else BearerTokenMiddleware(app, token)
    if token is None and not is_loopback(host):
        logger.warning(
            "SECURITY WARNING: the dashboard listens on %s without a bearer token: anyone "
            "who can reach it reads every study; pass --token-file or bind 127.0.0.1",
            host,
        )
    try:
        backend = _bind(server, host, port, served)
    except BaseException:
        if owned is not None:
            owned.close()
        raise
    return DashboardServer(backend, app, owned).start()


class BearerTokenMiddleware:
    """WSGI middleware: 401 unless ``Authorization: Bearer <token>`` (constant-time).
    ``/api/health`` stays open for probes."""

    def __init__(self, app: Any, token: str) -> None:
        self._app = app
        self._token = token

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/api/health" or bearer_matches(
            environ.get("HTTP_AUTHORIZATION"), self._token
        ):
            return self._app(environ, start_response)
        body = b"missing or wrong bearer token: send 'Authorization: Bearer <token>'\n"
        start_response(
            "401 Unauthorized",
            [
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("WWW-Authenticate", 'Bearer realm="hpsearch"'),
            ],
        )
        return [body]


def store_engine(store: Any) -> Engine:
    """The SQLAlchemy engine behind a Store (the dashboard reads its tables directly)."""
    for attribute in ("engine", "_engine"):
        engine = getattr(store, attribute, None)
        if isinstance(engine, Engine):
            return engine
    raise StorageError(
        f"{type(store).__name__} exposes no SQLAlchemy engine (.engine); "
        "pass a storage URL to serve_dashboard instead"
    )


# -- the WSGI servers --------------------------------------------------------------------------
def _bind(server: str, host: str, port: int, app: Any) -> _Backend:
    """Bind ``server`` (or, for ``auto``, the first one installed) to ``host:port``."""
    if server in ("auto", "cheroot"):
        try:
            import cheroot.wsgi  # noqa: F401
        except ImportError:
            if server == "cheroot":
                raise InvalidArgumentError(
                    "the cheroot server is not installed: pip install 'hpsearch[dashboard]'"
                ) from None
            logger.warning(
                "cheroot is not installed: serving the dashboard with wsgiref, which is not "
                "meant for production; pip install 'hpsearch[dashboard]'"
            )
        else:
            return _guarded(_CherootBackend, host, port, app)
    return _guarded(_WsgirefBackend, host, port, app)


def _guarded(kind: Any, host: str, port: int, app: Any) -> _Backend:
    try:
        return kind(host, port, app)  # type: ignore[no-any-return]
    except OSError as exc:
        raise StorageError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}; "
            "pick another --port (or --port 0 for any free one)"
        ) from exc


class _CherootBackend:
    name = "cheroot"

    def __init__(self, host: str, port: int, app: Any) -> None:
        from cheroot import wsgi

        self._server = wsgi.Server((host, port), app, numthreads=THREADS, server_name=SERVER_NAME)
        self._server.error_log = _cheroot_log  # type: ignore[method-assign]
        self._server.prepare()  # binds and listens: a taken port fails here
        bound = self._server.bind_addr
        self.address = (str(bound[0]), int(bound[1]))

    def serve(self) -> None:
        self._server.serve()

    def shutdown(self) -> None:
        self._server.stop()


def _cheroot_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
    """cheroot's error log (stderr by default) into this module's logger; a client that
    hangs up is routine, so below WARNING it is DEBUG."""
    logger.log(
        level if level >= logging.WARNING else logging.DEBUG,
        "dashboard http %s",
        msg,
        exc_info=traceback,
    )


class _WsgirefBackend:
    name = "wsgiref"

    def __init__(self, host: str, port: int, app: Any) -> None:
        self._httpd = make_server(
            host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        bound = self._httpd.server_address
        self.address = (str(bound[0]), int(bound[1]))

    def serve(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the module logger at DEBUG, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("dashboard http %s", format % args)
