"""Regenerate the Python modules from the .proto files in this folder.

Run from anywhere: ``python -m hpsearch.protos.generate`` (needs grpcio-tools).  The
protos are compiled relative to the repository root, so the generated modules import
each other as ``hpsearch.protos.<name>_pb2`` and need no fixing up.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTOS = ("keras_tuner.proto", "keras_tuner_service.proto", "study_service.proto")


def main() -> int:
    """Compile every proto of this package into *_pb2.py, *_pb2.pyi and *_pb2_grpc.py."""
    from grpc_tools import protoc

    here = Path(__file__).resolve().parent
    root = here.parent.parent
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"--python_out={root}",
        f"--pyi_out={root}",
        f"--grpc_python_out={root}",
        *(str(Path("hpsearch/protos") / name) for name in PROTOS),
    ]
    code = int(protoc.main(args))
    # Message-only protos get an empty *_pb2_grpc.py; leave it out.
    empty = here / "keras_tuner_pb2_grpc.py"
    if code == 0 and empty.exists():
        empty.unlink()
    return code


if __name__ == "__main__":
    sys.exit(main())
