"""The bearer token and TLS on the chief's port: who gets in, who is refused, and that a
refused call writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.errors import StorageError, UnauthenticatedError
from hpsearch.protos import keras_tuner_service_pb2 as kt_pb2
from hpsearch.protos import keras_tuner_service_pb2_grpc as kt_grpc
from hpsearch.protos import study_service_pb2 as pb2
from hpsearch.protos import study_service_pb2_grpc as pb2_grpc
from hpsearch.security import UNAUTHENTICATED_MESSAGE, ServerSecurity

from .conftest import TOKEN, Pki, dump_store, study_text

STUDY = study_text("guarded", max_trials=4, parallel_trials=2)

StartChief = Callable[..., Chief]


def client(chief: Chief, **kwargs: object) -> Client:
    return Client(chief.address, timeout=5.0, wait_seconds=0.5, retry_seconds=0, **kwargs)  # type: ignore[arg-type]


def test_token_required_on_both_services_and_nothing_written(
    start_chief: StartChief, storage_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPSEARCH_TOKEN", raising=False)
    monkeypatch.delenv("HPSEARCH_TOKEN_FILE", raising=False)
    chief = start_chief(ServerSecurity(token=TOKEN))
    with client(chief, token=TOKEN) as good:
        good.create_study(STUDY)
        trial = good.ask("guarded", "w-good")[0]
    before = dump_store(storage_url)
    for kwargs in ({}, {"token": "wrong-" + TOKEN}, {"token": TOKEN[:-1]}):
        with client(chief, **kwargs) as bad:
            with pytest.raises(UnauthenticatedError, match="missing or wrong bearer token"):
                bad.create_study(STUDY.replace("guarded", "intruder"))
            with pytest.raises(UnauthenticatedError):
                bad.ask("guarded", "w-bad")
            with pytest.raises(UnauthenticatedError):
                bad.tell("guarded", trial.number, trial.attempt, value=1.0)
            with pytest.raises(UnauthenticatedError):
                bad.list_studies()
    # keras_tuner.Oracle is guarded the same way (stock Keras Tuner sends no token).
    with grpc.insecure_channel(chief.address) as channel:
        stub = kt_grpc.OracleStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.CreateTrial(kt_pb2.CreateTrialRequest(tuner_id="kt"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert refused.value.details() == UNAUTHENTICATED_MESSAGE
        # ... while health stays open for probes.
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert dump_store(storage_url) == before


def test_token_from_file_and_environment(
    start_chief: StartChief, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.delenv("HPSEARCH_TOKEN", raising=False)
    monkeypatch.setenv("HPSEARCH_TOKEN_FILE", str(token_file))
    chief = start_chief(ServerSecurity.from_options())
    assert chief.security.token == TOKEN
    with client(chief) as from_env:  # the client reads the same variable
        assert from_env.list_studies() == []
    monkeypatch.delenv("HPSEARCH_TOKEN_FILE")
    with client(chief) as without, pytest.raises(UnauthenticatedError):
        without.list_studies()
    with client(chief, token_file=str(token_file)) as from_file:
        assert from_file.list_studies() == []


def test_tls_with_token_happy_path(
    start_chief: StartChief, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HPSEARCH_TOKEN", raising=False)
    monkeypatch.delenv("HPSEARCH_TOKEN_FILE", raising=False)
    security = ServerSecurity(
        token=TOKEN, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)
    )
    chief = start_chief(security)
    with Client(
        f"localhost:{chief.port}", token=TOKEN, tls_ca=str(pki.ca), retry_seconds=0
    ) as secure:
        secure.create_study(STUDY)
        trial = secure.ask("guarded", "w1")[0]
        done = secure.tell("guarded", trial.number, trial.attempt, value=0.5)
        assert done.value == 0.5
    # TLS without the token is still refused; plaintext cannot talk to a TLS port.
    address = f"localhost:{chief.port}"
    with (
        Client(address, tls_ca=str(pki.ca), retry_seconds=0) as no_token,
        pytest.raises(UnauthenticatedError),
    ):
        no_token.list_studies()
    with (
        Client(address, token=TOKEN, retry_seconds=0, timeout=3) as plain,
        pytest.raises(StorageError),  # UNAVAILABLE: the handshake fails
    ):
        plain.list_studies()


def test_mutual_tls_refuses_foreign_and_missing_client_certificates(
    start_chief: StartChief, pki: Pki, storage_url: str
) -> None:
    security = ServerSecurity(
        tls_cert=str(pki.server_cert),
        tls_key=str(pki.server_key),
        tls_client_ca=str(pki.ca),
    )
    chief = start_chief(security)
    address = f"localhost:{chief.port}"
    with Client(
        address,
        tls_ca=str(pki.ca),
        tls_cert=str(pki.client_cert),
        tls_key=str(pki.client_key),
        retry_seconds=0,
    ) as trusted:
        trusted.create_study(STUDY)
    before = dump_store(storage_url)
    foreign: dict[str, Any] = {"tls_cert": str(pki.rogue_cert), "tls_key": str(pki.rogue_key)}
    for kwargs in (foreign, {}):
        with Client(address, tls_ca=str(pki.ca), retry_seconds=0, timeout=3, **kwargs) as bad:
            with pytest.raises(StorageError):  # UNAVAILABLE: handshake failure
                bad.create_study(STUDY.replace("guarded", "intruder"))
            with pytest.raises(StorageError):
                bad.ask("guarded", "intruder")
    assert dump_store(storage_url) == before


def test_health_port_is_plaintext_and_open_while_the_main_port_is_tls(
    start_chief: StartChief, pki: Pki
) -> None:
    security = ServerSecurity(
        token=TOKEN, tls_cert=str(pki.server_cert), tls_key=str(pki.server_key)
    )
    chief = start_chief(security, health_port=0)
    assert chief.server is not None and chief.server.health_port
    with grpc.insecure_channel(f"127.0.0.1:{chief.server.health_port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "hpsearch.v1.StudyService", "keras_tuner.Oracle"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        studies = pb2_grpc.StudyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as only_health:
            studies.ListStudies(pb2.ListStudiesRequest(), timeout=5)
        assert only_health.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_keras_tuner_port_serves_stock_workers_without_token(
    start_chief: StartChief, tmp_path: Path
) -> None:
    study_file = tmp_path / "guarded.yaml"
    study_file.write_text(STUDY)
    chief = start_chief(ServerSecurity(token=TOKEN), study=str(study_file), keras_tuner_port=0)
    assert chief.server is not None and chief.server.keras_tuner_port
    with grpc.insecure_channel(f"127.0.0.1:{chief.server.keras_tuner_port}") as channel:
        oracle = kt_grpc.OracleStub(channel)
        reply = oracle.CreateTrial(kt_pb2.CreateTrialRequest(tuner_id="kt-1"), timeout=10)
        assert reply.trial.trial_id == "0"
        studies = pb2_grpc.StudyServiceStub(channel)  # hpsearch.v1 is not served there
        with pytest.raises(grpc.RpcError) as absent:
            studies.ListStudies(pb2.ListStudiesRequest(), timeout=5)
        assert absent.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_open_non_loopback_chief_warns(storage_url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"), Chief(storage_url, host="0.0.0.0", port=0):
        pass
    assert any("SECURITY WARNING" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with (
        caplog.at_level("WARNING"),
        Chief(storage_url, host="0.0.0.0", port=0, security=ServerSecurity(token=TOKEN)),
    ):
        pass
    assert not any("SECURITY WARNING" in r.getMessage() for r in caplog.records)


def test_cli_chief_with_tls_token_and_health_port(
    storage_url: str, pki: Pki, tmp_path: Path
) -> None:
    """`hpsearch chief` wires the flags: probes on the plaintext health port, clients need
    the CA and the token."""
    import os
    import subprocess
    import sys

    from tests.chief.conftest import free_port, wait_serving

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    port, health_port = free_port(), free_port()
    log = tmp_path / "chief.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_T")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hpsearch",
                "chief",
                "--storage",
                storage_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--health-port",
                str(health_port),
                "--tls-cert",
                str(pki.server_cert),
                "--tls-key",
                str(pki.server_key),
                "--token-file",
                str(token_file),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_serving(f"127.0.0.1:{health_port}", 30, proc)
        address = f"localhost:{port}"
        with Client(address, token=TOKEN, tls_ca=str(pki.ca), retry_seconds=0) as good:
            assert good.create_study(STUDY).name == "guarded"
        with (
            Client(address, tls_ca=str(pki.ca), retry_seconds=0) as bad,
            pytest.raises(UnauthenticatedError),
        ):
            bad.list_studies()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, log.read_text()
