"""Request bodies for Vertex AI jobs, in the REST JSON form (camelCase, enum names).

:func:`tuning_job_body` turns a declared study into a ``HyperparameterTuningJob``;
:func:`distributed_job_body` builds the ``CustomJob`` that runs an hpsearch chief in worker
pool 0 and hpsearch workers in worker pool 1.

The bodies are plain dicts built without google-cloud-aiplatform, in the canonical form
``MessageToDict`` gives for the GAPIC types (int64 fields as strings, doubles as floats,
fields at their proto3 default left out, so Vertex's default algorithm -- Bayesian,
ALGORITHM_UNSPECIFIED -- does not appear), so a dry run prints what is sent.
:func:`canonical` round-trips a body through the GAPIC type when google-cloud-aiplatform
is installed, which also rejects any field Vertex AI does not know.  Everything Vertex AI
cannot express is an :class:`InvalidArgumentError` here, before anything is sent.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpsearch.errors import InvalidArgumentError
from hpsearch.space import StudyConfig

#: The trial script Vertex runs per trial (it gets ``--<parameter>=<value>`` appended).
DEFAULT_TRIAL_COMMAND = ("python", "trials/mnist.py")
DEFAULT_MACHINE_TYPE = "n1-standard-4"
#: The chief's port inside a distributed CustomJob (``hpsearch worker``'s default port).
CHIEF_PORT = 8000
#: The study the chief of a distributed CustomJob serves: a study file inside the image.
DEFAULT_DISTRIBUTED_STUDY = "examples/mnist_mlp.yaml"
#: The chief's database inside the CustomJob.  A local SQLite file dies with the job: pass
#: a PostgreSQL URL reachable from Vertex AI (e.g. Cloud SQL) to keep the results.
DEFAULT_CHIEF_STORAGE = "sqlite:////tmp/hpsearch.db"

_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]*$")
_LABEL_VALUE = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class Accelerator:
    """An accelerator type and count per replica, e.g. ``NVIDIA_TESLA_T4:2``."""

    type: str
    count: int = 1

    def __post_init__(self) -> None:
        if not _ACCELERATOR.match(self.type):
            raise InvalidArgumentError(
                f"accelerator type {self.type!r} is not a Vertex AI accelerator name; use e.g. "
                "NVIDIA_TESLA_T4, NVIDIA_L4 or NVIDIA_TESLA_V100"
            )
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise InvalidArgumentError(
                f"accelerator count must be an integer >= 1, got {self.count!r}"
            )

    @classmethod
    def parse(cls, text: str) -> Accelerator:
        """Parse ``TYPE`` or ``TYPE:COUNT``."""
        kind, _, count = text.strip().partition(":")
        if not count:
            return cls(kind.upper())
        try:
            number = int(count)
        except ValueError:
            raise InvalidArgumentError(
                f"accelerator {text!r}: the count after ':' must be an integer, e.g. "
                "NVIDIA_TESLA_T4:2"
            ) from None
        return cls(kind.upper(), number)


@dataclass(frozen=True, slots=True)
class Machine:
    """What each replica runs on."""

    machine_type: str = DEFAULT_MACHINE_TYPE
    accelerator: Accelerator | None = None

    def __post_init__(self) -> None:
        if not self.machine_type or any(ch.isspace() for ch in self.machine_type):
            raise InvalidArgumentError(
                f"machine type {self.machine_type!r} is not valid; use e.g. n1-standard-4"
            )

    def body(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"machineType": self.machine_type}
        if self.accelerator is not None:
            spec["acceleratorType"] = self.accelerator.type
            spec["acceleratorCount"] = self.accelerator.count
        return spec


@dataclass(frozen=True, slots=True)
class TrialJobSpec:
    """The CustomJob every trial runs: one container image, its command and arguments."""

    image: str
    command: tuple[str, ...] = DEFAULT_TRIAL_COMMAND
    args: tuple[str, ...] = ()
    machine: Machine = field(default_factory=Machine)
    replica_count: int = 1
    base_output_dir: str | None = None
    service_account: str | None = None

    def __post_init__(self) -> None:
        _check_image(self.image)
        if not self.command:
            raise InvalidArgumentError(
                "the trial command is empty; give the command that runs the trial script, "
                "e.g. --command 'python trials/mnist.py'"
            )
        if self.replica_count < 1:
            raise InvalidArgumentError(f"replica count must be >= 1, got {self.replica_count}")
        if self.base_output_dir is not None:
            _check_gcs(self.base_output_dir, "--base-output-dir")
        if self.service_account is not None and "@" not in self.service_account:
            raise InvalidArgumentError(
                f"service account {self.service_account!r} is not an email address; use "
                "NAME@PROJECT.iam.gserviceaccount.com"
            )


def tuning_job_body(
    config: StudyConfig,
    trial_job: TrialJobSpec,
    *,
    display_name: str | None = None,
) -> dict[str, Any]:
    """The ``HyperparameterTuningJob`` REST body for a declared study.

    Raises :class:`InvalidArgumentError` for anything Vertex AI cannot run (an algorithm
    it lacks, a parameter kind it cannot express, an empty space, a bad budget).
    """
    if not len(config.space):
        raise InvalidArgumentError(
            f"study {config.name!r} declares no parameters; a Vertex AI tuning job needs "
            "its space up front (parameters: in the study file)"
        )
    if config.budget.parallel_trials > config.budget.max_trials:
        raise InvalidArgumentError(
            f"budget.parallel_trials ({config.budget.parallel_trials}) exceeds "
            f"budget.max_trials ({config.budget.max_trials}); Vertex AI refuses that, lower it"
        )
    body: dict[str, Any] = {
        "displayName": display_name or config.name,
        "studySpec": study_spec_body(config),
        "maxTrialCount": config.budget.max_trials,
        "parallelTrialCount": config.budget.parallel_trials,
    }
    if config.budget.max_failed_trials is not None:
        # 0 is Vertex's "unset" (its own default applies), so it cannot be sent as a limit.
        if config.budget.max_failed_trials == 0:
            raise InvalidArgumentError(
                "budget.max_failed_trials: 0 means 'Vertex default' to Vertex AI; leave it "
                "out, or allow at least 1 failed trial"
            )
        body["maxFailedTrialCount"] = config.budget.max_failed_trials
    body["trialJobSpec"] = _custom_job_spec(
        [_worker_pool(trial_job.machine, trial_job.replica_count, trial_job)],
        base_output_dir=trial_job.base_output_dir,
        service_account=trial_job.service_account,
    )
    body["labels"] = {"hpsearch-study": label_value(config.name)}
    return _without_defaults(body)


def study_spec_body(config: StudyConfig) -> dict[str, Any]:
    """The ``StudySpec`` of a study: metric, parameters, algorithm, measurement selection.

    Built by :func:`hpsearch.space.vertex.study_spec_to_vertex`; this adds the checks
    Vertex AI's job API makes (grid search needs enumerable parameters) and puts the
    fields in their canonical JSON form.
    """
    from hpsearch.space.vertex import study_spec_to_vertex

    spec = copy.deepcopy(dict(study_spec_to_vertex(config)))
    if spec.get("algorithm") == "GRID_SEARCH":
        _check_grid(spec.get("parameters", []))
    return _canonical_study_spec(spec)


def distributed_job_body(
    *,
    image: str,
    workers: int = 1,
    study: str = DEFAULT_DISTRIBUTED_STUDY,
    chief_storage: str = DEFAULT_CHIEF_STORAGE,
    trial_command: Sequence[str] = DEFAULT_TRIAL_COMMAND,
    display_name: str = "hpsearch-distributed",
    chief_machine: Machine | None = None,
    worker_machine: Machine | None = None,
    gpus_per_trial: int | None = None,
    base_output_dir: str | None = None,
    service_account: str | None = None,
    timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """The ``CustomJob`` REST body of a distributed search on Vertex AI.

    Worker pool 0 (one replica) runs ``hpsearch chief`` on :data:`CHIEF_PORT` with the
    study ``study`` (a study file inside the image, or a study name in ``chief_storage``).
    Worker pool 1 (``workers`` replicas) runs ``hpsearch worker -- <trial_command>``; each
    worker finds the chief in Vertex AI's ``CLUSTER_SPEC`` (the first ``workerpool0``
    replica) on port ``KERASTUNER_ORACLE_PORT``, which is set to :data:`CHIEF_PORT`.
    """
    _check_image(image)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"--workers must be an integer >= 1, got {workers!r}")
    if not trial_command:
        raise InvalidArgumentError(
            "the trial command is empty; e.g. --command 'python trials/mnist.py'"
        )
    if not study:
        raise InvalidArgumentError("the chief needs a study: a study file in the image or a name")
    if base_output_dir is not None:
        _check_gcs(base_output_dir, "--base-output-dir")
    # --exit-when-done: Vertex ends a CustomJob when workerpool0's process exits.
    chief_args = [
        "chief",
        "--port",
        str(CHIEF_PORT),
        "--storage",
        chief_storage,
        "--study",
        study,
        "--exit-when-done",
    ]
    worker_args = ["worker"]
    if gpus_per_trial is not None:
        worker_args += ["--gpus-per-trial", str(gpus_per_trial)]
    if base_output_dir:
        worker_args += ["--output-dir", base_output_dir.rstrip("/") + "/trials"]
    worker_args += ["--", *trial_command]
    chief = _pool(chief_machine or Machine(), 1, image, ("hpsearch",), chief_args)
    worker = _pool(worker_machine or Machine(), workers, image, ("hpsearch",), worker_args)
    worker["containerSpec"]["env"] = [{"name": "KERASTUNER_ORACLE_PORT", "value": str(CHIEF_PORT)}]
    spec = _custom_job_spec(
        [chief, worker], base_output_dir=base_output_dir, service_account=service_account
    )
    if timeout_seconds is not None:
        if timeout_seconds < 1:
            raise InvalidArgumentError(f"--timeout must be >= 1 second, got {timeout_seconds}")
        spec["scheduling"] = {"timeout": f"{int(timeout_seconds)}s"}
    return _without_defaults(
        {
            "displayName": display_name,
            "jobSpec": spec,
            "labels": {"hpsearch-role": "distributed-search"},
        }
    )


def canonical(body: Mapping[str, Any], kind: str = "HyperparameterTuningJob") -> dict[str, Any]:
    """``body`` round-tripped through the GAPIC type ``aiplatform_v1.<kind>``.

    Raises :class:`InvalidArgumentError` for a field Vertex AI does not know.  Without
    google-cloud-aiplatform installed, returns ``body`` unchanged.
    """
    try:
        from google.cloud import aiplatform_v1  # noqa: F401
    except ImportError:
        return dict(body)
    from hpsearch.vertex.api import to_dict, to_message

    return to_dict(to_message(body, kind))


def label_value(text: str) -> str:
    """A Vertex label value: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return _LABEL_VALUE.sub("-", text.lower())[:63]


# -- helpers ---------------------------------------------------------------------------------
def _custom_job_spec(
    pools: list[dict[str, Any]], *, base_output_dir: str | None, service_account: str | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {"workerPoolSpecs": pools}
    if service_account:
        spec["serviceAccount"] = service_account
    if base_output_dir:
        spec["baseOutputDirectory"] = {"outputUriPrefix": base_output_dir}
    return spec


def _worker_pool(machine: Machine, replicas: int, trial_job: TrialJobSpec) -> dict[str, Any]:
    return _pool(machine, replicas, trial_job.image, trial_job.command, trial_job.args)


def _pool(
    machine: Machine,
    replicas: int,
    image: str,
    command: Sequence[str],
    args: Sequence[str],
) -> dict[str, Any]:
    container: dict[str, Any] = {"imageUri": image, "command": list(command)}
    if args:
        container["args"] = list(args)
    # replicaCount is an int64: its canonical JSON form is a string.
    return {
        "machineSpec": machine.body(),
        "replicaCount": str(replicas),
        "containerSpec": container,
    }


def _check_image(image: str) -> None:
    if not image or any(ch.isspace() for ch in image) or image.startswith("-"):
        raise InvalidArgumentError(
            f"container image {image!r} is not a valid URI; use e.g. "
            "us-docker.pkg.dev/PROJECT/REPO/hpsearch:latest"
        )


def _check_gcs(uri: str, option: str) -> None:
    if not uri.startswith("gs://") or len(uri) <= len("gs://"):
        raise InvalidArgumentError(
            f"{option} must be a Cloud Storage URI such as gs://BUCKET/path, got {uri!r}"
        )


def _walk_parameters(specs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    found: list[Mapping[str, Any]] = []
    for spec in specs:
        found.append(spec)
        children = [c.get("parameterSpec", {}) for c in spec.get("conditionalParameterSpecs", [])]
        found.extend(_walk_parameters(children))
    return found


def _check_grid(specs: Sequence[Mapping[str, Any]]) -> None:
    for spec in _walk_parameters(specs):
        if "doubleValueSpec" in spec:
            raise InvalidArgumentError(
                f"parameter {spec.get('parameterId')!r}: Vertex AI grid search cannot "
                "enumerate a continuous double range; give it a step (it becomes discrete), "
                "declare it discrete, or use algorithm: bayesian or random"
            )


def _without_defaults(value: Any) -> Any:
    """Drop proto3 scalar fields at their default (0, "", false, *_UNSPECIFIED), as the JSON
    mapping does; ``defaultValue`` fields have presence and stay."""
    if isinstance(value, list):
        return [_without_defaults(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key != "defaultValue" and (
            (not isinstance(item, dict) and item in (0, "0", "", False, []))
            or (isinstance(item, str) and item.endswith("_UNSPECIFIED"))
        ):
            continue
        out[key] = _without_defaults(item)
    return out


def _canonical_study_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Put int64 fields as strings and double fields as floats (``MessageToDict``'s form)."""
    spec["parameters"] = [_canonical_parameter(p) for p in spec.get("parameters", [])]
    return spec


def _canonical_parameter(spec: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(spec)
    if "doubleValueSpec" in out:
        out["doubleValueSpec"] = {k: float(v) for k, v in out["doubleValueSpec"].items()}
    if "integerValueSpec" in out:
        out["integerValueSpec"] = {k: str(int(v)) for k, v in out["integerValueSpec"].items()}
    if "discreteValueSpec" in out:
        discrete = dict(out["discreteValueSpec"])
        discrete["values"] = [float(v) for v in discrete.get("values", [])]
        if "defaultValue" in discrete:
            discrete["defaultValue"] = float(discrete["defaultValue"])
        out["discreteValueSpec"] = discrete
    children = []
    for child in out.get("conditionalParameterSpecs", []):
        child = dict(child)
        if "parentIntValues" in child:
            child["parentIntValues"] = {
                "values": [str(int(v)) for v in child["parentIntValues"].get("values", [])]
            }
        if "parentDiscreteValues" in child:
            child["parentDiscreteValues"] = {
                "values": [float(v) for v in child["parentDiscreteValues"].get("values", [])]
            }
        child["parameterSpec"] = _canonical_parameter(child.get("parameterSpec", {}))
        children.append(child)
    if children or "conditionalParameterSpecs" in out:
        out["conditionalParameterSpecs"] = children
    return out
