"""``hpsearch vertex``: run a study on Vertex AI and bring its trials back.

- ``submit STUDY_FILE``: create a HyperparameterTuningJob from a declared study
  (``--dry-run`` prints the request body and needs no credentials);
- ``status JOB``: the job's state, trial counts and best trial (``--import`` also imports);
- ``import JOB``: copy the job's finished trials into an hpsearch study (idempotent);
- ``submit-distributed``: a CustomJob running ``hpsearch chief`` in worker pool 0 and
  ``hpsearch worker`` in worker pool 1.

Imports nothing heavy at module level: google-cloud-aiplatform is loaded only when a
command talks to Vertex AI.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from hpsearch.cli.common import Subparsers, add_actions, add_storage
from hpsearch.cli.output import print_json
from hpsearch.errors import InvalidArgumentError
from hpsearch.vertex.job import DEFAULT_TRIAL_COMMAND

_ENDPOINT_HELP = (
    "Vertex AI API endpoint (default REGION-aiplatform.googleapis.com); an http:// URL "
    "(a local fake of the API) is called with anonymous credentials"
)


def register(subparsers: Subparsers) -> None:
    """Add ``vertex`` and its actions."""
    vertex = subparsers.add_parser(
        "vertex",
        help="run studies on Vertex AI and import their trials",
        description="Submit a declared study as a Vertex AI HyperparameterTuningJob, follow "
        "it, import its trials into an hpsearch study, or run the chief and workers as a "
        "Vertex AI CustomJob. Needs the vertex extra: pip install 'hpsearch[vertex]'.",
    )
    actions = add_actions(vertex, "vertex commands")

    submit = actions.add_parser(
        "submit",
        help="create a HyperparameterTuningJob from a study file",
        description="Builds a HyperparameterTuningJob from the study: its parameters, "
        "metric and goal, budget, algorithm and measurement selection; every trial runs the "
        "trial command in the image with --<parameter>=<value> flags appended. Prints the "
        "job's resource name, or with --dry-run the exact request body as JSON.",
    )
    submit.add_argument("study_file", metavar="STUDY_FILE", help="study file (.yaml or .json)")
    _project_region(submit, required=False)
    _image(submit)
    _machine(submit, accelerator_help="accelerator per trial, TYPE[:COUNT]")
    submit.add_argument(
        "--command",
        default=shlex.join(DEFAULT_TRIAL_COMMAND),
        help="trial command in the container, split like a shell "
        "(default: 'python trials/mnist.py')",
    )
    submit.add_argument(
        "--args",
        default="",
        help="extra arguments after the command, e.g. --args='--epochs=20 --dataset=mnist' "
        "(the trial's --<parameter>=<value> flags come after them)",
    )
    submit.add_argument(
        "--replica-count", type=int, default=1, help="machines per trial (default 1)"
    )
    _outputs(submit)
    submit.add_argument("--display-name", default=None, help="job name (default: the study's)")
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="print the request body as JSON and send nothing (needs no credentials)",
    )
    submit.add_argument("--api-endpoint", default=None, help=_ENDPOINT_HELP)
    submit.set_defaults(func=_cmd_submit)

    status = actions.add_parser(
        "status",
        help="show a tuning job's state, trial counts and best trial",
        description="Reads the job from Vertex AI. With --import, also copies its finished "
        "trials into the study (as `hpsearch vertex import` does).",
    )
    _job(status)
    status.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    status.add_argument(
        "--import",
        dest="do_import",
        action="store_true",
        help="also import the job's finished trials into the study",
    )
    status.add_argument("--study", default=None, help="study to import into (with --import)")
    add_storage(status)
    status.set_defaults(func=_cmd_status)

    imp = actions.add_parser(
        "import",
        help="copy a tuning job's trials into an hpsearch study",
        description="Creates the study from the job's study spec (or uses the existing "
        "study of that name) and adds every finished trial: parameters, intermediate "
        "measurements, final value, or the failure. Importing again adds only trials "
        "finished since (each trial is tagged with its Vertex trial id).",
    )
    _job(imp)
    imp.add_argument("--study", default=None, help="study name (default: the job's name)")
    add_storage(imp)
    imp.set_defaults(func=_cmd_import)

    dist = actions.add_parser(
        "submit-distributed",
        help="run the chief and hpsearch workers as one Vertex AI CustomJob",
        description="Worker pool 0 runs `hpsearch chief` (port 8000); worker pool 1 runs "
        "`hpsearch worker -- COMMAND` on each of --workers machines, finding the chief "
        "through Vertex AI's CLUSTER_SPEC.",
    )
    _project_region(dist, required=False)
    _image(dist)
    dist.add_argument(
        "--workers", type=int, default=2, help="worker replicas in worker pool 1 (default 2)"
    )
    dist.add_argument(
        "--study",
        default=None,
        help="what the chief serves: a study file inside the image or a study name in "
        "--chief-storage (default examples/mnist_mlp.yaml)",
    )
    dist.add_argument(
        "--chief-storage",
        default=None,
        help="the chief's database URL; the default SQLite file inside the job is lost when "
        "it ends, so pass a PostgreSQL URL reachable from Vertex AI to keep the results",
    )
    dist.add_argument(
        "--command",
        default=shlex.join(DEFAULT_TRIAL_COMMAND),
        help="trial command the workers run (default: 'python trials/mnist.py')",
    )
    _machine(dist, accelerator_help="accelerator per worker machine, TYPE[:COUNT]")
    dist.add_argument(
        "--chief-machine-type", default="n1-standard-4", help="chief machine (no accelerator)"
    )
    dist.add_argument("--gpus-per-trial", type=int, default=None, help="passed to hpsearch worker")
    _outputs(dist)
    dist.add_argument(
        "--timeout", type=int, default=None, help="stop the job after this many seconds"
    )
    dist.add_argument("--display-name", default="hpsearch-distributed", help="job name")
    dist.add_argument(
        "--dry-run", action="store_true", help="print the CustomJob request body and send nothing"
    )
    dist.add_argument("--api-endpoint", default=None, help=_ENDPOINT_HELP)
    dist.set_defaults(func=_cmd_submit_distributed)


# -- commands --------------------------------------------------------------------------------
def _cmd_submit(args: argparse.Namespace) -> int:
    from hpsearch.space import load_study
    from hpsearch.vertex.job import TrialJobSpec, canonical, tuning_job_body

    config = load_study(args.study_file)
    display_name = args.display_name or config.name
    trial_job = TrialJobSpec(
        image=args.image,
        command=tuple(_split(args.command, "--command")),
        args=tuple(_split(args.args, "--args")),
        machine=_machine_from(args),
        replica_count=args.replica_count,
        base_output_dir=_base_output_dir(args, display_name),
        service_account=args.service_account,
    )
    body = canonical(tuning_job_body(config, trial_job, display_name=display_name))
    if args.dry_run:
        print_json(body)
        return 0
    from hpsearch.vertex.api import create_tuning_job

    project, region = _need_project_region(args)
    job = create_tuning_job(body, project=project, region=region, api_endpoint=args.api_endpoint)
    print(job.get("name", ""))
    print(
        f"follow it with `hpsearch vertex status {job.get('name', '')}`; import its trials "
        "with `hpsearch vertex import`",
        file=sys.stderr,
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from hpsearch.vertex.api import get_tuning_job, job_name
    from hpsearch.vertex.importer import job_summary

    name = job_name(args.job, project=args.project, region=args.region)
    job = get_tuning_job(name, api_endpoint=args.api_endpoint)
    summary = job_summary(job)
    if args.format == "json":
        print_json(summary)
    else:
        counts = ", ".join(f"{s.lower()} {n}" for s, n in sorted(summary["trials"].items()))
        print(f"job:     {summary['name']} ({summary['display_name']})")
        print(f"state:   {summary['state']}")
        print(f"metric:  {summary['metric']} ({summary['goal']})")
        print(f"trials:  {counts or 'none yet'} (max {summary['max_trials']})")
        if "best" in summary:
            best = summary["best"]
            print(
                f"best:    trial {best['trial_id']} {summary['metric']}={best['value']:.6g} "
                f"{json.dumps(best['params'])}"
            )
        if "error" in summary:
            print(f"error:   {summary['error']}")
    if args.do_import:
        _import(job, args)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from hpsearch.vertex.api import get_tuning_job, job_name

    name = job_name(args.job, project=args.project, region=args.region)
    _import(get_tuning_job(name, api_endpoint=args.api_endpoint), args)
    return 0


def _cmd_submit_distributed(args: argparse.Namespace) -> int:
    from hpsearch.vertex.job import (
        DEFAULT_CHIEF_STORAGE,
        DEFAULT_DISTRIBUTED_STUDY,
        Machine,
        canonical,
        distributed_job_body,
    )

    body = canonical(
        distributed_job_body(
            image=args.image,
            workers=args.workers,
            study=args.study or DEFAULT_DISTRIBUTED_STUDY,
            chief_storage=args.chief_storage or DEFAULT_CHIEF_STORAGE,
            trial_command=_split(args.command, "--command"),
            display_name=args.display_name,
            chief_machine=Machine(args.chief_machine_type),
            worker_machine=_machine_from(args),
            gpus_per_trial=args.gpus_per_trial,
            base_output_dir=_base_output_dir(args, args.display_name),
            service_account=args.service_account,
            timeout_seconds=args.timeout,
        ),
        "CustomJob",
    )
    if args.dry_run:
        print_json(body)
        return 0
    from hpsearch.vertex.api import create_custom_job

    project, region = _need_project_region(args)
    job = create_custom_job(body, project=project, region=region, api_endpoint=args.api_endpoint)
    print(job.get("name", ""))
    if not args.chief_storage:
        print(
            "note: the chief keeps its study in a SQLite file inside the job; pass "
            "--chief-storage postgresql+psycopg://... to keep the results",
            file=sys.stderr,
        )
    return 0


# -- helpers ---------------------------------------------------------------------------------
def _import(job: dict[str, Any], args: argparse.Namespace) -> None:
    from hpsearch.store import Store
    from hpsearch.vertex.importer import import_job

    store = Store(args.storage)
    try:
        result = import_job(store, job, study=args.study)
    finally:
        store.close()
    created = " (created)" if result.created_study else ""
    print(
        f"imported {result.added} trial(s) into study {result.study!r}{created}: "
        f"{result.completed} completed, {result.failed} failed; {result.unchanged} already "
        f"imported, {result.pending} still running on Vertex AI"
    )


def _project_region(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--project", required=required, help="Google Cloud project id")
    parser.add_argument("--region", required=required, help="Vertex AI region, e.g. us-central1")


def _job(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "job",
        metavar="JOB",
        help="projects/P/locations/R/hyperparameterTuningJobs/ID, or the bare ID with "
        "--project and --region",
    )
    _project_region(parser, required=False)
    parser.add_argument("--api-endpoint", default=None, help=_ENDPOINT_HELP)


def _image(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image",
        required=True,
        help="container image URI holding hpsearch and the trial script, e.g. "
        "us-docker.pkg.dev/PROJECT/REPO/hpsearch:latest",
    )


def _machine(parser: argparse.ArgumentParser, *, accelerator_help: str) -> None:
    parser.add_argument(
        "--machine-type", default="n1-standard-4", help="machine type (default n1-standard-4)"
    )
    parser.add_argument(
        "--accelerator", default=None, metavar="TYPE[:COUNT]", help=accelerator_help
    )


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--staging-bucket",
        default=None,
        help="gs://BUCKET: outputs go under gs://BUCKET/hpsearch/<job name> unless "
        "--base-output-dir is given",
    )
    parser.add_argument(
        "--base-output-dir",
        default=None,
        help="gs:// prefix of the trials' AIP_MODEL_DIR, AIP_CHECKPOINT_DIR and "
        "AIP_TENSORBOARD_LOG_DIR",
    )
    parser.add_argument(
        "--service-account", default=None, help="service account the trials run as"
    )


def _machine_from(args: argparse.Namespace) -> Any:
    from hpsearch.vertex.job import Accelerator, Machine

    accelerator = Accelerator.parse(args.accelerator) if args.accelerator else None
    return Machine(args.machine_type, accelerator)


def _base_output_dir(args: argparse.Namespace, display_name: str) -> str | None:
    if args.base_output_dir:
        return str(args.base_output_dir)
    if args.staging_bucket:
        bucket = str(args.staging_bucket).rstrip("/")
        if not bucket.startswith("gs://"):
            raise InvalidArgumentError(
                f"--staging-bucket must be a Cloud Storage URI such as gs://BUCKET, got "
                f"{args.staging_bucket!r}"
            )
        return f"{bucket}/hpsearch/{display_name}"
    return None


def _need_project_region(args: argparse.Namespace) -> tuple[str, str]:
    missing = [flag for flag in ("project", "region") if not getattr(args, flag)]
    if missing:
        raise InvalidArgumentError(
            f"creating a job needs {' and '.join('--' + m for m in missing)} "
            "(or use --dry-run to only print the request)"
        )
    return str(args.project), str(args.region)


def _split(text: str, flag: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidArgumentError(f"{flag}: cannot split {text!r}: {exc}") from None
