"""Python client of the chief's ``hpsearch.v1`` API.

::

    from hpsearch.client import Client

    with Client("chief:8000") as client:
        while trials := client.ask("mnist-mlp", worker_id="gpu-box-1"):
            trial = trials[0]
            ...  # train, calling client.heartbeat(...) / client.report(...) as it goes
            client.tell("mnist-mlp", trial.number, trial.attempt, value=0.97)

Every call has a deadline.  UNAVAILABLE and DEADLINE_EXCEEDED are retried with
exponential backoff (with jitter) for up to ``retry_seconds``, so workers ride out a chief
restart.  Other failures raise the matching :mod:`hpsearch.errors` class.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from hpsearch.errors import InvalidArgumentError
from hpsearch.protos import study_service_pb2 as pb2
from hpsearch.protos import study_service_pb2_grpc as pb2_grpc
from hpsearch.records import Annotations, Study, Trial, TrialState
from hpsearch.security import (
    TLS_CA_ENV,
    TLS_CLIENT_CERT_ENV,
    TLS_CLIENT_KEY_ENV,
    client_channel,
    env_path,
    read_token,
)
from hpsearch.space import ParamValue, StudyConfig, dumps_study
from hpsearch.space.lifecycle import StudyChange
from hpsearch.wire import (
    MAX_RECEIVE_BYTES,
    MAX_SEND_BYTES,
    TRIAL_STATE_TO_PROTO,
    annotations_from_proto,
    change_from_proto,
    error_from_rpc,
    study_from_proto,
    trial_from_proto,
    value_to_proto,
)

logger = logging.getLogger(__name__)

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """The chief's answer to a heartbeat or a measurement."""

    should_stop: bool
    lease_expires_at: float
    reason: str = ""


class Client:
    """A connection to a chief.  Thread-safe; one per process is enough."""

    def __init__(
        self,
        address: str = "127.0.0.1:8000",
        *,
        timeout: float = 10.0,
        wait_seconds: float = 5.0,
        retry_seconds: float = 300.0,
        initial_backoff: float = 0.1,
        max_backoff: float = 5.0,
        token: str | None = None,
        token_file: str | None = None,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        """Connect to the chief at ``address``.

        Security (see :mod:`hpsearch.security`): ``token`` / ``token_file`` (else
        ``$HPSEARCH_TOKEN`` / ``$HPSEARCH_TOKEN_FILE``) is sent as a bearer token;
        ``tls_ca`` (else ``$HPSEARCH_TLS_CA_FILE``) turns TLS on and verifies the chief;
        ``tls_cert`` + ``tls_key`` (else ``$HPSEARCH_TLS_CLIENT_CERT_FILE`` / ``_KEY_FILE``) are
        this client's certificate for mutual TLS.
        """
        self.address = address
        self.timeout = timeout
        self.wait_seconds = wait_seconds
        self.retry_seconds = retry_seconds
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._channel = client_channel(
            address,
            token=read_token(token, token_file),
            tls_ca=env_path(tls_ca, TLS_CA_ENV),
            tls_cert=env_path(tls_cert, TLS_CLIENT_CERT_ENV),
            tls_key=env_path(tls_key, TLS_CLIENT_KEY_ENV),
            options=[
                ("grpc.max_receive_message_length", MAX_SEND_BYTES),
                ("grpc.max_send_message_length", MAX_RECEIVE_BYTES),
            ],
        )
        self._stub = pb2_grpc.StudyServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- studies ----------------------------------------------------------------------------
    def create_study(self, config: StudyConfig | str | Path, *, exist_ok: bool = False) -> Study:
        """Create a study from a :class:`StudyConfig`, a study file path or YAML/JSON text."""
        text, fmt = _study_text(config)
        request = pb2.CreateStudyRequest(config=text, format=fmt, exist_ok=exist_ok)
        return study_from_proto(self._call(self._stub.CreateStudy, request))

    def get_study(self, name: str) -> Study:
        return study_from_proto(self._call(self._stub.GetStudy, pb2.GetStudyRequest(name=name)))

    def list_studies(self) -> list[Study]:
        response = self._call(self._stub.ListStudies, pb2.ListStudiesRequest())
        return [study_from_proto(s) for s in response.studies]

    # -- the study life cycle ---------------------------------------------------------------
    def stop_study(self, name: str) -> Study:
        """Stop a study: workers asking for trials are told it is done (stock Keras Tuner
        workers get STOPPED), running trials are told to stop at their next heartbeat or
        report.  :meth:`resume_study` undoes it."""
        return study_from_proto(self._call(self._stub.StopStudy, pb2.StopStudyRequest(name=name)))

    def resume_study(self, name: str) -> Study:
        """Let a stopped study run again."""
        request = pb2.ResumeStudyRequest(name=name)
        return study_from_proto(self._call(self._stub.ResumeStudy, request))

    def delete_study(self, name: str, *, force: bool = False) -> int:
        """Delete a study with its trials (returns how many); refused (FailedPreconditionError)
        while trials run, unless ``force``.  This cannot be undone."""
        request = pb2.DeleteStudyRequest(name=name, force=force)
        return int(self._call(self._stub.DeleteStudy, request).trials)

    def update_study(
        self,
        name: str,
        config: StudyConfig | str | Path | None = None,
        *,
        max_trials: int | None = None,
        parallel_trials: int | None = None,
        max_failed_trials: int | None = None,
        max_attempts: int | None = None,
        lease_seconds: float | None = None,
    ) -> tuple[Study, list[StudyChange]]:
        """Change a study in place: the given budget fields, or the safe differences of a
        whole new declaration ``config``.  Returns the study and the changes applied;
        InvalidArgumentError, changing nothing, when a change is not safe (the message says
        what to do instead).  ``max_failed_trials`` < 0 removes that limit."""
        request = pb2.UpdateStudyRequest(name=name)
        if config is not None:
            request.config, request.format = _study_text(config)
        for field, value in (
            ("max_trials", max_trials),
            ("parallel_trials", parallel_trials),
            ("max_failed_trials", max_failed_trials),
            ("max_attempts", max_attempts),
            ("lease_seconds", lease_seconds),
        ):
            if value is not None:
                setattr(request, field, value)
        response = self._call(self._stub.UpdateStudy, request)
        return study_from_proto(response.study), [change_from_proto(c) for c in response.changes]

    def annotate(
        self,
        study: str,
        trial: int | None = None,
        *,
        note: str | None = None,
        tags: Mapping[str, str] | None = None,
        remove_tags: Sequence[str] = (),
    ) -> Annotations:
        """Write on a study (or on one of its trials): ``note`` replaces the note ("" removes
        it), ``tags`` sets tags, ``remove_tags`` removes them.  Returns what it carries now."""
        request = pb2.AnnotateRequest(
            study=study, set_tags=dict(tags or {}), remove_tags=list(remove_tags)
        )
        if trial is not None:
            request.trial = trial
        if note is not None:
            request.note = note
        return annotations_from_proto(self._call(self._stub.Annotate, request))

    def enqueue(
        self, study: str, parameter_sets: Sequence[Mapping[str, ParamValue]]
    ) -> list[Trial]:
        """Queue known parameter sets (warm start): they run before any suggestion of the
        search, in this order, and count against ``max_trials``.  Returns their trials."""
        request = pb2.EnqueueTrialsRequest(study=study)
        for params in parameter_sets:
            added = request.parameter_sets.add()
            for name, value in params.items():
                added.params[name].CopyFrom(value_to_proto(value))
        return [trial_from_proto(t) for t in self._call(self._stub.EnqueueTrials, request).trials]

    # -- the worker's loop ------------------------------------------------------------------
    def ask(
        self,
        study: str,
        worker_id: str,
        count: int = 1,
        *,
        timeout: float | None = None,
    ) -> list[Trial]:
        """Trials to run; an empty list once the study is finished.

        Waits (the chief holds each call up to ``wait_seconds``) while the study has no
        trial ready, for at most ``timeout`` seconds in all (None: until one is ready).
        Raises TimeoutError when ``timeout`` passes first.
        """
        give_up = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.wait_seconds
            if give_up is not None:
                wait = max(0.0, min(wait, give_up - time.monotonic()))
            request = pb2.SuggestTrialsRequest(
                study=study, worker_id=worker_id, count=count, wait_seconds=wait
            )
            sent = time.monotonic()
            response = self._call(self._stub.SuggestTrials, request, deadline=wait + self.timeout)
            if response.status == pb2.SuggestTrialsResponse.DONE:
                return []
            if response.trials:
                return [trial_from_proto(t) for t in response.trials]
            if give_up is not None and time.monotonic() >= give_up:
                raise TimeoutError(f"no trial of study {study!r} became ready in {timeout}s")
            # WAIT long before the hold asked for: the chief holds no more calls now (all
            # its slots are taken, hpsearch.service.holds); ask again after a pause, not at
            # once.
            early = wait - (time.monotonic() - sent)
            if early > 0.5:
                pause = min(early, random.uniform(0.5, 1.5))
                if give_up is not None:
                    pause = min(pause, max(0.0, give_up - time.monotonic()))
                time.sleep(pause)

    def heartbeat(self, study: str, number: int, attempt: int, worker_id: str = "") -> LeaseStatus:
        """Renew the lease of a running attempt.  StaleAttemptError if it was lost."""
        request = pb2.HeartbeatRequest(
            study=study, number=number, attempt=attempt, worker_id=worker_id
        )
        response = self._call(self._stub.Heartbeat, request)
        return LeaseStatus(response.should_stop, response.lease_expires_at, response.reason)

    def report(
        self, study: str, number: int, attempt: int, step: int, metrics: Mapping[str, float]
    ) -> LeaseStatus:
        """Record an intermediate measurement (also renews the lease)."""
        request = pb2.ReportMeasurementRequest(
            study=study, number=number, attempt=attempt, step=step, metrics=dict(metrics)
        )
        response = self._call(self._stub.ReportMeasurement, request)
        return LeaseStatus(response.should_stop, response.lease_expires_at, response.reason)

    def tell(
        self,
        study: str,
        number: int,
        attempt: int,
        *,
        value: float | None = None,
        metrics: Mapping[str, float] | None = None,
        state: TrialState | str = TrialState.COMPLETED,
        failure_message: str = "",
        retry: bool = False,
        infeasible: bool | str = False,
    ) -> Trial:
        """Finish an attempt: COMPLETED (with ``value`` or the study metric in ``metrics``),
        FAILED (with ``failure_message``; ``retry`` asks for another attempt) or STOPPED.
        ``infeasible`` (True, or the reason) completes it as infeasible, as Vertex AI's
        INFEASIBLE: it ran, but its result must not count (out of memory at this batch
        size, a model too large to serve); the metrics may then be left out.  A trial
        whose metrics break a constraint of the study is infeasible without it.
        Telling the same result twice is harmless."""
        state = TrialState(state.upper() if isinstance(state, str) else state)
        if state not in (TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED):
            raise InvalidArgumentError(f"tell() takes COMPLETED, FAILED or STOPPED, got {state}")
        request = pb2.CompleteTrialRequest(
            study=study,
            number=number,
            attempt=attempt,
            state=TRIAL_STATE_TO_PROTO[state],
            metrics=dict(metrics or {}),
            failure_message=failure_message,
            retry=retry,
            infeasible=bool(infeasible),
            infeasible_reason=infeasible if isinstance(infeasible, str) else "",
        )
        if value is not None:
            request.value = value
        return trial_from_proto(self._call(self._stub.CompleteTrial, request))

    def record_artifacts(
        self, study: str, number: int, attempt: int, artifacts: Mapping[str, str]
    ) -> Trial:
        """Keep where an attempt's files are in its trial's tags, which the dashboard lists:
        tag name -> path or URI, each name ending in ``_dir``, ``_path`` or ``_uri``
        (``model_dir``, ``checkpoint_dir``, ``log_dir``...).  StaleAttemptError once another
        attempt holds the trial."""
        request = pb2.RecordArtifactsRequest(
            study=study, number=number, attempt=attempt, artifacts=dict(artifacts)
        )
        return trial_from_proto(self._call(self._stub.RecordArtifacts, request))

    # -- results ----------------------------------------------------------------------------
    def best(self, study: str, n: int = 1) -> list[Trial]:
        """The ``n`` best feasible completed trials, best first; in a study with several
        metrics, its Pareto front (at most ``n``), best first by the first metric."""
        request = pb2.GetBestTrialsRequest(study=study, count=n)
        return [trial_from_proto(t) for t in self._call(self._stub.GetBestTrials, request).trials]

    def get_trial(self, study: str, number: int) -> Trial:
        request = pb2.GetTrialRequest(study=study, number=number)
        return trial_from_proto(self._call(self._stub.GetTrial, request))

    def list_trials(
        self,
        study: str,
        *,
        states: Sequence[TrialState] | None = None,
        offset: int = 0,
        limit: int = 0,
    ) -> list[Trial]:
        request = pb2.ListTrialsRequest(
            study=study,
            states=[TRIAL_STATE_TO_PROTO[s] for s in states or ()],
            offset=offset,
            limit=limit,
        )
        return [trial_from_proto(t) for t in self._call(self._stub.ListTrials, request).trials]

    # -- plumbing ---------------------------------------------------------------------------
    def _call(self, method: Callable[..., T], request: Any, *, deadline: float | None = None) -> T:
        """One RPC with a deadline, retried with backoff while the chief is unreachable."""
        give_up = time.monotonic() + self.retry_seconds
        backoff = self.initial_backoff
        while True:
            try:
                return method(request, timeout=deadline or self.timeout)
            except grpc.RpcError as error:
                code = error.code() if hasattr(error, "code") else None
                if code not in RETRYABLE or time.monotonic() + backoff > give_up:
                    raise error_from_rpc(error) from None
                logger.info(
                    "chief unreachable, retrying address=%s code=%s backoff=%.2f",
                    self.address,
                    code.name if code else None,
                    backoff,
                )
                time.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, self.max_backoff)


def _study_text(config: StudyConfig | str | Path) -> tuple[str, str]:
    """A study declaration as study-file text and its format (yaml or json)."""
    if isinstance(config, StudyConfig):
        return dumps_study(config, fmt="json"), "json"
    if isinstance(config, Path) or (isinstance(config, str) and _is_file(config)):
        path = Path(config)
        return path.read_text(encoding="utf-8"), (
            "json" if path.suffix.lower() == ".json" else "yaml"
        )
    return str(config), "yaml"


def _is_file(text: str) -> bool:
    """Whether ``text`` names an existing file (study text of any length is not one: a
    long line would make ``stat`` fail with "File name too long")."""
    if "\n" in text or "\0" in text:
        return False
    try:
        return Path(text).is_file()
    except OSError:
        return False


__all__ = ["Client", "LeaseStatus"]
