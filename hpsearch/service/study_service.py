"""hpsearch's own gRPC API, ``hpsearch.v1.StudyService``: decode, call the oracle, encode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from hpsearch.errors import InvalidArgumentError
from hpsearch.oracle import AskStatus, Oracle
from hpsearch.protos import study_service_pb2 as pb2
from hpsearch.protos import study_service_pb2_grpc as pb2_grpc
from hpsearch.service.errors import rpc
from hpsearch.service.holds import HoldSlots
from hpsearch.space import StudyConfig, finite_metrics, loads_study
from hpsearch.space.lifecycle import with_updates
from hpsearch.wire import (
    TRIAL_STATE_FROM_PROTO,
    annotations_to_proto,
    change_to_proto,
    study_to_proto,
    trial_to_proto,
    value_from_proto,
)

MAX_METRICS = 256
MAX_LIST = 10_000

_ASK_STATUS = {
    AskStatus.TRIALS: pb2.SuggestTrialsResponse.TRIALS,
    AskStatus.WAIT: pb2.SuggestTrialsResponse.WAIT,
    AskStatus.DONE: pb2.SuggestTrialsResponse.DONE,
}


class StudyServicer(pb2_grpc.StudyServiceServicer):
    """``hpsearch.v1.StudyService`` over an :class:`~hpsearch.oracle.Oracle`."""

    def __init__(self, oracle: Oracle, holds: HoldSlots | None = None) -> None:
        self.oracle = oracle
        self.holds = holds or HoldSlots(1 << 30)

    @rpc
    def CreateStudy(
        self, request: pb2.CreateStudyRequest, context: grpc.ServicerContext
    ) -> pb2.Study:
        config = _study_file(request.config, request.format, "the CreateStudy request")
        study = self.oracle.create_study(config, exist_ok=request.exist_ok)
        return study_to_proto(study)

    @rpc
    def GetStudy(self, request: pb2.GetStudyRequest, context: grpc.ServicerContext) -> pb2.Study:
        name = _required(request.name, "name")
        for summary in self.oracle.list_studies():
            if summary.study.name == name:
                return study_to_proto(summary.study, summary)
        return study_to_proto(self.oracle.get_study(name))  # NOT_FOUND

    @rpc
    def ListStudies(
        self, request: pb2.ListStudiesRequest, context: grpc.ServicerContext
    ) -> pb2.ListStudiesResponse:
        return pb2.ListStudiesResponse(
            studies=[study_to_proto(s.study, s) for s in self.oracle.list_studies()]
        )

    @rpc
    def SuggestTrials(
        self, request: pb2.SuggestTrialsRequest, context: grpc.ServicerContext
    ) -> pb2.SuggestTrialsResponse:
        study = _required(request.study, "study")
        worker = _required(request.worker_id, "worker_id")
        wait = request.wait_seconds if request.wait_seconds > 0 else None
        remaining = context.time_remaining()
        if remaining is not None:  # answer before the caller's deadline
            wait = min(wait if wait is not None else self.oracle.hold_seconds, remaining * 0.8)
        with self.holds.hold() as may_hold:  # else answered at once: threads stay free
            answer = self.oracle.ask(
                study, worker, max(1, request.count), wait=wait if may_hold else 0.0
            )
        return pb2.SuggestTrialsResponse(
            status=_ASK_STATUS[answer.status],
            trials=[trial_to_proto(study, t) for t in answer.trials],
            lease_seconds=answer.lease_seconds,
        )

    @rpc
    def Heartbeat(
        self, request: pb2.HeartbeatRequest, context: grpc.ServicerContext
    ) -> pb2.HeartbeatResponse:
        study = _required(request.study, "study")
        answer = self.oracle.heartbeat(study, request.number, request.attempt)
        return pb2.HeartbeatResponse(
            should_stop=answer.should_stop,
            lease_expires_at=(answer.trial.lease_expires_at or 0.0) if answer.trial else 0.0,
            reason=answer.reason,
        )

    @rpc
    def ReportMeasurement(
        self, request: pb2.ReportMeasurementRequest, context: grpc.ServicerContext
    ) -> pb2.ReportMeasurementResponse:
        study = _required(request.study, "study")
        metrics = _metrics(request.metrics)
        answer = self.oracle.report(study, request.number, request.attempt, request.step, metrics)
        return pb2.ReportMeasurementResponse(
            should_stop=answer.should_stop,
            lease_expires_at=(answer.trial.lease_expires_at or 0.0) if answer.trial else 0.0,
            reason=answer.reason,
        )

    @rpc
    def CompleteTrial(
        self, request: pb2.CompleteTrialRequest, context: grpc.ServicerContext
    ) -> pb2.Trial:
        study = _required(request.study, "study")
        metrics = _metrics(request.metrics)
        value = request.value if request.HasField("value") else None
        state = request.state or pb2.TRIAL_STATE_COMPLETED
        if state == pb2.TRIAL_STATE_COMPLETED:
            infeasible = None
            if request.infeasible or request.infeasible_reason:
                infeasible = request.infeasible_reason or "reported infeasible"
            trial = self.oracle.complete(
                study,
                request.number,
                request.attempt,
                value=value,
                metrics=metrics,
                infeasible=infeasible,
            )
        elif state == pb2.TRIAL_STATE_FAILED:
            trial = self.oracle.fail(
                study,
                request.number,
                request.attempt,
                request.failure_message,
                retry=request.retry,
            )
        elif state == pb2.TRIAL_STATE_STOPPED:
            trial = self.oracle.stop_trial(study, request.number, request.attempt, value=value)
        else:
            raise InvalidArgumentError(
                "state must be TRIAL_STATE_COMPLETED, TRIAL_STATE_FAILED or TRIAL_STATE_STOPPED, "
                f"got {_enum_name(pb2.TrialState, state)}"
            )
        return trial_to_proto(study, trial)

    @rpc
    def GetBestTrials(
        self, request: pb2.GetBestTrialsRequest, context: grpc.ServicerContext
    ) -> pb2.TrialList:
        study = _required(request.study, "study")
        count = max(1, min(request.count or 1, MAX_LIST))
        return pb2.TrialList(
            trials=[trial_to_proto(study, t) for t in self.oracle.best_trials(study, count)]
        )

    @rpc
    def GetTrial(self, request: pb2.GetTrialRequest, context: grpc.ServicerContext) -> pb2.Trial:
        study = _required(request.study, "study")
        return trial_to_proto(study, self.oracle.get_trial(study, request.number))

    @rpc
    def ListTrials(
        self, request: pb2.ListTrialsRequest, context: grpc.ServicerContext
    ) -> pb2.TrialList:
        study = _required(request.study, "study")
        states = [TRIAL_STATE_FROM_PROTO[s] for s in request.states if s in TRIAL_STATE_FROM_PROTO]
        if request.offset < 0 or request.limit < 0:
            raise InvalidArgumentError("offset and limit must be >= 0")
        limit = min(request.limit or MAX_LIST, MAX_LIST)
        trials = self.oracle.list_trials(
            study, states=states or None, offset=request.offset, limit=limit
        )
        return pb2.TrialList(trials=[trial_to_proto(study, t) for t in trials])

    @rpc
    def RecordArtifacts(
        self, request: pb2.RecordArtifactsRequest, context: grpc.ServicerContext
    ) -> pb2.Trial:
        study = _required(request.study, "study")
        trial = self.oracle.record_artifacts(
            study, request.number, request.attempt, dict(request.artifacts)
        )
        return trial_to_proto(study, trial)

    # -- the study life cycle ---------------------------------------------------------------
    @rpc
    def StopStudy(self, request: pb2.StopStudyRequest, context: grpc.ServicerContext) -> pb2.Study:
        return study_to_proto(self.oracle.stop_study(_required(request.name, "name")))

    @rpc
    def ResumeStudy(
        self, request: pb2.ResumeStudyRequest, context: grpc.ServicerContext
    ) -> pb2.Study:
        return study_to_proto(self.oracle.resume_study(_required(request.name, "name")))

    @rpc
    def DeleteStudy(
        self, request: pb2.DeleteStudyRequest, context: grpc.ServicerContext
    ) -> pb2.DeleteStudyResponse:
        name = _required(request.name, "name")
        return pb2.DeleteStudyResponse(trials=self.oracle.delete_study(name, force=request.force))

    @rpc
    def UpdateStudy(
        self, request: pb2.UpdateStudyRequest, context: grpc.ServicerContext
    ) -> pb2.UpdateStudyResponse:
        name = _required(request.name, "name")
        if request.config:
            config = _study_file(request.config, request.format, "the UpdateStudy request")
        else:
            config = self.oracle.get_study(name).config
        config = with_updates(config, _budget_fields(request))
        study, changes = self.oracle.update_study(name, config)
        return pb2.UpdateStudyResponse(
            study=study_to_proto(study), changes=[change_to_proto(c) for c in changes]
        )

    @rpc
    def Annotate(
        self, request: pb2.AnnotateRequest, context: grpc.ServicerContext
    ) -> pb2.Annotations:
        annotations = self.oracle.annotate(
            _required(request.study, "study"),
            request.trial if request.HasField("trial") else None,
            note=request.note if request.HasField("note") else None,
            tags=dict(request.set_tags),
            remove_tags=list(request.remove_tags),
        )
        return annotations_to_proto(annotations)

    @rpc
    def EnqueueTrials(
        self, request: pb2.EnqueueTrialsRequest, context: grpc.ServicerContext
    ) -> pb2.TrialList:
        study = _required(request.study, "study")
        if len(request.parameter_sets) > MAX_LIST:
            raise InvalidArgumentError(
                f"{len(request.parameter_sets)} parameter sets in one call; send at most "
                f"{MAX_LIST}"
            )
        params = [
            {name: value_from_proto(v) for name, v in p.params.items()}
            for p in request.parameter_sets
        ]
        trials = self.oracle.enqueue(study, params)
        return pb2.TrialList(trials=[trial_to_proto(study, t) for t in trials])


def _study_file(text: str, fmt: str, source: str) -> StudyConfig:
    fmt = (fmt or "yaml").lower()
    if fmt not in ("yaml", "json"):
        raise InvalidArgumentError(f"format must be yaml or json, got {fmt!r}")
    return loads_study(text, fmt=fmt, source=source)


def _budget_fields(request: pb2.UpdateStudyRequest) -> dict[str, Any]:
    """The study-file keys an UpdateStudy request sets one by one."""
    fields: dict[str, Any] = {}
    for field in ("max_trials", "parallel_trials", "max_attempts"):
        if request.HasField(field):
            fields[f"budget.{field}"] = getattr(request, field)
    if request.HasField("max_failed_trials"):
        limit = request.max_failed_trials
        fields["budget.max_failed_trials"] = None if limit < 0 else limit
    if request.HasField("lease_seconds"):
        fields["lease_seconds"] = request.lease_seconds
    return fields


def _required(value: str, what: str) -> str:
    if not value:
        raise InvalidArgumentError(f"{what} is required")
    return value


def _metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    if len(metrics) > MAX_METRICS:
        raise InvalidArgumentError(
            f"{len(metrics)} metrics in one report; send at most {MAX_METRICS}"
        )
    return finite_metrics(metrics, where="report")


def _enum_name(enum: Any, number: int) -> str:
    """The name of an enum value, or the number itself when this version does not know it."""
    try:
        return str(enum.Name(number))
    except ValueError:
        return str(number)


__all__ = ["StudyServicer"]
