"""gRPC adapters over the oracle: ``keras_tuner.Oracle``, ``hpsearch.v1`` and health.

:func:`build_server` puts all three on one port (TLS and a bearer token optional, see
:mod:`hpsearch.security`; health is never guarded), and optionally health alone and
``keras_tuner.Oracle`` alone on plaintext side ports.  Every call but health passes
:class:`hpsearch.security.RequestGuard` (token check, then parsing: a malformed message is
INVALID_ARGUMENT).  The servicers are thin: decode the request, call the oracle, encode the
answer; domain errors become status codes in :mod:`hpsearch.service.errors` only.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hpsearch.errors import FailedPreconditionError
from hpsearch.oracle import Oracle
from hpsearch.protos import keras_tuner_service_pb2_grpc, study_service_pb2_grpc
from hpsearch.security import RequestGuard, ServerSecurity
from hpsearch.service.holds import HoldSlots
from hpsearch.service.keras_tuner import KerasTunerServicer
from hpsearch.service.study_service import StudyServicer
from hpsearch.wire import MAX_RECEIVE_BYTES, MAX_SEND_BYTES

SERVICE_NAMES = ("keras_tuner.Oracle", "hpsearch.v1.StudyService")


@dataclass
class Server:
    """A started-or-not gRPC server with its health servicer, and the plaintext side
    servers (health-only, Keras-Tuner-only) that share that health servicer."""

    grpc_server: grpc.Server
    health: health.HealthServicer
    port: int
    side_servers: list[grpc.Server] = field(default_factory=list)
    health_port: int | None = None
    keras_tuner_port: int | None = None

    def start(self) -> None:
        self.grpc_server.start()
        for side in self.side_servers:
            side.start()
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None = 5.0) -> threading.Event:
        """Answer NOT_SERVING, refuse new calls and give in-flight ones up to ``grace``
        seconds; the returned event is set once every server has stopped."""
        self.health.enter_graceful_shutdown()
        events = [self.grpc_server.stop(grace)] + [s.stop(grace) for s in self.side_servers]
        if len(events) == 1:
            return events[0]
        done = threading.Event()

        def wait_all() -> None:
            for event in events:
                event.wait()
            done.set()

        threading.Thread(target=wait_all, name="hpsearch-server-stop", daemon=True).start()
        return done


def build_server(
    oracle: Oracle,
    *,
    study: str | None,
    host: str = "0.0.0.0",
    port: int = 8000,
    max_workers: int = 64,
    security: ServerSecurity | None = None,
    health_port: int | None = None,
    keras_tuner_port: int | None = None,
) -> Server:
    """A server on ``host:port`` (port 0 picks a free one) serving every hpsearch service.

    ``security`` adds TLS (mutual when it has a client CA) and a bearer token on every
    service but health.  ``health_port`` serves gRPC health alone, plaintext and without a
    token (kubelet probes); ``keras_tuner_port`` serves ``keras_tuner.Oracle`` (and health)
    plaintext and without a token, for stock Keras Tuner workers, which can do neither.
    """
    security = security or ServerSecurity()
    server = _grpc_server(max_workers, [RequestGuard(security.token)])
    # One budget of held calls for both services and the Keras Tuner side port (each port
    # has its own max_workers threads, so the main port always keeps a quarter free).
    holds = HoldSlots.for_threads(max_workers)
    keras_tuner = KerasTunerServicer(oracle, study, holds)
    keras_tuner_service_pb2_grpc.add_OracleServicer_to_server(keras_tuner, server)
    study_service_pb2_grpc.add_StudyServiceServicer_to_server(StudyServicer(oracle, holds), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = _bind(server, host, port, security.server_credentials(), "--port")
    built = Server(server, health_servicer, bound)
    if health_port is not None:
        side = _grpc_server(4, [])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, side)
        built.health_port = _bind(side, host, health_port, None, "--health-port")
        built.side_servers.append(side)
    if keras_tuner_port is not None:
        side = _grpc_server(max_workers, [RequestGuard(None)])
        keras_tuner_service_pb2_grpc.add_OracleServicer_to_server(keras_tuner, side)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, side)
        built.keras_tuner_port = _bind(side, host, keras_tuner_port, None, "--keras-tuner-port")
        built.side_servers.append(side)
    return built


def _grpc_server(max_workers: int, interceptors: list[grpc.ServerInterceptor]) -> grpc.Server:
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hpsearch-rpc"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )


def _bind(
    server: grpc.Server,
    host: str,
    port: int,
    credentials: grpc.ServerCredentials | None,
    flag: str,
) -> int:
    address = f"{_bracket(host)}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise FailedPreconditionError(
            f"cannot listen on {host}:{port}; is another chief running there? pick {flag}"
        )
    return bound


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["Server", "build_server"]
