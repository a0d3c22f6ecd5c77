"""The Vertex AI trial contract: flags, directories, environment, the hypertune file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import hypertune
import pytest

from hpsearch.space import Goal, Measurement
from hpsearch.worker.contract import (
    MetricFileReader,
    final_measurement,
    trial_dirs,
    trial_env,
    trial_flags,
)
from hpsearch.worker.gpus import gpu_slots


def test_flags_are_formatted_as_vertex_formats_them() -> None:
    flags = trial_flags(
        {"learning_rate": 0.001, "n_hidden": 3, "optimizer": "adam", "wide": True, "bs": 64.0}
    )
    assert flags == [
        "--learning_rate=0.001",
        "--n_hidden=3",
        "--optimizer=adam",
        "--wide=true",
        "--bs=64",
    ]


def test_directories_and_environment_follow_the_aip_layout(tmp_path: Path) -> None:
    dirs = trial_dirs(str(tmp_path / "out"), "7", str(tmp_path / "scratch"))
    env = trial_env(
        dirs,
        "7",
        base_env={"PATH": "/bin", "KERASTUNER_TUNER_ID": "w0"},
        cuda_visible_devices="2,3",
    )
    assert env["AIP_MODEL_DIR"] == f"{tmp_path}/out/7/model/"
    assert env["AIP_CHECKPOINT_DIR"] == f"{tmp_path}/out/7/checkpoints/"
    assert env["AIP_TENSORBOARD_LOG_DIR"] == f"{tmp_path}/out/7/logs/"
    assert env["CLOUD_ML_TRIAL_ID"] == "7"
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert "KERASTUNER_TUNER_ID" not in env  # the trial must not become a Keras Tuner client
    assert Path(env["AIP_MODEL_DIR"]).is_dir()
    assert Path(env["CLOUD_ML_HP_METRIC_FILE"]).parent.is_dir()


def test_gcs_base_dir_is_passed_through_untouched(tmp_path: Path) -> None:
    dirs = trial_dirs("gs://bucket/study", "3", str(tmp_path))
    assert dirs.model == "gs://bucket/study/3/model/"
    assert dirs.logs == "gs://bucket/study/3/logs/"


def test_reader_follows_the_file_cloudml_hypertune_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "metrics" / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(path))
    monkeypatch.setenv("CLOUD_ML_TRIAL_ID", "4")
    reporter = hypertune.HyperTune()
    reader = MetricFileReader(path)
    assert reader.poll() == []  # no file yet
    reporter.report_hyperparameter_tuning_metric("val_accuracy", 0.5, global_step=1)
    first = reader.poll()
    assert [(r.step, r.metrics) for r in first] == [(1, {"val_accuracy": 0.5})]
    reporter.report_hyperparameter_tuning_metric("val_accuracy", 0.75, global_step=2)
    reporter.report_hyperparameter_tuning_metric("val_accuracy", 0.625, global_step=3)
    again = reader.poll()
    assert [(r.step, r.metrics["val_accuracy"]) for r in again] == [(2, 0.75), (3, 0.625)]
    assert reader.poll() == []
    line = json.loads(path.read_text().splitlines()[0])
    assert line["trial"] == "4" and line["val_accuracy"] == "0.5"


def test_reader_skips_a_partial_line_and_reads_it_when_complete(tmp_path: Path) -> None:
    path = tmp_path / "output.metrics"
    full = json.dumps({"global_step": "1", "timestamp": 1.0, "trial": "0", "loss": "0.5"})
    path.write_text(full[:20])
    reader = MetricFileReader(path)
    assert reader.poll() == []
    path.write_text(full + "\n")
    assert [r.metrics for r in reader.poll()] == [{"loss": 0.5}]


def test_reader_loses_nothing_when_the_window_slides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "output.metrics"
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(path))
    reporter = hypertune.HyperTune()
    reader = MetricFileReader(path)
    for step in range(1, 151):  # hypertune keeps only the last 100 lines
        reporter.report_hyperparameter_tuning_metric("acc", step / 1000, global_step=step)
        if step % 30 == 0:
            reader.poll()
    reader.poll()
    assert [r.step for r in reader.reports] == list(range(1, 151))


@pytest.mark.parametrize(
    ("goal", "selection", "expected_step"),
    [
        (Goal.MAXIMIZE, Measurement.BEST, 2),
        (Goal.MINIMIZE, Measurement.BEST, 3),
        (Goal.MAXIMIZE, Measurement.LAST, 3),
    ],
)
def test_final_measurement_follows_the_selection(
    tmp_path: Path, goal: Goal, selection: Measurement, expected_step: int
) -> None:
    path = tmp_path / "m"
    lines = [
        {"global_step": "1", "timestamp": 1.0, "trial": "0", "acc": "0.5"},
        {"global_step": "2", "timestamp": 2.0, "trial": "0", "acc": "0.9"},
        {"global_step": "3", "timestamp": 3.0, "trial": "0", "acc": "0.1"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    reader = MetricFileReader(path)
    reader.poll()
    pick = final_measurement(reader.reports, "acc", goal, selection)
    assert pick is not None and pick.step == expected_step
    assert final_measurement(reader.reports, "loss", goal, selection) is None


def test_nan_is_selected_so_the_caller_can_fail_the_trial(tmp_path: Path) -> None:
    path = tmp_path / "m"
    path.write_text(
        json.dumps({"global_step": "1", "timestamp": 1.0, "acc": "0.5"})
        + "\n"
        + json.dumps({"global_step": "2", "timestamp": 2.0, "acc": "nan"})
        + "\n"
    )
    reader = MetricFileReader(path)
    reader.poll()
    pick = final_measurement(reader.reports, "acc", Goal.MAXIMIZE, Measurement.BEST)
    assert pick is not None and math.isnan(pick.metrics["acc"])


@pytest.mark.parametrize(
    ("gpus", "per_trial", "slots"),
    [
        (["0", "1", "2", "3"], 1, ["0", "1", "2", "3"]),
        (["0", "1", "2", "3"], 2, ["0,1", "2,3"]),
        (["0", "1", "2"], 2, ["0,1"]),
        (["0", "1", "2", "3", "4", "5", "6", "7"], 3, ["0,1,2", "3,4,5"]),
        (["0", "1"], 0, [""]),
        (["0"], 2, [""]),
        ([], 1, [None]),
    ],
)
def test_gpu_slots(gpus: list[str], per_trial: int, slots: list[str | None]) -> None:
    assert gpu_slots(gpus, per_trial) == slots
