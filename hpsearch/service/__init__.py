"""gRPC adapters over the oracle: ``keras_tuner.Oracle``, ``hpsearch.v1`` and health.

:func:`build_server` puts all three on one port.  The servicers are thin: decode the
request, call the oracle, encode the answer; domain errors become status codes in
:mod:`hpsearch.service.errors` only.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hpsearch.errors import FailedPreconditionError
from hpsearch.oracle import Oracle
from hpsearch.protos import keras_tuner_service_pb2_grpc, study_service_pb2_grpc
from hpsearch.service.keras_tuner import KerasTunerServicer
from hpsearch.service.study_service import StudyServicer

MAX_RECEIVE_BYTES = 4 * 1024 * 1024
MAX_SEND_BYTES = 16 * 1024 * 1024
SERVICE_NAMES = ("keras_tuner.Oracle", "hpsearch.v1.StudyService")


@dataclass
class Server:
    """A started-or-not gRPC server with its health servicer."""

    grpc_server: grpc.Server
    health: health.HealthServicer
    port: int

    def start(self) -> None:
        self.grpc_server.start()
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None = 5.0) -> threading.Event:
        """Answer NOT_SERVING, refuse new calls and give in-flight ones up to ``grace``
        seconds; the returned event is set once the server has stopped."""
        self.health.enter_graceful_shutdown()
        return self.grpc_server.stop(grace)


def build_server(
    oracle: Oracle,
    *,
    study: str | None,
    host: str = "0.0.0.0",
    port: int = 8000,
    max_workers: int = 64,
) -> Server:
    """A server on ``host:port`` (port 0 picks a free one) serving every hpsearch service."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hpsearch-rpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    keras_tuner_service_pb2_grpc.add_OracleServicer_to_server(
        KerasTunerServicer(oracle, study), server
    )
    study_service_pb2_grpc.add_StudyServiceServicer_to_server(StudyServicer(oracle), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        bound = server.add_insecure_port(f"{_bracket(host)}:{port}")
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise FailedPreconditionError(
            f"cannot listen on {host}:{port}; is another chief running there? pick --port"
        )
    return Server(server, health_servicer, bound)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


__all__ = ["MAX_RECEIVE_BYTES", "MAX_SEND_BYTES", "Server", "build_server"]
