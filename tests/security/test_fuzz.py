"""Hostile input against a running chief: malformed protobufs and fuzzed field values on
every RPC of ``keras_tuner.Oracle`` and ``hpsearch.v1.StudyService``.

Every answer is a clear status (never UNKNOWN or INTERNAL), the chief keeps serving, and a
refused call leaves the store exactly as it was.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.protos import keras_tuner_service_pb2 as kt_pb2
from hpsearch.protos import study_service_pb2 as pb2
from hpsearch.security import ServerSecurity

from .conftest import TOKEN, dump_store

STUDY = """\
name: fz
metric: {name: score, goal: maximize}
parameters:
  lr: {type: double, min: 0.001, max: 0.1, scale: log}
  units: {type: integer, min: 4, max: 16}
  act: {type: categorical, values: [relu, tanh]}
budget: {max_trials: 1000, parallel_trials: 1000}
algorithm: random
lease_seconds: 600
"""
ALLOWED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNAUTHENTICATED,
}
AUTH = (("authorization", f"Bearer {TOKEN}"),)
EXAMPLES = int(os.environ.get("HPSEARCH_FUZZ_EXAMPLES", "60"))


def _methods() -> list[tuple[str, type[Message]]]:
    methods = []
    for module in (pb2, kt_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                request = getattr(module, method.input_type.name, None)
                if request is None:  # the input type lives in an imported file
                    continue
                methods.append((f"/{service.full_name}/{method.name}", request))
    return methods


METHODS = _methods()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def fuzz_chief(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Chief, str]]:
    """A token-protected chief with a study and one running trial, once per back end."""
    directory = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'fuzz.db'}"
    else:
        url = str(request.getfixturevalue("module_postgres_url"))
    study_file = Path(directory / "fz.yaml")
    study_file.write_text(STUDY)
    chief = Chief(
        url,
        study=str(study_file),
        host="127.0.0.1",
        port=0,
        hold_seconds=0.2,
        security=ServerSecurity(token=TOKEN),
    )
    chief.start()
    try:
        with Client(chief.address, token=TOKEN, retry_seconds=0, wait_seconds=0.2) as client:
            client.ask("fz", "w")  # trial 0, attempt 1, RUNNING for worker "w"
        yield chief, url
    finally:
        chief.stop(0)


@pytest.fixture(scope="module")
def channel(fuzz_chief: tuple[Chief, str]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fuzz_chief[0].address) as opened:
        yield opened


def call(channel: grpc.Channel, method: str, payload: bytes, *, token: bool = True) -> Any:
    """Send raw bytes to ``method``; the status code (OK or the failure's)."""
    rpc = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        rpc(payload, timeout=10, metadata=AUTH if token else None)
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def check(
    channel: grpc.Channel, url: str, method: str, payload: bytes, *, token: bool = True
) -> grpc.StatusCode:
    before = dump_store(url)
    code, details = call(channel, method, payload, token=token)
    assert code is grpc.StatusCode.OK or code in ALLOWED, (method, code, details, payload[:200])
    if code is not grpc.StatusCode.OK:
        assert dump_store(url) == before, (method, code, details)
    return code


def assert_still_serving(channel: grpc.Channel) -> None:
    reply = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_every_rpc_is_fuzzed() -> None:
    """No method is left out because its request type could not be found."""
    declared = {
        f"/{service.full_name}/{method.name}"
        for module in (pb2, kt_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert {name for name, _ in METHODS} == declared
    assert len(pb2.DESCRIPTOR.services_by_name["StudyService"].methods) >= 10
    assert len(kt_pb2.DESCRIPTOR.services_by_name["Oracle"].methods) == 7


@pytest.mark.parametrize(("method", "request_type"), METHODS, ids=[m for m, _ in METHODS])
def test_malformed_bytes_are_invalid_argument(
    fuzz_chief: tuple[Chief, str], channel: grpc.Channel, method: str, request_type: type
) -> None:
    url = fuzz_chief[1]
    rng = random.Random(method)
    garbage = [
        b"\xff" * 8,
        b"\x0a\xff\xff\xff\xff\x0f",  # a length-delimited field far longer than the message
        b"\x0a\x02\xc3\x28",  # a string field holding invalid UTF-8
        b"\x07",  # wire type 7 does not exist
    ] + [rng.randbytes(rng.randint(1, 64)) for _ in range(12)]
    codes = {check(channel, url, method, payload) for payload in garbage}
    assert grpc.StatusCode.INVALID_ARGUMENT in codes
    # Without the token even garbage is refused before it is parsed.
    for payload in garbage[:3]:
        code, details = call(channel, method, payload, token=False)
        assert code is grpc.StatusCode.UNAUTHENTICATED, details
    assert_still_serving(channel)


# -- fuzzed field values --------------------------------------------------------------------
# Biased towards the live study, trial 0 and attempt 1, so that calls get past lookups.
_TEXT = st.one_of(
    st.sampled_from(["fz", "0", "w"]),
    st.sampled_from(["", "fz", "w", "0", "1", "-1", "lr", "units", "act", "score", "nan"]),
    st.text(max_size=40),
    st.text(min_size=300, max_size=400),
)
_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 0.0]),
)
_INT64 = st.one_of(st.sampled_from([0, 1]), st.integers(-3, 3), st.integers(-(2**63), 2**63 - 1))
_INT32 = st.one_of(st.sampled_from([0, 1]), st.integers(-3, 3), st.integers(-(2**31), 2**31 - 1))
_UINT64 = st.integers(0, 2**64 - 1)
_UINT32 = st.integers(0, 2**32 - 1)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return _FLOAT
    if kind in (
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return _INT64
    if kind in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return _INT32
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return _UINT64
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return _UINT32
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_STRING:
        return _TEXT
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=40)
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-5, 50))
    raise AssertionError(f"unhandled field type {kind}")


@st.composite
def _message(draw: st.DrawFn, descriptor: Any, depth: int = 0) -> dict[str, Any]:
    """A dict of field values for ``descriptor`` (fields set at random, nested up to 3)."""
    values: dict[str, Any] = {}
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            key, value = message_type.fields_by_name["key"], message_type.fields_by_name["value"]
            if value.message_type is not None:
                if depth >= 3:
                    continue
                value_strategy: Any = _message(value.message_type, depth + 1)
            else:
                value_strategy = _scalar(value)
            values[field.name] = draw(st.dictionaries(_scalar(key), value_strategy, max_size=4))
        elif message_type is not None:
            if depth >= 3:
                continue
            inner = _message(message_type, depth + 1)
            values[field.name] = (
                draw(st.lists(inner, max_size=3)) if field.is_repeated else draw(inner)
            )
        elif field.is_repeated:
            values[field.name] = draw(st.lists(_scalar(field), max_size=4))
        else:
            values[field.name] = draw(_scalar(field))
    return values


def _build(message: Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        field = message.DESCRIPTOR.fields_by_name[name]
        target = getattr(message, name)
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            for key, item in value.items():
                if isinstance(item, dict):
                    _build(target[key], item)
                else:
                    target[key] = item
        elif message_type is not None and field.is_repeated:
            for item in value:
                _build(target.add(), item)
        elif message_type is not None:
            target.SetInParent()
            _build(target, value)
        elif field.is_repeated:
            target.extend(value)
        else:
            setattr(message, name, value)


@pytest.mark.parametrize(("method", "request_type"), METHODS, ids=[m for m, _ in METHODS])
def test_fuzzed_field_values_get_clear_answers(
    fuzz_chief: tuple[Chief, str],
    channel: grpc.Channel,
    method: str,
    request_type: type[Message],
) -> None:
    url = fuzz_chief[1]

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(values=_message(request_type.DESCRIPTOR))
    def fuzz(values: dict[str, Any]) -> None:
        request = request_type()
        _build(request, values)
        check(channel, url, method, request.SerializeToString())

    fuzz()
    assert_still_serving(channel)
