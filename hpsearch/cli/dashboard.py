"""``hpsearch dashboard``: serve the study dashboard.  Imports nothing heavy at load time."""

from __future__ import annotations

import argparse
import sys

from hpsearch.cli.common import Subparsers, add_storage


def register(subparsers: Subparsers) -> None:
    """Add ``dashboard``."""
    parser = subparsers.add_parser(
        "dashboard",
        help="serve the study dashboard (read-only web UI and JSON API)",
        description="Serves a read-only web dashboard of every study in the store: history, "
        "parameter plots, trials, attempts and workers, updated live. The JSON API it reads "
        "is documented in docs/dashboard.md.",
    )
    add_storage(parser)
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 serves every interface)",
    )
    parser.add_argument(
        "--token-file",
        default=None,
        help="require 'Authorization: Bearer <token>' with the token in this file (default "
        "$HPSEARCH_TOKEN, else the file in $HPSEARCH_TOKEN_FILE; unset: no token)",
    )
    parser.add_argument(
        "--server",
        choices=("auto", "cheroot", "wsgiref"),
        default="auto",
        help="WSGI server (default auto: cheroot, from the dashboard extra; the standard "
        "library's wsgiref, not meant for production, only when cheroot is missing)",
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    """Serve until interrupted (Ctrl-C, or SIGTERM as a container stop sends); status 0."""
    import signal
    import threading

    from hpsearch.dashboard import serve_dashboard
    from hpsearch.security import read_token

    token = read_token(token_file=getattr(args, "token_file", None))
    # A signal only sets the event, wherever it lands: cheroot's worker threads are not
    # daemons, so a KeyboardInterrupt raised between the server's start and the stop below
    # (the main thread is slow to get there on a loaded machine) left the process hanging.
    interrupted = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        interrupted.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server = serve_dashboard(
            args.storage, args.host, args.port, token=token, server=args.server
        )
        try:
            print(
                f"hpsearch dashboard: {server.url} (read-only, served by {server.backend}; "
                "Ctrl-C stops)",
                file=sys.stderr,
                flush=True,
            )
            while not interrupted.is_set() and not server.wait(0.2):
                pass
        finally:
            server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
