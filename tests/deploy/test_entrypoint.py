"""The container entrypoint, run on the host with the manifests' own command lines.

The chief and worker command, arguments and environment are read from
deploy/k8s/base (plain YAML: no kubectl needed); only what names the cluster is mapped to
this machine: container paths to a temporary directory, the Service name to 127.0.0.1, port
8000 to a free port, and the trial command (trials/mnist.py, TensorFlow) to the worker
tests' fake trial. The first part runs the real ``hpsearch``; the second puts a recording
stand-in for ``hpsearch`` first on ``$PATH`` to see exactly what the script execs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hpsearch.cli import build_parser
from hpsearch.records import TrialState
from hpsearch.store import Store

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
BASE = ROOT / "deploy" / "k8s" / "base"
FAKE_TRIAL = ROOT / "tests" / "worker" / "fake_trial.py"
START_TIMEOUT = 60.0
RUN_TIMEOUT = 120.0


def manifest_container(file: str, name: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((BASE / file).read_text()):
        if doc and doc["kind"] in ("Deployment", "Job"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c["name"] == name:
                    return dict(c)
    raise AssertionError(f"no container {name!r} in {file}")


def manifest_env(c: dict[str, Any]) -> dict[str, str]:
    """The container's literal env values (valueFrom entries have no host equivalent)."""
    return {e["name"]: str(e["value"]) for e in c.get("env", []) if "value" in e}


def host_env(extra: dict[str, str], path_first: Path | None = None) -> dict[str, str]:
    """This environment without anything that would steer the entrypoint, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KERASTUNER_", "HPSEARCH_", "CLUSTER_SPEC", "TF_CONFIG"))
        and k not in ("JOB_COMPLETION_INDEX", "CUDA_VISIBLE_DEVICES")
    }
    bins = [str(Path(sys.executable).parent)]
    if path_first is not None:
        bins.insert(0, str(path_first))
    env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU: one CPU slot, whatever this machine has
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def health_status(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2.0)
        return int(response.status)


# -- the manifests' chief and worker, for real ---------------------------------------------------
class Cluster:
    """What the manifests name, mapped onto this machine."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port()
        self.paths = {
            "/data": tmp / "data",
            "/etc/hpsearch/study": tmp / "study",
            "/output": tmp / "output",
            "/tmp": tmp / "tmp",
        }
        for path in self.paths.values():
            path.mkdir(parents=True)

    def arg(self, value: str) -> str:
        if value == "8000":
            return str(self.port)
        if value == "0.0.0.0":
            return "127.0.0.1"
        if value.startswith("sqlite:///"):
            return "sqlite:///" + self.arg(value.removeprefix("sqlite:///"))
        for container_path, host_path in self.paths.items():
            if value == container_path or value.startswith(container_path + "/"):
                return str(host_path) + value.removeprefix(container_path)
        return value

    def env(self, values: dict[str, str]) -> dict[str, str]:
        mapped = {k: self.arg(v) for k, v in values.items()}
        if mapped.get("KERASTUNER_ORACLE_IP") == "hpsearch-chief":  # the Service's DNS name
            mapped["KERASTUNER_ORACLE_IP"] = "127.0.0.1"
        return mapped

    def command(self, c: dict[str, Any], args: list[str]) -> list[str]:
        assert c["command"] == ["/usr/local/bin/hpsearch-entrypoint"]
        return [str(ENTRYPOINT), *args]


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path)


@pytest.fixture
def chief_process(cluster: Cluster) -> Iterator[subprocess.Popen[bytes]]:
    c = manifest_container("chief.yaml", "chief")
    args = [cluster.arg(a) for a in c["args"]]
    worker_env = manifest_env(manifest_container("workers.yaml", "worker"))
    study_file = Path(args[args.index("--study") + 1])
    # A study the fake trial can run, under the name the workers are told to work on.
    study_file.write_text(
        textwrap.dedent(f"""\
        name: {worker_env["HPSEARCH_STUDY"]}
        metric: {{name: score, goal: maximize}}
        parameters:
          x: {{type: double, min: 0.0, max: 1.0}}
        budget: {{max_trials: 2, parallel_trials: 1}}
        algorithm: random
        """)
    )
    log = (cluster.tmp / "chief.log").open("wb")
    process = subprocess.Popen(
        cluster.command(c, args),
        env=host_env(cluster.env(manifest_env(c))),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cluster.tmp,
        start_new_session=True,  # its own process group, killed whole below
    )
    try:
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(10)
        log.close()


def wait_serving(process: subprocess.Popen[bytes], address: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the chief exited:\n{log.read_text()}"
        try:
            if health_status(address) == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    pytest.fail(f"the chief did not answer SERVING within {START_TIMEOUT} s:\n{log.read_text()}")


@pytest.mark.slow
def test_manifest_chief_serves_and_worker3_runs_the_study(
    cluster: Cluster, chief_process: subprocess.Popen[bytes]
) -> None:
    address = f"127.0.0.1:{cluster.port}"
    wait_serving(chief_process, address, cluster.tmp / "chief.log")
    assert (cluster.paths["/data"] / "hpsearch.db").is_file()

    c = manifest_container("workers.yaml", "worker")
    args = c["args"]
    split = args.index("--")
    command = cluster.command(
        c, [*(cluster.arg(a) for a in args[: split + 1]), sys.executable, str(FAKE_TRIAL)]
    )
    env = host_env({**cluster.env(manifest_env(c)), "JOB_COMPLETION_INDEX": "3"})
    worker = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=cluster.tmp
    )
    assert worker.returncode == 0, worker.stderr[-4000:]
    assert "worker id worker3 (from JOB_COMPLETION_INDEX)" in worker.stderr

    study = manifest_env(c)["HPSEARCH_STUDY"]
    store = Store(f"sqlite:///{cluster.paths['/data'] / 'hpsearch.db'}")
    try:
        trials = store.list_trials(study)
    finally:
        store.close()
    assert [t.state for t in trials] == [TrialState.COMPLETED] * 2
    assert {t.worker_id for t in trials} == {"worker3"}
    assert all(t.value is not None for t in trials)
    outputs = sorted(p.name for p in (cluster.paths["/output"] / study).iterdir())
    assert {"0", "1"} <= set(outputs)

    # `exec`: SIGTERM reaches hpsearch itself, which stops gracefully and exits 0 (a shell
    # left in between would die of the signal instead).
    chief_process.send_signal(signal.SIGTERM)
    assert chief_process.wait(30) == 0, (cluster.tmp / "chief.log").read_text()


# -- what the script execs ----------------------------------------------------------------------
RECORDER = """\
#!/bin/sh
exec "{python}" -c 'import json, os, sys; print(json.dumps({{"argv": sys.argv[1:], \
"id": os.environ.get("KERASTUNER_TUNER_ID")}}))' "$@"
"""


@pytest.fixture
def recorder(tmp_path: Path) -> Path:
    """A directory whose ``hpsearch`` prints the argv and KERASTUNER_TUNER_ID it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "hpsearch"
    stub.write_text(RECORDER.format(python=sys.executable))
    stub.chmod(0o755)
    return bin_dir


def entrypoint(recorder: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=host_env(env, path_first=recorder),
        capture_output=True,
        text=True,
        timeout=30,
    )


def recorded(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_completion_index_names_the_worker(recorder: Path) -> None:
    seen = recorded(
        entrypoint(recorder, ["worker", "--", "python", "t.py"], JOB_COMPLETION_INDEX="3")
    )
    assert seen == {"argv": ["worker", "--", "python", "t.py"], "id": "worker3"}


def test_completion_index_with_a_prefix(recorder: Path) -> None:
    seen = recorded(
        entrypoint(
            recorder, ["worker"], JOB_COMPLETION_INDEX="0", HPSEARCH_WORKER_PREFIX="gpu-node-"
        )
    )
    assert seen["id"] == "gpu-node-0"


def test_a_given_worker_id_is_kept(recorder: Path) -> None:
    seen = recorded(
        entrypoint(recorder, ["worker"], JOB_COMPLETION_INDEX="3", KERASTUNER_TUNER_ID="tuner7")
    )
    assert seen["id"] == "tuner7"


def test_no_completion_index_leaves_the_id_alone(recorder: Path) -> None:
    assert recorded(entrypoint(recorder, ["worker"]))["id"] is None


def test_the_chief_gets_no_worker_id(recorder: Path) -> None:
    seen = recorded(entrypoint(recorder, ["chief", "--port", "8000"], JOB_COMPLETION_INDEX="3"))
    assert seen == {"argv": ["chief", "--port", "8000"], "id": None}


def test_a_bad_completion_index_is_refused(recorder: Path) -> None:
    result = entrypoint(recorder, ["worker"], JOB_COMPLETION_INDEX="3a")
    assert result.returncode == 2
    assert "JOB_COMPLETION_INDEX must be a non-negative integer" in result.stderr
    assert result.stdout == ""


def test_a_stock_keras_tuner_worker_gets_the_id_too(recorder: Path) -> None:
    show_id = "import os; print(os.environ['KERASTUNER_TUNER_ID'])"
    result = entrypoint(recorder, [sys.executable, "-c", show_id], JOB_COMPLETION_INDEX="5")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "worker5\n"


def test_no_arguments_is_hpsearch_help(recorder: Path) -> None:
    assert recorded(entrypoint(recorder, []))["argv"] == ["--help"]


def test_other_commands_run_as_given(recorder: Path) -> None:
    result = entrypoint(recorder, [sys.executable, "-c", "print('plain python')"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "plain python\n"


def test_every_cli_command_goes_to_hpsearch(recorder: Path) -> None:
    """The entrypoint's list of subcommands is the CLI's."""
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in subparsers.choices:
        assert recorded(entrypoint(recorder, [name, "--x"]))["argv"] == [name, "--x"], name
