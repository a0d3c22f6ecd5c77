"""`hpsearch chief` + two `hpsearch worker` processes + trials/mnist.py on digits, to budget.

MirroredStrategy runs with 2 replicas on 2 logical CPU devices; every trial's intermediate
and final metrics land in SQL; the best model exports for TF Serving and loads back.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hpsearch.records import TrialState
from hpsearch.store import Store

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None,
        reason="TensorFlow is not installed (pip install -e '.[tf]')",
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_chief_two_workers_and_the_vertex_trial_script(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'e2e.db'}"
    study_file = tmp_path / "digits.yaml"
    study_file.write_text(
        textwrap.dedent("""\
        name: digits-e2e
        metric: {name: val_accuracy, goal: maximize}
        parameters:
          learning_rate: {type: double, min: 1e-3, max: 1e-1, scale: log}
          n_hidden: {type: integer, min: 1, max: 2}
          n_neurons: {type: integer, min: 8, max: 32, scale: log}
          optimizer: {type: categorical, values: [sgd, adam]}
        budget: {max_trials: 4, parallel_trials: 2}
        algorithm: random
        lease_seconds: 120
        """)
    )
    port = _free_port()
    env = dict(
        os.environ, HPSEARCH_CPU_REPLICAS="2", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1"
    )
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    chief_log = (tmp_path / "chief.log").open("wb")
    chief = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpsearch",
            "chief",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--storage",
            storage,
            "--study",
            str(study_file),
        ],
        env=env,
        stdout=chief_log,
        stderr=subprocess.STDOUT,
    )
    trial_cmd = [
        sys.executable,
        str(REPO / "trials" / "mnist.py"),
        "--dataset",
        "digits",
        "--epochs",
        "2",
    ]
    out = tmp_path / "out"
    workers = []
    try:
        # one worker told by flag, the other by Keras Tuner's variables
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hpsearch",
                    "worker",
                    "--oracle",
                    f"127.0.0.1:{port}",
                    "--worker-id",
                    "w-flag",
                    "--gpus-per-trial",
                    "0",
                    "--output-dir",
                    str(out),
                    "--study",
                    "digits-e2e",
                    "--",
                    *trial_cmd,
                ],
                env=env,
            )
        )
        kt_env = dict(
            env,
            KERASTUNER_ORACLE_IP="127.0.0.1",
            KERASTUNER_ORACLE_PORT=str(port),
            KERASTUNER_TUNER_ID="w-env",
        )
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "hpsearch",
                    "worker",
                    "--gpus-per-trial",
                    "0",
                    "--output-dir",
                    str(out),
                    "--",
                    *trial_cmd,
                ],
                env=kt_env,
            )
        )
        deadline = time.monotonic() + 540
        for worker in workers:
            assert worker.wait(max(1.0, deadline - time.monotonic())) == 0
    finally:
        for proc in [*workers, chief]:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        chief_log.close()

    store = Store(storage)
    try:
        trials = store.list_trials("digits-e2e")
        assert [t.state for t in trials] == [TrialState.COMPLETED] * 4, [
            (t.number, t.state, t.failure_message) for t in trials
        ]
        assert {t.worker_id for t in trials} == {"w-flag", "w-env"}
        for trial in trials:
            steps = [m.step for m in store.list_measurements("digits-e2e", trial.number)]
            assert steps == [1, 2]
            assert trial.value is not None and 0.0 <= trial.value <= 1.0
            logs = (
                out
                / ".hpsearch"
                / "digits-e2e"
                / "attempt-1"
                / f"trial-{trial.number}"
                / "output.log"
            ).read_text()
            assert "replicas=2" in logs
        best = store.best_trials("digits-e2e", 1)[0]
    finally:
        store.close()

    serving = tmp_path / "serving"
    for expected_version in ("1", "2"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "hpsearch",
                "export",
                "best",
                "digits-e2e",
                "--to",
                str(serving),
                "--from",
                str(out),
                "--storage",
                storage,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert (serving / expected_version / "saved_model.pb").is_file()
        assert f"exported trial {best.number}" in result.stdout
    probe = textwrap.dedent(f"""\
        import numpy as np, tensorflow as tf
        model = tf.saved_model.load({str(serving / "2")!r})
        serve = model.signatures["serving_default"]
        spec = list(serve.structured_input_signature[1].values())[0]
        out = serve(**{{list(serve.structured_input_signature[1])[0]:
                       tf.zeros([1, *spec.shape[1:]], spec.dtype)}})
        print(list(out.values())[0].shape)
        """)
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip().endswith("(1, 10)")
