"""``hpsearch worker``: ask the chief for trials and run them under the Vertex AI contract.

Where the chief is when ``--oracle`` is not given: :mod:`hpsearch.worker.discovery`.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal

from hpsearch.cli.common import Subparsers

log = logging.getLogger(__name__)


def register(subparsers: Subparsers) -> None:
    """Add ``worker``."""
    parser = subparsers.add_parser(
        "worker",
        help="ask the chief for trials and run them (Vertex AI trial contract)",
        description="Runs trials of a study: for each, the trial command gets the trial's "
        "parameters as --name=value flags and Vertex AI's environment (CLOUD_ML_TRIAL_ID, "
        "CLOUD_ML_HP_METRIC_FILE, AIP_MODEL_DIR, AIP_CHECKPOINT_DIR, AIP_TENSORBOARD_LOG_DIR); "
        "metrics reported with cloudml-hypertune go back to the chief. Exits 0 when the "
        "study is finished.",
        usage="hpsearch worker [--oracle HOST:PORT] [--study NAME] [options] -- COMMAND ...",
    )
    parser.add_argument(
        "--oracle",
        default=None,
        help="chief address HOST:PORT (default: $KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT,"
        " else the chief of $CLUSTER_SPEC/$TF_CONFIG)",
    )
    parser.add_argument(
        "--study",
        default=os.environ.get("HPSEARCH_STUDY"),
        help="study to work on (default $HPSEARCH_STUDY, else the chief's only active study)",
    )
    parser.add_argument(
        "--worker-id",
        default=None,
        help="this worker's id (default $KERASTUNER_TUNER_ID, else host-pid)",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=int,
        default=1,
        metavar="K",
        help="GPUs per trial; runs floor(gpus / K) trials at once (0: CPU only)",
    )
    parser.add_argument(
        "--gpus", default=None, help="comma-separated GPU indices to use (default: all detected)"
    )
    parser.add_argument(
        "--output-dir",
        default=os.environ.get("HPSEARCH_OUTPUT_DIR", "hpsearch-output"),
        help="base of the trials' AIP_* directories: <dir>/<study>/<trial>/{model,checkpoints,"
        "logs}/ (a local path or gs://...; default ./hpsearch-output)",
    )
    parser.add_argument(
        "--max-trials", type=int, default=None, help="leave after running this many trials"
    )
    parser.add_argument(
        "--stop-grace",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL when a trial is stopped",
    )
    secure = parser.add_argument_group("security (must match the chief's)")
    secure.add_argument(
        "--token-file",
        default=None,
        help="file holding the chief's bearer token (default $HPSEARCH_TOKEN, else the file "
        "in $HPSEARCH_TOKEN_FILE)",
    )
    secure.add_argument(
        "--tls-ca",
        default=None,
        help="talk TLS to the chief and verify it with this CA (PEM; default "
        "$HPSEARCH_TLS_CA_FILE)",
    )
    secure.add_argument(
        "--tls-cert",
        default=None,
        help="client certificate for mutual TLS (PEM; default $HPSEARCH_TLS_CLIENT_CERT_FILE)",
    )
    secure.add_argument(
        "--tls-key",
        default=None,
        help="the client certificate's key (PEM; default $HPSEARCH_TLS_CLIENT_KEY_FILE)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the trial command, after --")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from hpsearch.client import Client
    from hpsearch.worker.discovery import only_active_study, resolve_oracle
    from hpsearch.worker.loop import Worker, WorkerOptions

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    address, default_id = resolve_oracle(args.oracle, os.environ)
    worker_id = args.worker_id or default_id
    client = Client(
        address,
        token_file=args.token_file,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    study = args.study or only_active_study(client)
    options = WorkerOptions(
        oracle=address,
        study=study,
        command=command,
        worker_id=worker_id,
        output_dir=args.output_dir,
        gpus_per_trial=args.gpus_per_trial,
        gpus=None if args.gpus is None else [g.strip() for g in args.gpus.split(",") if g.strip()],
        stop_grace_seconds=args.stop_grace,
        max_trials=args.max_trials,
    )
    worker = Worker(options, client)

    def on_signal(signum: int, frame: object) -> None:
        log.info("worker stopping signal=%s", signal.Signals(signum).name)
        worker.shutdown()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        worker.run()
    finally:
        client.close()
    return 0
