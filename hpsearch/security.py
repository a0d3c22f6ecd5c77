"""Transport security of the chief: TLS, mutual TLS and a shared bearer token.

The chief (``hpsearch chief --tls-cert/--tls-key [--tls-client-ca] [--token-file]``) and
everything that talks to it (the worker, the Python :class:`~hpsearch.client.Client`, the
CLI) read the same settings, flags first, then the environment:

- ``HPSEARCH_TOKEN`` (the token itself) or ``HPSEARCH_TOKEN_FILE`` (a file holding it);
- ``HPSEARCH_TLS_CERT_FILE`` / ``HPSEARCH_TLS_KEY_FILE``: the chief's certificate and key;
- ``HPSEARCH_TLS_CLIENT_CERT_FILE`` / ``HPSEARCH_TLS_CLIENT_KEY_FILE``: a client's
  certificate and key for mutual TLS;
- ``HPSEARCH_TLS_CA_FILE``: the CA a client verifies the chief with;
- ``HPSEARCH_TLS_CLIENT_CA_FILE``: the CA the chief verifies client certificates with
  (mutual TLS: a client without a certificate signed by it fails the handshake).

The token is sent as ``authorization: Bearer <token>`` metadata and compared in constant
time.  The gRPC health service stays open (kubelet probes send no token).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from hpsearch.errors import InvalidArgumentError

logger = logging.getLogger(__name__)

TOKEN_ENV = "HPSEARCH_TOKEN"
TOKEN_FILE_ENV = "HPSEARCH_TOKEN_FILE"
TLS_CERT_ENV = "HPSEARCH_TLS_CERT_FILE"
TLS_KEY_ENV = "HPSEARCH_TLS_KEY_FILE"
TLS_CA_ENV = "HPSEARCH_TLS_CA_FILE"
TLS_CLIENT_CA_ENV = "HPSEARCH_TLS_CLIENT_CA_FILE"
TLS_CLIENT_CERT_ENV = "HPSEARCH_TLS_CLIENT_CERT_FILE"
TLS_CLIENT_KEY_ENV = "HPSEARCH_TLS_CLIENT_KEY_FILE"

HEALTH_PREFIX = "/grpc.health.v1.Health/"
UNAUTHENTICATED_MESSAGE = "missing or wrong bearer token: pass --token-file or set HPSEARCH_TOKEN"


def read_token(
    token: str | None = None,
    token_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str | None:
    """The shared token: ``token``, else ``token_file``'s content, else ``$HPSEARCH_TOKEN``,
    else ``$HPSEARCH_TOKEN_FILE``'s content; None when none is set.  Whitespace around the
    token (a trailing newline in a file) is dropped."""
    env = os.environ if env is None else env
    if token is None and token_file is None:
        token = env.get(TOKEN_ENV) or None
        if token is None:
            token_file = env.get(TOKEN_FILE_ENV) or None
    if token is None and token_file is not None:
        token = _read_text(token_file, "token file (--token-file / HPSEARCH_TOKEN_FILE)")
    if token is None:
        return None
    token = token.strip()
    if not token:
        raise InvalidArgumentError(
            "the bearer token is empty; put a secret in the token file (e.g. "
            "`openssl rand -hex 32 > token`) or leave the token unset"
        )
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
        raise InvalidArgumentError(
            "the bearer token must be printable ASCII without spaces (it travels in a gRPC "
            "header); e.g. `openssl rand -hex 32`"
        )
    return token


def env_path(value: str | os.PathLike[str] | None, variable: str) -> str | None:
    """``value`` if given, else the path in environment ``variable`` (None if unset)."""
    if value is not None:
        return os.fspath(value)
    return os.environ.get(variable) or None


@dataclass(frozen=True)
class ServerSecurity:
    """What the chief enforces: a token, TLS (cert + key), mutual TLS (client CA)."""

    token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidArgumentError(
                "TLS needs both a certificate and its key: pass --tls-cert and --tls-key"
            )
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise InvalidArgumentError(
                "--tls-client-ca (mutual TLS) needs TLS on: pass --tls-cert and --tls-key too"
            )

    @classmethod
    def from_options(
        cls,
        *,
        token: str | None = None,
        token_file: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_client_ca: str | None = None,
    ) -> ServerSecurity:
        """Flags first, then the ``HPSEARCH_*`` environment (see the module docstring)."""
        return cls(
            token=read_token(token, token_file),
            tls_cert=env_path(tls_cert, TLS_CERT_ENV),
            tls_key=env_path(tls_key, TLS_KEY_ENV),
            tls_client_ca=env_path(tls_client_ca, TLS_CLIENT_CA_ENV),
        )

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS credentials for the chief's port, None for plaintext."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        cert = _read_bytes(self.tls_cert, "--tls-cert")
        key = _read_bytes(self.tls_key, "--tls-key")
        client_ca = (
            None
            if self.tls_client_ca is None
            else _read_bytes(self.tls_client_ca, "--tls-client-ca")
        )
        return grpc.ssl_server_credentials(
            [(key, cert)],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )

    def warn_if_open(self, host: str, what: str = "chief") -> None:
        """A loud warning when a non-loopback address is served without TLS or a token."""
        if self.tls or self.token or is_loopback(host):
            return
        logger.warning(
            "SECURITY WARNING: the %s listens on %s with neither TLS nor a bearer token: "
            "anyone who can reach the port can read and change every study. Pass "
            "--token-file (and --tls-cert/--tls-key), or bind 127.0.0.1 on a private network",
            what,
            host or "0.0.0.0",
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``authorization`` value is ``Bearer <token>`` (constant-time compare)."""
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


class RequestGuard(grpc.ServerInterceptor):
    """Every RPC but health: check the bearer token (when one is set), then parse the
    request here so that a malformed message is INVALID_ARGUMENT, not gRPC's INTERNAL.

    The guarded handler of a method is built once and reused (this runs on every call:
    the chief's hot path); the token is checked inside it, from the call's metadata.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token
        self._guarded: dict[str, grpc.RpcMethodHandler | None] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = handler_call_details.method
        try:
            return self._guarded[method]
        except KeyError:
            pass
        handler = continuation(handler_call_details)
        guarded = self._guard(method, handler)
        if handler is not None and len(self._guarded) < 256:  # unknown methods: not kept
            self._guarded[method] = guarded
        return guarded

    def _guard(
        self, method: str, handler: grpc.RpcMethodHandler | None
    ) -> grpc.RpcMethodHandler | None:
        if method.startswith(HEALTH_PREFIX) or handler is None:
            return handler
        if handler.request_streaming or handler.response_streaming or handler.unary_unary is None:
            return handler  # hpsearch serves unary calls only
        token = self._token
        behaviour = handler.unary_unary
        parse = handler.request_deserializer

        def guarded(raw: Any, context: grpc.ServicerContext) -> Any:
            if token is not None and not any(
                key == "authorization" and bearer_matches(str(value), token)
                for key, value in context.invocation_metadata() or ()
            ):
                logger.info("rpc refused method=%s code=UNAUTHENTICATED", method)
                context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)
            try:
                request = parse(raw) if parse is not None else raw
            except Exception as error:
                logger.info("rpc refused method=%s malformed request: %s", method, error)
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"malformed request for {method}: not a valid protobuf message of the "
                    "expected type",
                )
            return behaviour(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded, request_deserializer=None, response_serializer=handler.response_serializer
        )


class _BearerToken(grpc.UnaryUnaryClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call of a channel."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        metadata = (*(client_call_details.metadata or ()), self._header)
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
            client_call_details.compression,
        )
        return continuation(details, request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: tuple[tuple[str, str | bytes], ...],
        credentials: Any,
        wait_for_ready: bool | None,
        compression: Any,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def client_channel(
    address: str,
    *,
    token: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> grpc.Channel:
    """A channel to the chief: TLS when ``tls_ca`` or a client certificate is given (the
    chief is verified against ``tls_ca``, else the system roots), the bearer token on every
    call when ``token`` is set."""
    if (tls_cert is None) != (tls_key is None):
        raise InvalidArgumentError(
            "a client certificate needs its key: pass both --tls-cert and --tls-key"
        )
    if tls_ca is None and tls_cert is None:
        channel = grpc.insecure_channel(address, options=options)
    else:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=None if tls_ca is None else _read_bytes(tls_ca, "--tls-ca"),
            private_key=None if tls_key is None else _read_bytes(tls_key, "--tls-key"),
            certificate_chain=None if tls_cert is None else _read_bytes(tls_cert, "--tls-cert"),
        )
        channel = grpc.secure_channel(address, credentials, options=options)
    if token is not None:
        channel = grpc.intercept_channel(channel, _BearerToken(token))
    return channel


def _read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(
            f"cannot read {what} {os.fspath(path)!r}: {exc.strerror}"
        ) from None


def _read_text(path: str | os.PathLike[str], what: str) -> str:
    return _read_bytes(path, what).decode("utf-8", errors="replace")


__all__ = [
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "TLS_CA_ENV",
    "TLS_CERT_ENV",
    "TLS_CLIENT_CA_ENV",
    "TLS_CLIENT_CERT_ENV",
    "TLS_CLIENT_KEY_ENV",
    "TLS_KEY_ENV",
    "RequestGuard",
    "ServerSecurity",
    "bearer_matches",
    "client_channel",
    "env_path",
    "is_loopback",
    "read_token",
]
