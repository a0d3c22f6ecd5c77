"""The study dashboard: a read-only web UI and JSON API over the study store.

Importing this package is cheap (``hpsearch dashboard``, in :mod:`hpsearch.cli.dashboard`,
calls :func:`serve_dashboard`); the server, the queries and SQLAlchemy load on first use.
Rooms: ``server`` (HTTP), ``app`` (routes, JSON), ``queries`` (the read model: runs the
statements of :mod:`hpsearch.store.reads`, caches per study revision), ``analysis``
(pure: best so far, parameter importances, curves).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.dashboard.server import DashboardServer

__all__ = ["serve_dashboard"]


def serve_dashboard(
    store_or_url: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    token: str | None = None,
    server: str = "auto",
) -> DashboardServer:
    """Serve the dashboard of a Store (or storage URL) on ``host:port`` in a background
    thread; returns the running server with ``.url``, ``.backend`` and ``.stop()``.
    ``port=0`` picks a free port.  With ``token``, requests need ``Authorization: Bearer
    <token>``.  ``server``: ``auto`` (cheroot, else wsgiref), ``cheroot`` or ``wsgiref``."""
    from hpsearch.dashboard.server import serve_dashboard as serve

    return serve(store_or_url, host, port, token=token, server=server)
