"""Fixtures for the security tests: a throwaway PKI, secured chiefs, store dumps."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, text

from hpsearch.chief import Chief
from hpsearch.security import ServerSecurity
from hpsearch.store import normalize_url

TOKEN = "s3cret-token-0123456789abcdef"
DUMPED_TABLES = ("studies", "trials", "trial_attempts", "measurements", "workers")


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, the chief's certificate (localhost, 127.0.0.1), a client
    certificate from that CA, and a client certificate from another CA."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path
    rogue_cert: Path
    rogue_key: Path


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("hpsearch test CA")
    rogue_ca_key, rogue_ca_cert = _ca("some other CA")
    server_key, server_cert = _leaf("localhost", ca_key, ca_cert, server=True)
    client_key, client_cert = _leaf("worker-1", ca_key, ca_cert, server=False)
    rogue_key, rogue_cert = _leaf("intruder", rogue_ca_key, rogue_ca_cert, server=False)
    files = {
        "ca": _cert_pem(ca_cert),
        "server_cert": _cert_pem(server_cert),
        "server_key": _key_pem(server_key),
        "client_cert": _cert_pem(client_cert),
        "client_key": _key_pem(client_key),
        "rogue_ca": _cert_pem(rogue_ca_cert),
        "rogue_cert": _cert_pem(rogue_cert),
        "rogue_key": _key_pem(rogue_key),
    }
    paths = {}
    for name, data in files.items():
        path = directory / f"{name}.pem"
        path.write_bytes(data)
        paths[name] = path
    return Pki(**paths)


@pytest.fixture
def start_chief(storage_url: str) -> Iterator[Callable[..., Chief]]:
    """Start in-process chiefs on ``storage_url`` (port 0, loopback); stopped afterwards."""
    started: list[Chief] = []

    def start(security: ServerSecurity | None = None, **kwargs: Any) -> Chief:
        options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "hold_seconds": 0.5}
        options.update(kwargs)
        chief = Chief(storage_url, security=security, **options)
        chief.start()
        started.append(chief)
        return chief

    try:
        yield start
    finally:
        for chief in reversed(started):
            chief.stop(0)


def study_text(name: str, *, max_trials: int, parallel_trials: int) -> str:
    """A study file's text: one log-scale double, random search."""
    return (
        f"name: {name}\n"
        "metric: {name: score, goal: maximize}\n"
        "parameters:\n"
        "  lr: {type: double, min: 0.001, max: 0.1, scale: log}\n"
        f"budget: {{max_trials: {max_trials}, parallel_trials: {parallel_trials}}}\n"
        "algorithm: random\n"
    )


def dump_store(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the study tables, for before/after comparisons."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return {
                table: [
                    tuple(row) for row in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))
                ]
                for table in DUMPED_TABLES
            }
    finally:
        engine.dispose()


def _ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    name: str, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, *, server: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = (
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        if server
        else (x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
