"""``hpsearch chief`` and ``python -m hpsearch.chief``: the chief's flags, defined once.

``python -m hpsearch.chief`` (run by tests, benchmarks and older deployments) takes the same
flags plus two of its own, ``--hold-seconds`` and ``--log-level``, and logs a refusal to
start instead of printing it.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

from hpsearch.cli.common import EXIT_USAGE, LOG_FORMAT, Subparsers, add_storage
from hpsearch.errors import HpsearchError

#: ``hpsearch.chief``'s default, repeated so that building the parser does not load the
#: chief (the oracle, gRPC and SQLAlchemy); tests/cli checks that the two agree.
DEFAULT_CHIEF_LEASE_SECONDS = 30.0

log = logging.getLogger(__name__)


def register(subparsers: Subparsers) -> None:
    """Add ``chief``."""
    parser = subparsers.add_parser(
        "chief",
        help="run the oracle: Keras Tuner's gRPC service and hpsearch.v1",
        description="Serves keras_tuner.Oracle (stock Keras Tuner workers), hpsearch.v1 "
        "(hpsearch workers and clients) and gRPC health on one port.",
    )
    add_chief_arguments(parser)
    parser.set_defaults(func=_run)


def main_module(argv: Sequence[str] | None = None) -> int:
    """``python -m hpsearch.chief``: the chief without the rest of the CLI."""
    import hpsearch.chief
    from hpsearch.oracle import DEFAULT_HOLD_SECONDS

    parser = argparse.ArgumentParser(
        prog="python -m hpsearch.chief", description=hpsearch.chief.__doc__
    )
    add_chief_arguments(parser)
    parser.add_argument("--hold-seconds", type=float, default=DEFAULT_HOLD_SECONDS)
    parser.add_argument("--log-level", default=os.environ.get("HPSEARCH_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO), format=LOG_FORMAT
    )
    try:
        hpsearch.chief.run_chief(hold_seconds=args.hold_seconds, **_chief_options(args))
    except HpsearchError as error:
        log.error("%s", error)
        return EXIT_USAGE
    return 0


def add_chief_arguments(parser: argparse.ArgumentParser) -> None:
    """Every flag of the chief: where it serves, its study, what else it serves, security."""
    add_storage(parser)
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    parser.add_argument(
        "--study",
        default=None,
        help="study file to create (or resume) or name of an existing study; it is the one "
        "Keras Tuner workers get (they send no study name)",
    )
    parser.add_argument(
        "--dashboard-port",
        type=int,
        default=None,
        help="also serve the web dashboard on this port (read-only; same token)",
    )
    parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit once the --study is finished (e.g. as workerpool0 of a Vertex AI "
        "CustomJob, which ends when that process exits)",
    )
    security = parser.add_argument_group("security (see deploy/README.md#security)")
    security.add_argument(
        "--tls-cert",
        default=None,
        help="serve TLS with this certificate (PEM; default $HPSEARCH_TLS_CERT_FILE)",
    )
    security.add_argument(
        "--tls-key",
        default=None,
        help="the certificate's private key (PEM; default $HPSEARCH_TLS_KEY_FILE)",
    )
    security.add_argument(
        "--tls-client-ca",
        default=None,
        help="mutual TLS: require client certificates signed by this CA (PEM; default "
        "$HPSEARCH_TLS_CLIENT_CA_FILE)",
    )
    security.add_argument(
        "--token-file",
        default=None,
        help="require this shared bearer token on every call but health (default "
        "$HPSEARCH_TOKEN, else the file in $HPSEARCH_TOKEN_FILE)",
    )
    security.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="also serve gRPC health alone on this port, plaintext and without a token "
        "(for kubelet probes when TLS or a token is on)",
    )
    security.add_argument(
        "--keras-tuner-port",
        type=int,
        default=None,
        help="also serve keras_tuner.Oracle on this port plaintext and WITHOUT a token, for "
        "stock Keras Tuner workers (they can send neither); private networks only",
    )
    security.add_argument(
        "--chief-lease-seconds",
        type=float,
        default=DEFAULT_CHIEF_LEASE_SECONDS,
        help="how long this chief's hold on the database lasts unless renewed (renewed "
        f"every third; default {DEFAULT_CHIEF_LEASE_SECONDS:g})",
    )
    security.add_argument(
        "--takeover",
        action="store_true",
        help="start even if another chief holds the database: fence it (it stops serving "
        "on its next lease renewal)",
    )
    security.add_argument(
        "--wait-for-lease",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="when another chief holds the database, wait for its lease to expire (a "
        "crashed chief's does within --chief-lease-seconds; a live chief renews it and this "
        "one stands by), then serve (default); --no-wait-for-lease exits with status 2 at "
        "once instead",
    )


def _run(args: argparse.Namespace) -> int:
    from hpsearch.chief import run_chief

    run_chief(**_chief_options(args))
    return 0


def _chief_options(args: argparse.Namespace) -> dict[str, Any]:
    """``run_chief`` keyword arguments from :func:`add_chief_arguments`' flags."""
    from hpsearch.security import ServerSecurity

    return {
        "port": args.port,
        "host": args.host,
        "storage": args.storage,
        "study": args.study,
        "security": ServerSecurity.from_options(
            token_file=args.token_file,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
        ),
        "health_port": args.health_port,
        "keras_tuner_port": args.keras_tuner_port,
        "chief_lease_seconds": args.chief_lease_seconds,
        "takeover": args.takeover,
        "wait_for_lease": args.wait_for_lease,
        "dashboard_port": args.dashboard_port,
        "exit_when_done": args.exit_when_done,
    }
