"""trials/mnist.py run exactly as Vertex AI runs a trial: flags in, env in, files out."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None, reason="needs TensorFlow (the tf extra)"
    ),
]

SCRIPT = Path(__file__).resolve().parents[2] / "trials" / "mnist.py"
TRIAL_ID = "7"
# A small, quickly learning model; integers as some drivers print them ("32.0"), plus a
# flag the script does not know, which Vertex may pass for another parameter.
FLAGS = [
    "--dataset=digits",
    "--learning_rate=0.01",
    "--n_hidden=1",
    "--n_neurons=32",
    "--optimizer=adam",
    "--batch_size=32.0",
    "--seed=3",
    "--unused_parameter=5",
]
METRIC_KEYS = {"checkpoint_path", "global_step", "timestamp", "trial", "val_accuracy"}


@dataclass
class Trial:
    """One trial's directories as Vertex lays them out, and how its last run ended."""

    base: Path
    metric_file: Path
    model_dir: Path
    checkpoint_dir: Path
    log_dir: Path
    proc: subprocess.CompletedProcess[str] | None = None

    def run(self, *flags: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run trials/mnist.py with Vertex's trial environment and two CPU replicas."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CLOUD_ML_", "AIP_", "KERASTUNER_", "HPSEARCH_"))
            and k not in ("TF_CONFIG", "CLUSTER_SPEC")
        }
        env.update(
            CLOUD_ML_TRIAL_ID=TRIAL_ID,
            CLOUD_ML_HP_METRIC_FILE=str(self.metric_file),
            # Vertex's directories end with "/".
            AIP_MODEL_DIR=f"{self.model_dir}/",
            AIP_CHECKPOINT_DIR=f"{self.checkpoint_dir}/",
            AIP_TENSORBOARD_LOG_DIR=f"{self.log_dir}/",
            TF_CONFIG=json.dumps(
                {
                    "cluster": {"workerpool0": ["localhost:2222"]},
                    "task": {"type": "workerpool0", "index": 0},
                }
            ),
            HPSEARCH_CPU_REPLICAS="2",
            TF_CPP_MIN_LOG_LEVEL="2",
            **extra_env,
        )
        self.proc = subprocess.run(
            [sys.executable, str(SCRIPT), *flags],
            env=env,
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return self.proc

    def metric_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.metric_file.read_text().splitlines()]


def new_trial(base: Path) -> Trial:
    out = base / "out" / TRIAL_ID
    return Trial(
        base=base,
        metric_file=base / "hypertune" / "output.metrics",
        model_dir=out / "model",
        checkpoint_dir=out / "checkpoints",
        log_dir=out / "logs",
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trial:
    """One complete two-epoch trial, shared by the tests that inspect its outputs."""
    trial = new_trial(tmp_path_factory.mktemp("trial"))
    trial.run(*FLAGS, "--epochs=2")
    return trial


def test_trial_exits_zero_and_trains_on_two_replicas(trained: Trial) -> None:
    assert trained.proc is not None
    assert trained.proc.returncode == 0, trained.proc.stderr[-3000:]
    assert re.search(r"\breplicas=2\b", trained.proc.stderr)
    assert "ignoring unknown flags: --unused_parameter=5" in trained.proc.stderr
    assert '"batch_size": 32' in trained.proc.stderr


def test_hypertune_file_has_one_line_per_epoch_with_string_values(trained: Trial) -> None:
    lines = trained.metric_lines()
    assert [line["global_step"] for line in lines] == ["1", "2"]
    for line in lines:
        assert set(line) == METRIC_KEYS
        assert line["trial"] == TRIAL_ID
        assert line["checkpoint_path"] == ""
        assert isinstance(line["timestamp"], float)
        assert isinstance(line["val_accuracy"], str)
        assert 0.0 <= float(line["val_accuracy"]) <= 1.0
    # An Adam MLP learns digits quickly: well above chance (0.1) after two epochs.
    assert float(lines[-1]["val_accuracy"]) > 0.5  # type: ignore[arg-type]


def test_hypertune_file_is_byte_compatible_with_cloudml_hypertune(
    trained: Trial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hypertune = pytest.importorskip("hypertune")
    reference = tmp_path / "reference.metrics"
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(reference))
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", TRIAL_ID)
    hpt = hypertune.HyperTune()
    for line in trained.metric_lines():
        hpt.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag="val_accuracy",
            metric_value=float(line["val_accuracy"]),  # type: ignore[arg-type]
            global_step=int(line["global_step"]),  # type: ignore[call-overload]
        )

    def without_timestamps(text: str) -> str:
        return re.sub(r'"timestamp": [0-9.e+-]+', '"timestamp": T', text)

    written = trained.metric_file.read_text()
    assert without_timestamps(written) == without_timestamps(reference.read_text())
    assert len(written.splitlines()) == 2


def test_checkpoint_and_tensorboard_logs_are_written(trained: Trial) -> None:
    assert (trained.checkpoint_dir / "latest.weights.h5").stat().st_size > 0
    metadata = json.loads((trained.checkpoint_dir / "training_metadata.json").read_text())
    assert metadata["epoch"] == 2
    events = list(trained.log_dir.rglob("events.out.tfevents.*"))
    assert {p.parent.name for p in events} >= {"train", "validation"}


def test_saved_model_loads_and_serves_predictions(trained: Trial) -> None:
    export = trained.model_dir / "1"
    assert (export / "saved_model.pb").is_file()
    # Load it in a fresh interpreter, as TF Serving would, without the training code.
    probe = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "fn = m.signatures['serving_default']\n"
        "x = np.random.default_rng(0).random((3, 8, 8)).astype('float32')\n"
        "(out,) = fn(tf.constant(x)).values()\n"
        "print(json.dumps({'shape': out.shape.as_list(), 'sums': out.numpy().sum(1).tolist()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(export)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["shape"] == [3, 10]
    assert result["sums"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-4)


def test_killed_trial_resumes_after_its_last_finished_epoch(tmp_path: Path) -> None:
    trial = new_trial(tmp_path)
    flags = [*FLAGS, "--optimizer=sgd", "--momentum=0.9", "--epochs=3"]

    killed = trial.run(*flags, HPSEARCH_TEST_EXIT_AFTER_EPOCH="1")
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert json.loads((trial.checkpoint_dir / "training_metadata.json").read_text())["epoch"] == 1
    first_report = trial.metric_file.read_text()
    assert [line["global_step"] for line in trial.metric_lines()] == ["1"]
    assert not (trial.model_dir / "1").exists()

    resumed = trial.run(*flags)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "finished_epochs=1" in resumed.stderr
    assert "resuming from checkpoint start_epoch=2" in resumed.stderr
    assert "Epoch 1/3" not in resumed.stdout
    assert "Epoch 2/3" in resumed.stdout and "Epoch 3/3" in resumed.stdout
    # The killed attempt's report survives; the resumed attempt adds epochs 2 and 3.
    assert trial.metric_file.read_text().startswith(first_report)
    assert [line["global_step"] for line in trial.metric_lines()] == ["1", "2", "3"]
    assert json.loads((trial.checkpoint_dir / "training_metadata.json").read_text())["epoch"] == 3
    assert (trial.model_dir / "1" / "saved_model.pb").is_file()

    # A machine killed while writing the latest checkpoint: the previous epoch's copy
    # takes over, so a longer run resumes at epoch 3, not 4.
    (trial.checkpoint_dir / "latest.weights.h5").write_bytes(b"torn write")
    extended = trial.run(*[f for f in flags if f != "--epochs=3"], "--epochs=4")
    assert extended.returncode == 0, extended.stderr[-3000:]
    assert "resuming from checkpoint start_epoch=3" in extended.stderr
    assert "Epoch 3/4" in extended.stdout and "Epoch 2/4" not in extended.stdout
    assert [line["global_step"] for line in trial.metric_lines()] == ["1", "2", "3", "4"]


def test_diverging_loss_fails_the_trial_before_checkpointing_or_reporting(
    tmp_path: Path,
) -> None:
    trial = new_trial(tmp_path)
    proc = trial.run(
        "--dataset=digits", "--optimizer=sgd", "--learning_rate=1e5", "--n_hidden=3", "--epochs=2"
    )
    assert proc.returncode == 1
    assert "training diverged; lower --learning_rate" in proc.stderr
    assert not (trial.checkpoint_dir / "training_metadata.json").exists()
    assert not trial.metric_file.exists() or trial.metric_file.read_text() == ""
    assert not (trial.model_dir / "1").exists()


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--optimizer=rmsprop", "argument --optimizer: invalid choice: 'rmsprop'"),
        ("--learning_rate=-1", "argument --learning_rate: expects a finite number > 0"),
        ("--learning_rate=nan", "argument --learning_rate: expects a finite number > 0"),
        ("--n_hidden=2.5", "argument --n_hidden: expects an integer, got '2.5'"),
        ("--n_neurons=0", "argument --n_neurons: expects an integer >= 1"),
        ("--momentum=1.5", "argument --momentum: expects a number in [0, 1)"),
        ("--dataset=cifar10", "argument --dataset: invalid choice: 'cifar10'"),
    ],
)
def test_bad_flag_exits_non_zero_with_a_clear_message(
    tmp_path: Path, flag: str, message: str
) -> None:
    trial = new_trial(tmp_path)
    proc = trial.run("--dataset=digits", flag)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not trial.checkpoint_dir.exists() and not trial.metric_file.exists()


def test_output_directories_may_be_non_local_tensorflow_file_systems(tmp_path: Path) -> None:
    # Vertex gives gs:// directories. TensorFlow's in-memory ram:// file system stands in
    # for GCS here: it lives in one process, so the trial runs twice in one interpreter
    # (one epoch, then two), which also proves resuming from a non-local checkpoint.
    probe = (
        "import json, os, runpy, sys\n"
        "trial = runpy.run_path(sys.argv[1], run_name='trial')\n"
        "flags = ['--dataset=digits', '--n_hidden=1', '--n_neurons=16', '--optimizer=adam']\n"
        "codes = [trial['main']([*flags, '--epochs=1']), trial['main']([*flags, '--epochs=2'])]\n"
        "import tensorflow as tf\n"
        "files = sorted(os.path.join(d, f) for d, _, fs in tf.io.gfile.walk('ram://out')"
        " for f in fs)\n"
        "print(json.dumps({'codes': codes, 'files': files}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIP_", "HPSEARCH_"))}
    env.update(
        CLOUD_ML_TRIAL_ID=TRIAL_ID,
        CLOUD_ML_HP_METRIC_FILE=str(tmp_path / "output.metrics"),
        AIP_MODEL_DIR="ram://out/7/model/",
        AIP_CHECKPOINT_DIR="ram://out/7/checkpoints/",
        AIP_TENSORBOARD_LOG_DIR="ram://out/7/logs/",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0]
    assert "resuming from checkpoint start_epoch=2" in proc.stderr
    files = result["files"]
    assert "ram://out/7/model/1/saved_model.pb" in files
    assert "ram://out/7/checkpoints/training_metadata.json" in files
    assert any(f.startswith("ram://out/7/logs/train/events.out.tfevents.") for f in files)
    lines = (tmp_path / "output.metrics").read_text().splitlines()
    assert [json.loads(line)["global_step"] for line in lines] == ["1", "2"]


def test_resuming_with_other_flags_is_refused_and_changes_nothing(trained: Trial) -> None:
    before = {p: p.read_bytes() for p in trained.checkpoint_dir.iterdir()}
    metrics_before = trained.metric_file.read_text()
    flags = [f for f in FLAGS if not f.startswith("--n_neurons")]
    # A copy: the fixture's own record of its run stays as the other tests expect it.
    proc = dataclasses.replace(trained).run(*flags, "--n_neurons=64", "--epochs=3")
    assert proc.returncode == 1
    assert "trained with other flags (--n_neurons 32 -> 64)" in proc.stderr
    assert "use another AIP_CHECKPOINT_DIR or delete this one" in proc.stderr
    assert {p: p.read_bytes() for p in trained.checkpoint_dir.iterdir()} == before
    assert trained.metric_file.read_text() == metrics_before
