"""The chief's security and fencing flags, shared by ``hpsearch chief`` and
``python -m hpsearch.chief``.  Imports nothing heavy (the CLI loads it to build its parser).
"""

from __future__ import annotations

import argparse

#: How long the chief's fencing lease lasts; it is renewed every third of that.
DEFAULT_CHIEF_LEASE_SECONDS = 30.0


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    """The chief's security and fencing flags (``hpsearch chief`` and ``-m hpsearch.chief``)."""
    group = parser.add_argument_group("security (see deploy/README.md#security)")
    group.add_argument(
        "--tls-cert",
        default=None,
        help="serve TLS with this certificate (PEM; default $HPSEARCH_TLS_CERT_FILE)",
    )
    group.add_argument(
        "--tls-key",
        default=None,
        help="the certificate's private key (PEM; default $HPSEARCH_TLS_KEY_FILE)",
    )
    group.add_argument(
        "--tls-client-ca",
        default=None,
        help="mutual TLS: require client certificates signed by this CA (PEM; default "
        "$HPSEARCH_TLS_CLIENT_CA_FILE)",
    )
    group.add_argument(
        "--token-file",
        default=None,
        help="require this shared bearer token on every call but health (default "
        "$HPSEARCH_TOKEN, else the file in $HPSEARCH_TOKEN_FILE)",
    )
    group.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="also serve gRPC health alone on this port, plaintext and without a token "
        "(for kubelet probes when TLS or a token is on)",
    )
    group.add_argument(
        "--keras-tuner-port",
        type=int,
        default=None,
        help="also serve keras_tuner.Oracle on this port plaintext and WITHOUT a token, for "
        "stock Keras Tuner workers (they can send neither); private networks only",
    )
    group.add_argument(
        "--chief-lease-seconds",
        type=float,
        default=DEFAULT_CHIEF_LEASE_SECONDS,
        help="how long this chief's hold on the database lasts unless renewed (renewed "
        f"every third; default {DEFAULT_CHIEF_LEASE_SECONDS:g})",
    )
    group.add_argument(
        "--takeover",
        action="store_true",
        help="start even if another chief holds the database: fence it (it stops serving "
        "on its next lease renewal)",
    )


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """What the chief serves besides the oracle, and when it stops by itself."""
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


def security_options(args: argparse.Namespace) -> dict[str, object]:
    """``run_chief`` keyword arguments from :func:`add_security_arguments`' flags."""
    from hpsearch.security import ServerSecurity

    return {
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
        "dashboard_port": args.dashboard_port,
        "exit_when_done": args.exit_when_done,
    }


__all__ = [
    "DEFAULT_CHIEF_LEASE_SECONDS",
    "add_security_arguments",
    "add_serving_arguments",
    "security_options",
]
