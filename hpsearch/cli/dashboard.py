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
    """Serve until interrupted (Ctrl-C); exit status 0."""
    from hpsearch.dashboard import serve_dashboard
    from hpsearch.security import read_token

    token = read_token(token_file=getattr(args, "token_file", None))
    server = serve_dashboard(args.storage, args.host, args.port, token=token, server=args.server)
    # From here on a Ctrl-C, wherever it lands, stops the server: cheroot's worker threads
    # are not daemons, so a KeyboardInterrupt that skipped stop() left the process hanging.
    try:
        print(
            f"hpsearch dashboard: {server.url} (read-only, served by {server.backend}; "
            "Ctrl-C stops)",
            file=sys.stderr,
            flush=True,
        )
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
