"""Vertex AI request bodies through the CLI's dry runs; no google-cloud-aiplatform needed.

The bodies are in the JSON form ``MessageToDict`` gives for the GAPIC types: proto3 fields at
their default are left out, so a minimum of 0 and Vertex's default algorithm
(ALGORITHM_UNSPECIFIED, its Bayesian optimization) do not appear.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hpsearch.cli import main
from hpsearch.errors import InvalidArgumentError
from hpsearch.space import loads_study
from hpsearch.vertex.job import (
    Accelerator,
    TrialJobSpec,
    distributed_job_body,
    tuning_job_body,
)

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
DATA = HERE / "data"
GOLDEN = HERE / "golden" / "mnist_mlp_dry_run.json"
DEPLOY = ROOT / "deploy" / "vertex" / "distributed_search.yaml"
#: The arguments the checked-in golden file was made with.
GOLDEN_ARGS = [
    "vertex",
    "submit",
    str(DATA / "mnist_mlp.yaml"),
    "--project",
    "demo-project",
    "--region",
    "us-central1",
    "--image",
    "us-docker.pkg.dev/demo-project/hpsearch/hpsearch:latest",
    "--machine-type",
    "n1-standard-4",
    "--accelerator",
    "NVIDIA_TESLA_T4:1",
    "--base-output-dir",
    "gs://demo-bucket/hpsearch/mnist-mlp",
    "--args=--epochs=10 --dataset=mnist",
    "--dry-run",
]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_of_the_classic_mlp_study_matches_the_golden_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run_cli(capsys, *GOLDEN_ARGS)
    assert code == 0, err
    body = json.loads(out)
    if os.environ.get("HPSEARCH_UPDATE_GOLDEN"):
        GOLDEN.write_text(out)
    assert body == json.loads(GOLDEN.read_text())
    # The parts the study declares, spelled out (the golden file could be regenerated wrong).
    spec = body["studySpec"]
    assert spec["metrics"] == [{"metricId": "val_accuracy", "goal": "MAXIMIZE"}]
    assert "algorithm" not in spec  # bayesian = ALGORITHM_UNSPECIFIED, the proto3 default
    assert spec["measurementSelectionType"] == "BEST_MEASUREMENT"
    params = {p["parameterId"]: p for p in spec["parameters"]}
    assert list(params) == ["learning_rate", "n_hidden", "n_neurons", "optimizer"]
    assert params["learning_rate"]["doubleValueSpec"] == {"minValue": 1e-4, "maxValue": 0.1}
    assert params["learning_rate"]["scaleType"] == "UNIT_LOG_SCALE"
    assert params["n_hidden"]["integerValueSpec"] == {"maxValue": "10"}  # min 0 is the default
    assert params["n_neurons"]["integerValueSpec"] == {"minValue": "1", "maxValue": "300"}
    assert params["n_neurons"]["scaleType"] == "UNIT_LOG_SCALE"
    assert params["optimizer"]["categoricalValueSpec"] == {"values": ["sgd", "adam"]}
    assert (body["maxTrialCount"], body["parallelTrialCount"]) == (100, 20)
    pool = body["trialJobSpec"]["workerPoolSpecs"][0]
    assert pool["containerSpec"]["command"] == ["python", "trials/mnist.py"]
    assert pool["containerSpec"]["args"] == ["--epochs=10", "--dataset=mnist"]
    assert pool["machineSpec"] == {
        "machineType": "n1-standard-4",
        "acceleratorType": "NVIDIA_TESLA_T4",
        "acceleratorCount": 1,
    }


def test_every_parameter_kind_maps_to_its_vertex_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "vertex",
        "submit",
        str(DATA / "every_kind.yaml"),
        "--image",
        "gcr.io/p/trial:1",
        "--staging-bucket",
        "gs://bucket",
        "--service-account",
        "trainer@p.iam.gserviceaccount.com",
        "--command",
        "python -m trials.custom",
        "--dry-run",
    )
    assert code == 0, err
    body = json.loads(out)
    spec = body["studySpec"]
    assert spec["metrics"] == [{"metricId": "val_loss", "goal": "MINIMIZE"}]
    assert spec["algorithm"] == "RANDOM_SEARCH"
    assert spec["measurementSelectionType"] == "LAST_MEASUREMENT"
    assert spec["medianAutomatedStoppingSpec"] == {}
    top = {p["parameterId"]: p for p in spec["parameters"]}
    assert list(top) == ["learning_rate", "dropout", "layers", "units", "optimizer", "batch_size"]
    assert top["dropout"]["doubleValueSpec"] == {"maxValue": 0.5}
    assert top["dropout"]["scaleType"] == "UNIT_LINEAR_SCALE"
    assert top["batch_size"]["discreteValueSpec"] == {"values": [32.0, 64.0, 128.0]}
    children = {
        c["parameterSpec"]["parameterId"]: c
        for p in spec["parameters"]
        for c in p.get("conditionalParameterSpecs", [])
    }
    assert children["momentum"]["parentCategoricalValues"] == {"values": ["sgd"]}
    assert children["momentum"]["parameterSpec"]["scaleType"] == "UNIT_REVERSE_LOG_SCALE"
    assert children["nesterov"]["parameterSpec"]["categoricalValueSpec"] == {
        "values": ["false", "true"]
    }
    assert children["width_2"]["parentIntValues"] == {"values": ["2", "3", "4"]}
    assert children["warmup_steps"]["parentDiscreteValues"] == {"values": [128.0]}
    assert (body["maxTrialCount"], body["parallelTrialCount"], body["maxFailedTrialCount"]) == (
        40,
        4,
        5,
    )
    job_spec = body["trialJobSpec"]
    assert job_spec["baseOutputDirectory"] == {
        "outputUriPrefix": "gs://bucket/hpsearch/every-kind"
    }
    assert job_spec["serviceAccount"] == "trainer@p.iam.gserviceaccount.com"
    assert job_spec["workerPoolSpecs"][0]["containerSpec"]["command"] == [
        "python",
        "-m",
        "trials.custom",
    ]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"algorithm": "tpe"}, "tpe"),
        ({"algorithm": "grid"}, "grid search cannot enumerate"),
        ({"parameters": {}}, "no parameters"),
        (
            {"parameters": {"n": {"type": "integer", "min": 1, "max": 9, "scale": "reverse_log"}}},
            "reverse-log",
        ),
        ({"budget": {"max_trials": 5, "parallel_trials": 10}}, "parallel_trials"),
        ({"budget": {"max_trials": 5, "max_failed_trials": 0}}, "max_failed_trials"),
        (
            {"algorithm": "hyperband", "fidelity": {"max_epochs": 9}},
            "Vertex AI hyperparameter tuning jobs have no multi-fidelity search",
        ),
    ],
)
def test_a_study_vertex_cannot_express_is_a_clear_error(
    change: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = yaml.safe_load((DATA / "every_kind.yaml").read_text())
    study.update(change)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    code, out, err = run_cli(
        capsys, "vertex", "submit", str(path), "--image", "gcr.io/p/i:1", "--dry-run"
    )
    assert code == 2
    assert out == ""
    assert err.startswith("hpsearch: error: ") and err.count("\n") == 1
    assert message in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--accelerator", "nvidia tesla:x"], "count after ':'"),
        (["--accelerator", "T4:0"], "count must be an integer >= 1"),
        (["--base-output-dir", "/local/dir"], "gs://"),
        (["--staging-bucket", "bucket"], "gs://"),
        (["--service-account", "nobody"], "email"),
        (["--command", ""], "trial command is empty"),
        (["--command", "python 'unclosed"], "cannot split"),
    ],
)
def test_bad_job_options_are_clear_errors(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys,
        "vertex",
        "submit",
        str(DATA / "mnist_mlp.yaml"),
        "--image",
        "gcr.io/p/i:1",
        "--dry-run",
        *flags,
    )
    assert (code, out) == (2, "")
    assert message in err


def test_accelerator_parsing() -> None:
    assert Accelerator.parse("nvidia_tesla_t4:2") == Accelerator("NVIDIA_TESLA_T4", 2)
    assert Accelerator.parse("NVIDIA_L4") == Accelerator("NVIDIA_L4", 1)


def test_a_display_name_overrides_the_study_name() -> None:
    config = loads_study((DATA / "mnist_mlp.yaml").read_text())
    body = tuning_job_body(config, TrialJobSpec(image="img"), display_name="run-7")
    assert body["displayName"] == "run-7"
    assert body["labels"] == {"hpsearch-study": "mnist-mlp"}


def test_image_is_required_and_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="not a valid URI"):
        TrialJobSpec(image="has space")


def test_distributed_dry_run_runs_chief_and_workers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "vertex",
        "submit-distributed",
        "--image",
        "gcr.io/p/hpsearch:2",
        "--workers",
        "4",
        "--accelerator",
        "NVIDIA_L4:2",
        "--gpus-per-trial",
        "1",
        "--chief-storage",
        "postgresql+psycopg://hp@10.0.0.5/hp",
        "--study",
        "studies/mlp.yaml",
        "--base-output-dir",
        "gs://b/run",
        "--timeout",
        "7200",
        "--dry-run",
    )
    assert code == 0, err
    body = json.loads(out)
    chief, worker = body["jobSpec"]["workerPoolSpecs"]
    assert chief["replicaCount"] == "1"
    assert chief["containerSpec"]["command"] == ["hpsearch"]
    assert chief["containerSpec"]["args"] == [
        "chief",
        "--port",
        "8000",
        "--storage",
        "postgresql+psycopg://hp@10.0.0.5/hp",
        "--study",
        "studies/mlp.yaml",
        "--exit-when-done",  # the job ends when workerpool0's process exits
    ]
    assert chief["machineSpec"] == {"machineType": "n1-standard-4"}
    assert worker["replicaCount"] == "4"
    assert worker["machineSpec"] == {
        "machineType": "n1-standard-4",
        "acceleratorType": "NVIDIA_L4",
        "acceleratorCount": 2,
    }
    assert worker["containerSpec"]["args"] == [
        "worker",
        "--gpus-per-trial",
        "1",
        "--output-dir",
        "gs://b/run/trials",
        "--",
        "python",
        "trials/mnist.py",
    ]
    assert worker["containerSpec"]["env"] == [{"name": "KERASTUNER_ORACLE_PORT", "value": "8000"}]
    assert body["jobSpec"]["scheduling"] == {"timeout": "7200s"}
    assert body["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": "gs://b/run"}


def test_workers_find_the_chief_of_the_distributed_job_through_cluster_spec() -> None:
    """What Vertex AI sets in worker pool 1 leads ``hpsearch worker`` to pool 0's port."""
    from hpsearch.worker.discovery import resolve_oracle

    body = distributed_job_body(image="img", workers=2)
    worker_env = {
        e["name"]: e["value"]
        for e in body["jobSpec"]["workerPoolSpecs"][1]["containerSpec"]["env"]
    }
    cluster_spec = {
        "cluster": {
            "workerpool0": ["cmle-training-workerpool0-1a2b-0:2222"],
            "workerpool1": [
                "cmle-training-workerpool1-1a2b-0:2222",
                "cmle-training-workerpool1-1a2b-1:2222",
            ],
        },
        "environment": "cloud",
        "task": {"type": "workerpool1", "index": 1},
    }
    address, worker_id = resolve_oracle(
        None, {**worker_env, "CLUSTER_SPEC": json.dumps(cluster_spec)}
    )
    chief_args = body["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]
    chief_port = chief_args[chief_args.index("--port") + 1]
    assert address == f"cmle-training-workerpool0-1a2b-0:{chief_port}"
    assert worker_id == "workerpool1-1"


def test_the_checked_in_custom_job_spec_is_what_submit_distributed_builds() -> None:
    checked_in = yaml.safe_load(DEPLOY.read_text())
    built = distributed_job_body(
        image="REGION-docker.pkg.dev/PROJECT/REPO/hpsearch:latest", workers=2
    )
    assert checked_in == built["jobSpec"]


def test_the_vertex_cli_imports_no_google_library() -> None:
    heavy = ("google.cloud.aiplatform", "google.api_core", "google.auth", "tensorflow")
    code = (
        "import sys, hpsearch.cli as c; c.build_parser(); "
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"


def test_the_dry_run_needs_neither_aiplatform_nor_credentials(tmp_path: Path) -> None:
    """With google-cloud-aiplatform unimportable, the dry run still prints the golden body."""
    code = (
        "import sys; sys.modules['google.cloud.aiplatform_v1'] = None; "
        "sys.modules['google.auth'] = None; "
        "from hpsearch.cli import main; raise SystemExit(main(sys.argv[1:]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env["HOME"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", code, *GOLDEN_ARGS],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(GOLDEN.read_text())


def test_creating_a_job_needs_project_and_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "vertex", "submit", str(DATA / "mnist_mlp.yaml"), "--image", "img", "--region", "r"
    )
    assert (code, out) == (2, "")
    assert "needs --project" in err and "--dry-run" in err


def test_vertex_without_an_action_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "vertex")
    assert code == 2
    for action in ("submit", "status", "import", "submit-distributed"):
        assert action in out


def test_a_multi_metric_study_round_trips_through_the_sdks_own_types(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two objectives and a constraint: the dry run's studySpec.metrics lists both, then
    the constraint as a safety metric; parsed by google-cloud-aiplatform's own
    ``aiplatform_v1.StudySpec`` and read back by the importer, it is the same study."""
    aiplatform_v1 = pytest.importorskip("google.cloud.aiplatform_v1")
    from google.protobuf.json_format import MessageToDict, ParseDict

    from hpsearch.vertex.importer import study_config_from_job

    study = tmp_path / "mo.yaml"
    study.write_text(
        "name: mo\n"
        "metrics: [{name: val_accuracy, goal: maximize}, {name: latency_ms, goal: minimize}]\n"
        "constraints: ['model_mb <= 50', 'throughput >= 100']\n"
        "parameters: {lr: {type: double, min: 0.0001, max: 0.1, scale: log}}\n"
    )
    code, out, err = run_cli(
        capsys, "vertex", "submit", str(study), "--image", "gcr.io/p/t:1", "--dry-run"
    )
    assert code == 0, err
    spec = json.loads(out)["studySpec"]
    assert spec["metrics"] == [
        {"metricId": "val_accuracy", "goal": "MAXIMIZE"},
        {"metricId": "latency_ms", "goal": "MINIMIZE"},
        {"metricId": "model_mb", "goal": "MINIMIZE", "safetyConfig": {"safetyThreshold": 50.0}},
        {"metricId": "throughput", "goal": "MAXIMIZE", "safetyConfig": {"safetyThreshold": 100.0}},
    ]
    message = ParseDict(spec, aiplatform_v1.StudySpec()._pb)  # unknown fields would raise
    assert [m.safety_config.safety_threshold for m in message.metrics] == [0, 0, 50, 100]
    back = MessageToDict(message)
    config = study_config_from_job({"displayName": "mo", "studySpec": back, "maxTrialCount": 5})
    original = loads_study(study.read_text())
    assert config.metrics == original.metrics
    assert config.constraints == original.constraints
