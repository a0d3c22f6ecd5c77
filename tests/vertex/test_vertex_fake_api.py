"""``hpsearch vertex`` against a local HTTP fake of the Vertex AI API.

google-cloud-aiplatform's JobServiceClient speaks REST to ``http://127.0.0.1:PORT`` with
anonymous credentials; the fake records the requests it gets and serves the jobs.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "google.cloud.aiplatform_v1",
    reason="google-cloud-aiplatform (the vertex extra) is not installed",
)

from hpsearch.cli import main
from hpsearch.records import TrialState
from hpsearch.space import CategoricalParam, load_study
from hpsearch.store import Store
from hpsearch.vertex.job import (
    TrialJobSpec,
    canonical,
    distributed_job_body,
    tuning_job_body,
)
from tests.vertex.fake_vertex import FakeVertex

DATA = Path(__file__).parent / "data"
PARENT = "projects/demo/locations/us-central1"

# Vertex AI enum numbers (recent clients send enums as numbers: $alt=json;enum-encoding=int).
MINIMIZE = 2
LINEAR, LOG, REVERSE_LOG = 1, 2, 3
RANDOM_SEARCH = 3
LAST_MEASUREMENT = 1
NVIDIA_TESLA_T4 = 5

#: What the fake must receive for tests/vertex/data/every_kind.yaml, written out by hand.
EVERY_KIND_WIRE_BODY: dict[str, Any] = {
    "displayName": "every-kind",
    "studySpec": {
        "metrics": [{"metricId": "val_loss", "goal": MINIMIZE}],
        "parameters": [
            {
                "parameterId": "learning_rate",
                "doubleValueSpec": {"minValue": 1e-05, "maxValue": 0.1},
                "scaleType": LOG,
            },
            {
                "parameterId": "dropout",
                "doubleValueSpec": {"maxValue": 0.5},
                "scaleType": LINEAR,
            },
            {
                "parameterId": "layers",
                "integerValueSpec": {"minValue": "1", "maxValue": "4"},
                "scaleType": LINEAR,
                "conditionalParameterSpecs": [
                    {
                        "parameterSpec": {
                            "parameterId": "width_2",
                            "integerValueSpec": {"minValue": "1", "maxValue": "16"},
                            "scaleType": LINEAR,
                        },
                        "parentIntValues": {"values": ["2", "3", "4"]},
                    }
                ],
            },
            {
                "parameterId": "units",
                "integerValueSpec": {"minValue": "8", "maxValue": "512"},
                "scaleType": LOG,
            },
            {
                "parameterId": "optimizer",
                "categoricalValueSpec": {"values": ["sgd", "adam"]},
                "conditionalParameterSpecs": [
                    {
                        "parameterSpec": {
                            "parameterId": "momentum",
                            "doubleValueSpec": {"minValue": 0.5, "maxValue": 0.999},
                            "scaleType": REVERSE_LOG,
                        },
                        "parentCategoricalValues": {"values": ["sgd"]},
                    },
                    {
                        "parameterSpec": {
                            "parameterId": "nesterov",
                            "categoricalValueSpec": {"values": ["false", "true"]},
                        },
                        "parentCategoricalValues": {"values": ["sgd"]},
                    },
                ],
            },
            {
                "parameterId": "batch_size",
                "discreteValueSpec": {"values": [32.0, 64.0, 128.0]},
                "conditionalParameterSpecs": [
                    {
                        "parameterSpec": {
                            "parameterId": "warmup_steps",
                            "discreteValueSpec": {"values": [0.0, 100.0, 1000.0]},
                        },
                        "parentDiscreteValues": {"values": [128.0]},
                    }
                ],
            },
        ],
        "algorithm": RANDOM_SEARCH,
        "medianAutomatedStoppingSpec": {},
        "measurementSelectionType": LAST_MEASUREMENT,
    },
    "maxTrialCount": 40,
    "parallelTrialCount": 4,
    "maxFailedTrialCount": 5,
    "trialJobSpec": {
        "workerPoolSpecs": [
            {
                "machineSpec": {
                    "machineType": "n1-highmem-8",
                    "acceleratorType": NVIDIA_TESLA_T4,
                    "acceleratorCount": 2,
                },
                "replicaCount": "1",
                "containerSpec": {
                    "imageUri": "us-docker.pkg.dev/demo/hp/trial:3",
                    "command": ["python", "trials/mnist.py"],
                    "args": ["--epochs=5"],
                },
            }
        ],
        "serviceAccount": "trainer@demo.iam.gserviceaccount.com",
        "baseOutputDirectory": {"outputUriPrefix": "gs://demo-out/every"},
    },
    "labels": {"hpsearch-study": "every-kind"},
}
SUBMIT_FLAGS = [
    "--project",
    "demo",
    "--region",
    "us-central1",
    "--image",
    "us-docker.pkg.dev/demo/hp/trial:3",
    "--machine-type",
    "n1-highmem-8",
    "--accelerator",
    "NVIDIA_TESLA_T4:2",
    "--base-output-dir",
    "gs://demo-out/every",
    "--service-account",
    "trainer@demo.iam.gserviceaccount.com",
    "--args=--epochs=5",
]


@pytest.fixture
def fake() -> Iterator[FakeVertex]:
    server = FakeVertex().start()
    try:
        yield server
    finally:
        server.stop()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_sends_the_exact_body_the_dry_run_prints(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str]
) -> None:
    study = str(DATA / "every_kind.yaml")
    code, dry_run, err = run_cli(capsys, "vertex", "submit", study, *SUBMIT_FLAGS, "--dry-run")
    assert code == 0, err
    assert fake.requests == []  # a dry run sends nothing

    code, out, err = run_cli(
        capsys, "vertex", "submit", study, *SUBMIT_FLAGS, "--api-endpoint", fake.endpoint
    )
    assert code == 0, err
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/v1/{PARENT}/hyperparameterTuningJobs"
    # Recent clients send enums as numbers and say so; older ones (1.60) send their names.
    assert request.query in ({"$alt": ["json;enum-encoding=int"]}, {})
    numeric = bool(request.query)
    expected = EVERY_KIND_WIRE_BODY if numeric else _names_for_enums(EVERY_KIND_WIRE_BODY)
    assert request.body == expected
    assert out.strip() == f"{PARENT}/hyperparameterTuningJobs/1000"
    # The dry run printed that very body (with enum names).
    dry = json.loads(dry_run)
    assert request.body == (_numeric_enums(dry, "HyperparameterTuningJob") if numeric else dry)


def test_bodies_built_without_aiplatform_are_its_canonical_form() -> None:
    """The pure-Python bodies equal their round trip through the GAPIC types."""
    for name in ("every_kind.yaml", "mnist_mlp.yaml"):
        body = tuning_job_body(load_study(DATA / name), TrialJobSpec(image="img"))
        assert canonical(body) == body
    distributed = distributed_job_body(image="img", workers=3, timeout_seconds=60)
    assert canonical(distributed, "CustomJob") == distributed


def test_a_study_vertex_cannot_express_sends_nothing(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    study = tmp_path / "tpe.yaml"
    study.write_text((DATA / "every_kind.yaml").read_text().replace("random", "tpe"))
    code, out, err = run_cli(
        capsys, "vertex", "submit", str(study), *SUBMIT_FLAGS, "--api-endpoint", fake.endpoint
    )
    assert (code, out) == (2, "")
    assert "tpe" in err and err.count("\n") == 1
    assert fake.requests == []


def test_an_accelerator_vertex_does_not_know_is_refused_before_sending(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [f for f in SUBMIT_FLAGS if f != "NVIDIA_TESLA_T4:2"]
    flags.insert(flags.index("--accelerator") + 1, "NVIDIA_TESLA_T5:2")
    for extra in (["--dry-run"], ["--api-endpoint", fake.endpoint]):
        code, out, err = run_cli(
            capsys, "vertex", "submit", str(DATA / "every_kind.yaml"), *flags, *extra
        )
        assert (code, out) == (2, "")
        assert "NVIDIA_TESLA_T5" in err
    assert fake.requests == []


def test_submit_distributed_creates_the_custom_job(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str]
) -> None:
    code, dry_run, err = run_cli(
        capsys, "vertex", "submit-distributed", *SUBMIT_FLAGS[:6], "--workers", "3", "--dry-run"
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys,
        "vertex",
        "submit-distributed",
        *SUBMIT_FLAGS[:6],
        "--workers",
        "3",
        "--api-endpoint",
        fake.endpoint,
    )
    assert code == 0, err
    [request] = fake.requests
    assert request.path == f"/v1/{PARENT}/customJobs"
    assert request.body == json.loads(dry_run)  # a CustomJob body has no enum fields
    pools = request.body["jobSpec"]["workerPoolSpecs"]
    assert [p["containerSpec"]["args"][0] for p in pools] == ["chief", "worker"]
    assert [p["replicaCount"] for p in pools] == ["1", "3"]
    assert out.strip() == f"{PARENT}/customJobs/1000"
    assert "--chief-storage" in err  # the SQLite-inside-the-job warning


def test_import_copies_finished_trials_and_is_idempotent(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str], storage_url: str
) -> None:
    code, out, err = run_cli(
        capsys,
        "vertex",
        "submit",
        str(DATA / "every_kind.yaml"),
        *SUBMIT_FLAGS,
        "--api-endpoint",
        fake.endpoint,
    )
    assert code == 0, err
    name = out.strip()
    job = fake.jobs[name]
    job["state"] = 3  # JOB_STATE_RUNNING, as numbers the server may send
    job["trials"] = copy.deepcopy(TRIALS)
    job_id = name.rsplit("/", 1)[1]
    imp = [
        "vertex",
        "import",
        job_id,
        "--project",
        "demo",
        "--region",
        "us-central1",
        "--study",
        "every-kind-vertex",
        "--storage",
        storage_url,
        "--api-endpoint",
        fake.endpoint,
    ]

    code, out, err = run_cli(capsys, *imp)
    assert code == 0, err
    assert out.strip() == (
        "imported 4 trial(s) into study 'every-kind-vertex' (created): 3 completed, 1 failed; "
        "0 already imported, 1 still running on Vertex AI"
    )
    assert fake.requests[-1].method == "GET"
    assert fake.requests[-1].path == f"/v1/{name}"

    store = Store(storage_url)
    try:
        study = store.get_study("every-kind-vertex")
        config = study.config
        # The declared space comes back, but for the boolean (Vertex has none).
        declared = {p.name: p for p in load_study(DATA / "every_kind.yaml").space}
        nesterov = declared["nesterov"]
        declared["nesterov"] = CategoricalParam(
            "nesterov", values=("false", "true"), conditions=nesterov.conditions
        )
        assert {p.name: p for p in config.space} == declared
        assert (config.metric.name, config.metric.goal.value) == ("val_loss", "minimize")
        assert (config.budget.max_trials, config.budget.parallel_trials) == (40, 4)
        assert config.budget.max_failed_trials == 5
        assert (config.algorithm, config.measurement.value) == ("random", "last")
        trials = {t.tags["vertex_trial_id"]: t for t in store.list_trials(study.name)}
        assert sorted(trials) == ["1", "2", "3", "5"]
        assert sorted(t.number for t in trials.values()) == [0, 1, 2, 3]

        first = trials["1"]
        assert first.state is TrialState.COMPLETED
        assert first.value == pytest.approx(0.31)
        assert first.metrics == {"val_loss": pytest.approx(0.31), "accuracy": pytest.approx(0.9)}
        assert first.params == {
            "learning_rate": 0.01,
            "dropout": 0.1,
            "layers": 2,
            "width_2": 8,
            "units": 64,
            "optimizer": "sgd",
            "momentum": 0.9,
            "nesterov": "true",
            "batch_size": 128,
            "warmup_steps": 100,
        }
        assert first.tags["vertex_job"] == name
        assert first.tags["vertex_start_time"] == "2026-11-23T10:01:00Z"
        assert first.tags["vertex_custom_job"] == f"{PARENT}/customJobs/555"
        assert first.tags["model_dir"] == "gs://demo-out/every/1/model/"
        assert first.tags["log_dir"] == "gs://demo-out/every/1/logs/"
        measurements = store.list_measurements(study.name, first.number)
        assert [(m.step, m.metrics["val_loss"]) for m in measurements] == [
            (1, pytest.approx(0.52)),
            (2, pytest.approx(0.31)),
        ]
        # Vertex AI's INFEASIBLE ("should not be attempted again"): COMPLETED, infeasible,
        # so the search avoids it and it is never the best.
        assert trials["3"].state is TrialState.COMPLETED and not trials["3"].feasible
        assert "container exited with code 1" in (trials["3"].infeasible_reason or "")
        assert trials["5"].state is TrialState.FAILED
        assert "no final value of 'val_loss'" in (trials["5"].failure_message or "")
        [best] = store.best_trials(study.name, 1)
        assert best.tags["vertex_trial_id"] == "2" and best.value == pytest.approx(0.2)
    finally:
        store.close()

    # Again: nothing new, nothing duplicated.
    code, out, err = run_cli(capsys, *imp)
    assert code == 0, err
    assert "imported 0 trial(s)" in out and "4 already imported, 1 still running" in out

    # Trial 4 finishes on Vertex: the next import adds it and only it.
    job["trials"][3].update(
        state=4,
        finalMeasurement={"stepCount": "3", "metrics": [{"metricId": "val_loss", "value": 0.15}]},
    )
    code, out, err = run_cli(capsys, *imp)
    assert code == 0, err
    assert "imported 1 trial(s)" in out and "1 completed" in out and "4 already imported" in out

    code, out, err = run_cli(
        capsys, "best", "every-kind-vertex", "--format", "json", "--storage", storage_url
    )
    assert code == 0, err
    [row] = json.loads(out)
    assert row["val_loss"] == pytest.approx(0.15)
    assert (row["optimizer"], row["batch_size"], row["layers"]) == ("adam", 64, 3)

    code, out, err = run_cli(
        capsys, "trials", "every-kind-vertex", "--format", "json", "--storage", storage_url
    )
    assert code == 0, err
    rows = json.loads(out)
    assert [r["state"] for r in rows] == [
        "COMPLETED",
        "COMPLETED",
        "COMPLETED",
        "FAILED",
        "COMPLETED",
    ]
    assert "container exited with code 1" in rows[2]["infeasible"]
    assert [r.get("infeasible") is None for r in rows] == [True, True, False, True, True]


def test_status_reports_state_counts_and_best(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str], storage_url: str
) -> None:
    name = f"{PARENT}/hyperparameterTuningJobs/77"
    fake.jobs[name] = {
        **_names_for_enums(EVERY_KIND_WIRE_BODY),
        "name": name,
        "state": "JOB_STATE_SUCCEEDED",
        "trials": copy.deepcopy(TRIALS),
    }
    code, out, err = run_cli(
        capsys, "vertex", "status", name, "--format", "json", "--api-endpoint", fake.endpoint
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["state"] == "JOB_STATE_SUCCEEDED"
    assert summary["trials"] == {"SUCCEEDED": 3, "INFEASIBLE": 1, "ACTIVE": 1}
    assert summary["best"]["trial_id"] == "2"
    assert summary["best"]["value"] == pytest.approx(0.2)
    store = Store(storage_url)
    try:
        assert store.list_studies() == []  # status alone writes nothing
    finally:
        store.close()

    code, out, err = run_cli(
        capsys, "vertex", "status", name, "--import", "--storage", storage_url,
        "--api-endpoint", fake.endpoint,
    )  # fmt: skip
    assert code == 0, err
    assert "state:   JOB_STATE_SUCCEEDED" in out
    assert "imported 4 trial(s) into study 'every-kind' (created)" in out


def test_import_into_a_study_whose_space_does_not_fit_changes_nothing(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str], storage_url: str
) -> None:
    name = f"{PARENT}/hyperparameterTuningJobs/78"
    fake.jobs[name] = {
        **_names_for_enums(EVERY_KIND_WIRE_BODY),
        "name": name,
        "trials": copy.deepcopy(TRIALS),
    }
    code, _, err = run_cli(
        capsys, "study", "create", str(DATA / "mnist_mlp.yaml"), "--storage", storage_url
    )
    assert code == 0, err
    code, out, err = run_cli(
        capsys, "vertex", "import", name, "--study", "mnist-mlp", "--storage", storage_url,
        "--api-endpoint", fake.endpoint,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "does not fit the study's space" in err
    store = Store(storage_url)
    try:
        assert store.list_trials("mnist-mlp") == []
    finally:
        store.close()


def test_an_unknown_job_is_not_found(fake: FakeVertex, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys,
        "vertex",
        "status",
        "404",
        "--project",
        "demo",
        "--region",
        "us-central1",
        "--api-endpoint",
        fake.endpoint,
    )
    assert (code, out) == (2, "")
    assert "not found" in err and "hyperparameterTuningJobs/404" in err


def test_an_unreachable_endpoint_is_a_one_line_error(
    fake: FakeVertex, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = fake.endpoint
    fake.stop()
    code, out, err = run_cli(
        capsys, "vertex", "status", f"{PARENT}/hyperparameterTuningJobs/1", "--api-endpoint",
        endpoint,
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert "cannot reach Vertex AI" in err and err.count("\n") == 1


def test_a_bare_job_id_needs_project_and_region(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "vertex", "import", "123")
    assert code == 2
    assert "--project and --region" in err


# -- data ------------------------------------------------------------------------------------
def _param(name: str, value: Any) -> dict[str, Any]:
    return {"parameterId": name, "value": value}


def _final(value: float, step: int, **extra: float) -> dict[str, Any]:
    metrics = [{"metricId": "val_loss", "value": value}]
    metrics += [{"metricId": k, "value": v} for k, v in extra.items()]
    return {"stepCount": str(step), "metrics": metrics}


#: A job's trials as Vertex AI returns them (enums as numbers; integers as doubles).
TRIALS: list[dict[str, Any]] = [
    {
        "name": f"{PARENT}/studies/9/trials/1",
        "id": "1",
        "state": 4,  # SUCCEEDED
        "parameters": [
            _param("learning_rate", 0.01),
            _param("dropout", 0.1),
            _param("layers", 2.0),
            _param("width_2", 8.0),
            _param("units", 64.0),
            _param("optimizer", "sgd"),
            _param("momentum", 0.9),
            _param("nesterov", "true"),
            _param("batch_size", 128.0),
            _param("warmup_steps", 100.0),
        ],
        "measurements": [_final(0.52, 1), _final(0.31, 2)],
        "finalMeasurement": _final(0.31, 2, accuracy=0.9),
        "startTime": "2026-11-23T10:01:00Z",
        "endTime": "2026-11-23T10:09:00Z",
        "customJob": f"{PARENT}/customJobs/555",
    },
    {
        "id": "2",
        "state": "SUCCEEDED",
        "parameters": [
            _param("learning_rate", 0.001),
            _param("dropout", 0.2),
            _param("layers", 1),
            _param("units", 128),
            _param("optimizer", "adam"),
            _param("batch_size", 32),
        ],
        "finalMeasurement": _final(0.2, 3),
    },
    {
        "id": "3",
        "state": "INFEASIBLE",
        "parameters": [
            _param("learning_rate", 0.1),
            _param("dropout", 0.0),
            _param("layers", 1),
            _param("units", 8),
            _param("optimizer", "adam"),
            _param("batch_size", 64),
        ],
        "infeasibleReason": "The trial's container exited with code 1",
    },
    {
        "id": "4",
        "state": "ACTIVE",
        "parameters": [
            _param("learning_rate", 0.002),
            _param("dropout", 0.3),
            _param("layers", 3),
            _param("width_2", 4),
            _param("units", 256),
            _param("optimizer", "adam"),
            _param("batch_size", 64),
        ],
        "measurements": [_final(0.4, 1)],
    },
    {
        "id": "5",
        "state": "SUCCEEDED",
        "parameters": [
            _param("learning_rate", 0.05),
            _param("dropout", 0.4),
            _param("layers", 1),
            _param("units", 16),
            _param("optimizer", "adam"),
            _param("batch_size", 32),
        ],
    },
]


def _numeric_enums(body: dict[str, Any], kind: str) -> dict[str, Any]:
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    message_type = getattr(aiplatform_v1, kind)
    message = message_type.pb(message_type())
    json_format.ParseDict(body, message)
    result: dict[str, Any] = json_format.MessageToDict(message, use_integers_for_enums=True)
    return result


def _names_for_enums(body: Any) -> Any:
    """The hand-written wire body with enum names, as a server may also send them."""
    names = {
        "goal": {2: "MINIMIZE", 1: "MAXIMIZE"},
        "scaleType": {1: "UNIT_LINEAR_SCALE", 2: "UNIT_LOG_SCALE", 3: "UNIT_REVERSE_LOG_SCALE"},
        "algorithm": {3: "RANDOM_SEARCH"},
        "measurementSelectionType": {1: "LAST_MEASUREMENT"},
        "acceleratorType": {5: "NVIDIA_TESLA_T4"},
    }
    if isinstance(body, list):
        return [_names_for_enums(v) for v in body]
    if isinstance(body, dict):
        return {
            k: names[k][v] if k in names and isinstance(v, int) else _names_for_enums(v)
            for k, v in body.items()
        }
    return body
