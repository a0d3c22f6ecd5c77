"""Serving the dashboard: a threaded stdlib WSGI server in a background thread.

``serve_dashboard(store_or_url, host, port)`` returns at once with a running server;
``hpsearch dashboard`` blocks on it, ``hpsearch chief --dashboard-port`` runs it beside
the oracle.  No web framework is needed: the app is a plain WSGI callable and
``wsgiref`` with one thread per request serves it.
"""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy import Engine

from hpsearch.dashboard.app import DashboardApp
from hpsearch.errors import StorageError
from hpsearch.security import bearer_matches, is_loopback

logger = logging.getLogger(__name__)


class DashboardServer:
    """A dashboard being served; ``url`` is where to open it, ``stop()`` ends it."""

    def __init__(self, httpd: WSGIServer, app: DashboardApp, owned: Any = None) -> None:
        self._httpd = httpd
        self.app = app
        self._owned = owned  # a Store this server opened itself and closes on stop
        host, port = httpd.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        self.url = f"http://{shown}:{self.port}/"
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name=f"hpsearch-dashboard-{self.port}",
            daemon=True,
        )
        self._stopped = threading.Event()

    def start(self) -> DashboardServer:
        self._thread.start()
        logger.info("dashboard serving url=%s", self.url)
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (or ``timeout`` passes); True once stopped."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        """Stop serving and close the listening socket (and a store it opened itself)."""
        if self._stopped.is_set():
            return
        self._httpd.shutdown()
        self._httpd.server_close()
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
    store_or_url: Any, host: str = "127.0.0.1", port: int = 8080, *, token: str | None = None
) -> DashboardServer:
    """Serve the dashboard of a store (a :class:`hpsearch.store.Store`, or a storage URL
    that is opened here) on ``host:port`` from a background thread; ``port=0`` picks a
    free port.  Returns the running server (``.url``, ``.stop()``).

    With ``token`` every request needs ``Authorization: Bearer <token>`` (401 otherwise).
    StorageError when the port is taken or the database cannot be opened.
    """
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
        httpd = make_server(
            host, port, served, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        if owned is not None:
            owned.close()
        raise StorageError(
            f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}; "
            "pick another --port (or --port 0 for any free one)"
        ) from exc
    return DashboardServer(httpd, app, owned).start()


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


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    """Request lines go to the module logger at DEBUG, not to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("dashboard http %s", format % args)
