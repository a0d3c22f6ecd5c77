"""Fixtures for the chief's tests: storage, an in-process chief, a chief subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]


def study_yaml(name: str, **overrides: object) -> str:
    """A small study file: two parameters, random search, a tight budget."""
    budget = overrides.pop("budget", "{max_trials: 4, parallel_trials: 2}")
    lease = overrides.pop("lease_seconds", 30)
    metric = overrides.pop("metric", "{name: score, goal: maximize}")
    algorithm = overrides.pop("algorithm", "random")
    kt_lease = overrides.pop("keras_tuner_lease_seconds", None)
    assert not overrides, overrides
    text = textwrap.dedent(
        f"""\
        name: {name}
        metric: {metric}
        parameters:
          lr: {{type: double, min: 0.001, max: 0.1, scale: log}}
          units: {{type: integer, min: 4, max: 16}}
        budget: {budget}
        algorithm: {algorithm}
        lease_seconds: {lease}
        """
    )
    if kt_lease is not None:
        text += f"keras_tuner_lease_seconds: {kt_lease}\n"
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChiefProcess:
    """``python -m hpsearch.chief`` in a subprocess, killable and restartable."""

    def __init__(self, storage: str, study: str | None, port: int, log: Path) -> None:
        self.storage, self.study, self.port, self.log = storage, study, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ChiefProcess:
        cmd = [
            sys.executable,
            "-m",
            "hpsearch.chief",
            "--storage",
            self.storage,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--hold-seconds",
            "1",
        ]
        if self.study:
            cmd += ["--study", self.study]
        if self.proc is not None:
            # A restart: the previous chief (killed or not) may still hold the store's
            # fencing lease; an operator restarting a crashed chief fences it the same way.
            cmd += ["--takeover"]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
            )
        wait_serving(self.address, timeout, self.proc)
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def wait_serving(
    address: str, timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll the gRPC health service until it answers SERVING."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"the chief exited with {proc.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"chief at {address} not serving after {timeout}s")


@pytest.fixture
def chief_process(chief_storage: str, tmp_path: Path) -> Iterator[ChiefProcess]:
    """A factory-ish chief subprocess (not started); killed at the end of the test."""
    process = ChiefProcess(chief_storage, None, free_port(), tmp_path / "chief.log")
    try:
        yield process
    finally:
        process.kill()
