"""Our copy of Keras Tuner's protos is wire-identical to the installed keras-tuner's.

Keras Tuner's generated modules import TensorFlow (and clash with ours in one process), so
the test reads their serialized descriptors from the files without importing them.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from hpsearch.protos import keras_tuner_pb2, keras_tuner_service_pb2


def _installed_descriptor(name: str) -> descriptor_pb2.FileDescriptorProto:
    spec = importlib.util.find_spec("keras_tuner")
    if spec is None or spec.origin is None:
        pytest.skip("keras-tuner is not installed (pip install 'hpsearch[tf]')")
    package = Path(spec.origin).parent
    path = package / "src" / "protos" / "v4" / f"{name}_pb2.py"
    if not path.exists():
        # keras-tuner is installed, so a moved module must not turn the check into a skip.
        found = sorted(str(p.relative_to(package)) for p in package.rglob(f"{name}_pb2.py"))
        pytest.fail(
            f"keras-tuner is installed but has no generated module at {path} (found: "
            f"{found or 'none'}); point this test at where its {name}_pb2.py moved"
        )
    match = re.search(r"AddSerializedFile\(\s*(b'.*?')\s*\)", path.read_text(), re.S)
    assert match, f"no serialized descriptor in {path}"
    return descriptor_pb2.FileDescriptorProto.FromString(ast.literal_eval(match.group(1)))


def _ours(module: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(proto)  # type: ignore[attr-defined]
    return proto


def _wire(fdp: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    """What goes over the wire: names, numbers, types, labels, enum values, RPC paths."""

    def message(m: descriptor_pb2.DescriptorProto) -> object:
        return (
            sorted((f.name, f.number, f.type, f.label, f.type_name) for f in m.field),
            sorted((n.name, message(n)) for n in m.nested_type),
            sorted((e.name, sorted((v.name, v.number) for v in e.value)) for e in m.enum_type),
        )

    return {
        "package": fdp.package,
        "messages": sorted((m.name, message(m)) for m in fdp.message_type),
        "enums": sorted(
            (e.name, sorted((v.name, v.number) for v in e.value)) for e in fdp.enum_type
        ),
        "services": sorted(
            (s.name, sorted((r.name, r.input_type, r.output_type) for r in s.method))
            for s in fdp.service
        ),
    }


def test_keras_tuner_messages_match_the_installed_keras_tuner() -> None:
    assert _wire(_ours(keras_tuner_pb2)) == _wire(_installed_descriptor("keras_tuner"))


def test_keras_tuner_service_matches_the_installed_keras_tuner() -> None:
    ours = _wire(_ours(keras_tuner_service_pb2))
    theirs = _wire(_installed_descriptor("service"))
    assert ours == theirs
    assert ours["services"][0][0] == "Oracle"  # type: ignore[index]
    assert len(ours["services"][0][1]) == 7  # type: ignore[index]


@pytest.mark.tf
@pytest.mark.slow
def test_hpsearch_and_keras_tuner_share_one_process() -> None:
    """Our wire copy of Keras Tuner's protos lives in a private descriptor pool, so importing
    hpsearch's client and service next to keras_tuner does not fail with duplicate symbols."""
    import hpsearch.client  # noqa: F401
    from hpsearch.protos import keras_tuner_pb2 as ours

    kt = pytest.importorskip("keras_tuner", reason="needs keras-tuner (the tf extra)")
    from keras_tuner.src import protos

    theirs = protos.get_proto()
    mine = ours.Trial(trial_id="3", status=ours.COMPLETED)
    decoded = theirs.Trial.FromString(mine.SerializeToString())
    assert decoded.trial_id == "3" and decoded.status == theirs.COMPLETED
    assert kt.HyperParameters().get_config()["space"] == []
