"""Importing a tuning job's JSON into the store directly (no google-cloud-aiplatform needed)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from hpsearch.errors import InvalidArgumentError
from hpsearch.records import TrialState
from hpsearch.store import Store
from hpsearch.vertex.importer import (
    IMPORT_WORKER,
    TAG_JOB,
    TAG_TRIAL,
    import_job,
    job_summary,
    study_config_from_job,
)

NAME = "projects/demo/locations/europe-west4/hyperparameterTuningJobs/42"

#: A job as ``MessageToDict`` renders it: enum names, int64 as strings, zero bounds left out.
JOB: dict[str, Any] = {
    "name": NAME,
    "displayName": "MLP study #3",
    "state": "JOB_STATE_RUNNING",
    "studySpec": {
        "metrics": [{"metricId": "val_accuracy", "goal": "MAXIMIZE"}],
        "parameters": [
            {
                "parameterId": "learning_rate",
                "doubleValueSpec": {"minValue": 0.0001, "maxValue": 0.1},
                "scaleType": "UNIT_LOG_SCALE",
            },
            {
                "parameterId": "n_hidden",
                "integerValueSpec": {"maxValue": "10"},
                "scaleType": "UNIT_LINEAR_SCALE",
            },
        ],
    },
    "maxTrialCount": 10,
    "parallelTrialCount": 2,
    "trials": [
        {
            "id": "1",
            "state": "SUCCEEDED",
            "parameters": [
                {"parameterId": "learning_rate", "value": 0.01},
                {"parameterId": "n_hidden", "value": 0.0},
            ],
            "measurements": [
                {"metrics": [{"metricId": "val_accuracy", "value": 0.5}]},  # step 0: left out
                {"stepCount": "1", "metrics": [{"metricId": "val_accuracy", "value": 0.8}]},
            ],
            "finalMeasurement": {
                "stepCount": "1",
                "metrics": [{"metricId": "val_accuracy", "value": 0.8}],
            },
        },
        {
            "id": "2",
            "state": "SUCCEEDED",
            "parameters": [
                {"parameterId": "learning_rate", "value": 0.05},
                {"parameterId": "n_hidden", "value": 3.0},
            ],
            "finalMeasurement": {"metrics": [{"metricId": "val_accuracy", "value": 0.9}]},
        },
        {
            "id": "3",
            "state": "REQUESTED",
            "parameters": [
                {"parameterId": "learning_rate", "value": 0.002},
                {"parameterId": "n_hidden", "value": 1.0},
            ],
        },
    ],
}


def test_the_study_comes_from_the_job() -> None:
    config = study_config_from_job(JOB)
    assert config.name == "MLP-study--3"
    assert [p.name for p in config.space] == ["learning_rate", "n_hidden"]
    n_hidden = config.space["n_hidden"]
    assert (n_hidden.min, n_hidden.max) == (0, 10)  # type: ignore[union-attr]
    assert config.metric.goal.value == "maximize"
    assert (config.budget.max_trials, config.budget.parallel_trials) == (10, 2)
    assert config.budget.max_failed_trials is None
    assert (config.algorithm, config.measurement.value) == ("bayesian", "best")


def test_import_then_reimport(store: Store) -> None:
    result = import_job(store, JOB)
    assert (result.study, result.created_study) == ("MLP-study--3", True)
    assert (result.completed, result.failed, result.unchanged, result.pending) == (2, 0, 0, 1)
    trials = store.list_trials("MLP-study--3")
    assert [(t.tags[TAG_TRIAL], t.state, t.value) for t in trials] == [
        ("1", TrialState.COMPLETED, 0.8),
        ("2", TrialState.COMPLETED, 0.9),
    ]
    assert trials[0].params == {"learning_rate": 0.01, "n_hidden": 0}
    assert trials[0].worker_id == IMPORT_WORKER
    steps = [(m.step, m.metrics) for m in store.list_measurements("MLP-study--3", 0)]
    assert steps == [(0, {"val_accuracy": 0.5}), (1, {"val_accuracy": 0.8})]

    again = import_job(store, JOB)
    assert (again.created_study, again.added, again.unchanged, again.pending) == (False, 0, 2, 1)
    assert len(store.list_trials("MLP-study--3")) == 2


def test_an_import_that_stopped_half_way_is_finished_by_the_next(store: Store) -> None:
    config = study_config_from_job(JOB, name="half")
    store.create_study(config)
    # What an import leaves when it dies between creating trial 1 and finishing it.
    store.create_trial(
        "half",
        {"learning_rate": 0.01, "n_hidden": 0},
        worker_id=IMPORT_WORKER,
        tags={TAG_JOB: NAME, TAG_TRIAL: "1"},
    )
    result = import_job(store, JOB, study="half")
    assert (result.completed, result.unchanged, result.numbers) == (2, 0, {"1": 0, "2": 1})
    trials = store.list_trials("half")
    assert [(t.number, t.state, t.value) for t in trials] == [
        (0, TrialState.COMPLETED, 0.8),
        (1, TrialState.COMPLETED, 0.9),
    ]


def test_trials_of_another_job_are_not_taken_for_this_one(store: Store) -> None:
    other = copy.deepcopy(JOB)
    other["name"] = NAME.replace("/42", "/43")
    import_job(store, JOB, study="shared")
    result = import_job(store, other, study="shared")
    assert (result.completed, result.unchanged) == (2, 0)
    assert len(store.list_trials("shared")) == 4


def test_a_multi_objective_job_with_a_safety_metric_imports_its_front(store: Store) -> None:
    """Two objectives and a safety metric (Vertex's constraint): the study gets both
    metrics and the constraint; a trial past the safety threshold is infeasible and off
    the front; the front is the other two (neither beats the other on both metrics)."""
    job = copy.deepcopy(JOB)
    job["studySpec"]["metrics"] += [
        {"metricId": "latency_ms", "goal": "MINIMIZE"},
        {"metricId": "memory_gb", "goal": "MINIMIZE", "safetyConfig": {"safetyThreshold": 8}},
    ]
    finals = {"1": (0.8, 2.0, 4.0), "2": (0.9, 9.0, 12.0)}
    for trial in job["trials"]:
        if trial["id"] in finals:
            acc, latency, memory = finals[trial["id"]]
            trial["finalMeasurement"] = {
                "metrics": [
                    {"metricId": "val_accuracy", "value": acc},
                    {"metricId": "latency_ms", "value": latency},
                    {"metricId": "memory_gb", "value": memory},
                ]
            }
    job["trials"].append(
        {
            "id": "4",
            "state": "SUCCEEDED",
            "parameters": [
                {"parameterId": "learning_rate", "value": 0.02},
                {"parameterId": "n_hidden", "value": 2.0},
            ],
            "finalMeasurement": {
                "metrics": [
                    {"metricId": "val_accuracy", "value": 0.85},
                    {"metricId": "latency_ms", "value": 3.0},
                    {"metricId": "memory_gb", "value": 6.0},
                ]
            },
        }
    )
    config = study_config_from_job(job)
    assert [(m.name, m.goal.value) for m in config.metrics] == [
        ("val_accuracy", "maximize"),
        ("latency_ms", "minimize"),
    ]
    assert [str(c) for c in config.constraints] == ["memory_gb <= 8"]
    result = import_job(store, job)
    assert (result.completed, result.failed) == (3, 0)
    trials = {t.tags[TAG_TRIAL]: t for t in store.list_trials(result.study)}
    assert not trials["2"].feasible and "memory_gb = 12 breaks" in trials["2"].infeasible_reason
    front = store.best_trials(result.study, 10)
    assert [t.tags[TAG_TRIAL] for t in front] == ["4", "1"]  # best first by val_accuracy


def test_a_job_with_only_safety_metrics_is_refused(store: Store) -> None:
    job = copy.deepcopy(JOB)
    job["studySpec"]["metrics"][0]["safetyConfig"] = {"safetyThreshold": 0.5}
    with pytest.raises(InvalidArgumentError, match="no objective metric"):
        import_job(store, job)
    assert store.list_studies() == []


def test_summary_of_a_job() -> None:
    summary = job_summary(JOB)
    assert summary["trials"] == {"SUCCEEDED": 2, "REQUESTED": 1}
    assert summary["best"] == {
        "trial_id": "2",
        "value": 0.9,
        "params": {"learning_rate": 0.05, "n_hidden": 3.0},
    }
