"""The wire between chief and clients: what both sides of ``hpsearch.v1`` must agree on.

The hpsearch.v1 record <-> protobuf conversions, the mapping between hpsearch's domain
errors and gRPC status codes (both directions), and the message-size limits.  The
servicers (:mod:`hpsearch.service`) and the client (:mod:`hpsearch.client`) both import
this module, and it imports only the protos, the records and the space, so a client or
a worker on a GPU box loads neither the oracle nor SQLAlchemy nor the search stack
(compare OSS Vizier's ``pyvizier/oss/proto_converters.py``).
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from hpsearch.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    HpsearchError,
    InvalidArgumentError,
    NotFoundError,
    StaleAttemptError,
    StorageError,
    UnauthenticatedError,
)
from hpsearch.protos import study_service_pb2 as pb2
from hpsearch.records import (
    NOTE_TAG,
    USER_TAGS_TAG,
    Annotations,
    Study,
    StudyState,
    StudySummary,
    Trial,
    TrialState,
)
from hpsearch.space import ParamValue, Rung, StudyConfig
from hpsearch.space.lifecycle import StudyChange

#: What the chief accepts in one message, and what it may send (a long trial list).
MAX_RECEIVE_BYTES = 4 * 1024 * 1024
MAX_SEND_BYTES = 16 * 1024 * 1024

TRIAL_STATE_TO_PROTO = {
    TrialState.WAITING: pb2.TRIAL_STATE_WAITING,
    TrialState.RUNNING: pb2.TRIAL_STATE_RUNNING,
    TrialState.COMPLETED: pb2.TRIAL_STATE_COMPLETED,
    TrialState.FAILED: pb2.TRIAL_STATE_FAILED,
    TrialState.STOPPED: pb2.TRIAL_STATE_STOPPED,
}
TRIAL_STATE_FROM_PROTO = {v: k for k, v in TRIAL_STATE_TO_PROTO.items()}
STUDY_STATE_TO_PROTO = {
    StudyState.ACTIVE: pb2.STUDY_STATE_ACTIVE,
    StudyState.COMPLETED: pb2.STUDY_STATE_COMPLETED,
    StudyState.STOPPED: pb2.STUDY_STATE_STOPPED,
}
STUDY_STATE_FROM_PROTO = {v: k for k, v in STUDY_STATE_TO_PROTO.items()}

# -- errors <-> status codes ----------------------------------------------------------------
# Most specific first: StaleAttemptError is a FailedPreconditionError.
_TO_CODE: tuple[tuple[type[HpsearchError], grpc.StatusCode], ...] = (
    (InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFoundError, grpc.StatusCode.NOT_FOUND),
    (AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (StaleAttemptError, grpc.StatusCode.FAILED_PRECONDITION),
    (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (UnauthenticatedError, grpc.StatusCode.UNAUTHENTICATED),
    (StorageError, grpc.StatusCode.UNAVAILABLE),
)
_FROM_CODE: dict[grpc.StatusCode, type[HpsearchError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgumentError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: UnauthenticatedError,
    grpc.StatusCode.UNAVAILABLE: StorageError,
}
# Details prefix marking a stale attempt, so the client can raise StaleAttemptError.
_STALE_PREFIX = "stale attempt: "


def status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and details a servicer answers for ``error``."""
    for cls, code in _TO_CODE:
        if isinstance(error, cls):
            message = str(error) or cls.__name__
            if isinstance(error, StaleAttemptError):
                message = _STALE_PREFIX + message
            return code, message
    return grpc.StatusCode.INTERNAL, "internal error in the chief; see its log"


def error_from_rpc(error: grpc.RpcError) -> HpsearchError:
    """The domain exception for a failed call (client side)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else None) or str(code)
    if code is grpc.StatusCode.FAILED_PRECONDITION and details.startswith(_STALE_PREFIX):
        return StaleAttemptError(details[len(_STALE_PREFIX) :])
    cls = _FROM_CODE.get(code, HpsearchError)
    return cls(details)


# -- records <-> protos ---------------------------------------------------------------------
def study_to_proto(study: Study, summary: StudySummary | None = None) -> pb2.Study:
    proto = pb2.Study(
        name=study.name,
        config_json=json.dumps(study.config.to_dict()),
        state=STUDY_STATE_TO_PROTO[study.state],
        created_at=study.created_at,
        updated_at=study.updated_at,
        note=study.note or "",
        tags=study.user_tags,
    )
    if summary is not None:
        for state, count in summary.counts.items():
            proto.trial_counts[state.value] = count
        if summary.best_value is not None:
            proto.best_value = summary.best_value
    return proto


def study_from_proto(proto: pb2.Study) -> Study:
    return Study(
        id=0,
        name=proto.name,
        config=StudyConfig.from_dict(json.loads(proto.config_json)),
        state=STUDY_STATE_FROM_PROTO.get(proto.state, StudyState.ACTIVE),
        created_at=proto.created_at,
        updated_at=proto.updated_at,
        note=proto.note or None,
        user_tags=dict(proto.tags),
    )


def trial_to_proto(study: str, trial: Trial) -> pb2.Trial:
    proto = pb2.Trial(
        study=study,
        study_id=trial.study_id,
        number=trial.number,
        state=TRIAL_STATE_TO_PROTO[trial.state],
        attempt=trial.attempt,
        worker_id=trial.worker_id or "",
        lease_expires_at=trial.lease_expires_at or 0.0,
        metrics=dict(trial.metrics),
        failure_message=trial.failure_message or "",
        created_at=trial.created_at,
        started_at=trial.started_at or 0.0,
        completed_at=trial.completed_at or 0.0,
        note=trial.note or "",
        tags=trial.user_tags,
        infeasible_reason=trial.infeasible_reason or "",
    )
    for name, value in trial.params.items():
        proto.params[name].CopyFrom(value_to_proto(value))
    if trial.value is not None:
        proto.value = trial.value
    rung = trial.fidelity
    if rung is not None:
        proto.fidelity.CopyFrom(
            pb2.Fidelity(
                epochs=rung.epochs,
                initial_epoch=rung.initial_epoch,
                bracket=rung.bracket,
                round=rung.round,
                parent=rung.parent,
            )
        )
    return proto


def trial_from_proto(proto: pb2.Trial) -> Trial:
    return Trial(
        study_id=proto.study_id,
        number=proto.number,
        state=TRIAL_STATE_FROM_PROTO.get(proto.state, TrialState.WAITING),
        params={name: value_from_proto(v) for name, v in proto.params.items()},
        attempt=proto.attempt,
        worker_id=proto.worker_id or None,
        lease_expires_at=proto.lease_expires_at or None,
        value=proto.value if proto.HasField("value") else None,
        metrics=dict(proto.metrics),
        failure_message=proto.failure_message or None,
        created_at=proto.created_at,
        started_at=proto.started_at or None,
        completed_at=proto.completed_at or None,
        tags=_tags(proto),
        infeasible_reason=proto.infeasible_reason or None,
    )


def annotations_to_proto(annotations: Annotations) -> pb2.Annotations:
    return pb2.Annotations(note=annotations.note or "", tags=annotations.tags)


def annotations_from_proto(proto: pb2.Annotations) -> Annotations:
    return Annotations(proto.note or None, dict(proto.tags))


def change_to_proto(change: StudyChange) -> pb2.StudyChange:
    return pb2.StudyChange(
        key=change.key, old_json=json.dumps(change.old), new_json=json.dumps(change.new)
    )


def change_from_proto(proto: pb2.StudyChange) -> StudyChange:
    return StudyChange(
        proto.key, json.loads(proto.old_json or "null"), json.loads(proto.new_json or "null"), True
    )


def _tags(proto: pb2.Trial) -> dict[str, Any]:
    """The trial's tags the wire carries: its budget, and what users wrote on it."""
    tags = _fidelity_tags(proto)
    if proto.note:
        tags[NOTE_TAG] = proto.note
    if proto.tags:
        tags[USER_TAGS_TAG] = dict(proto.tags)
    return tags


def _fidelity_tags(proto: pb2.Trial) -> dict[str, Any]:
    if not proto.HasField("fidelity"):
        return {}
    f = proto.fidelity
    rung = Rung(
        epochs=f.epochs,
        initial_epoch=f.initial_epoch,
        bracket=f.bracket,
        round=f.round,
        parent=f.parent if f.HasField("parent") else None,
    )
    return {Rung.TAG: rung.to_tag()}


def value_to_proto(value: ParamValue) -> pb2.Value:
    if isinstance(value, bool):
        return pb2.Value(bool_value=value)
    if isinstance(value, int):
        return pb2.Value(int_value=value)
    if isinstance(value, float):
        return pb2.Value(double_value=value)
    return pb2.Value(string_value=str(value))


def value_from_proto(proto: pb2.Value) -> ParamValue:
    kind = proto.WhichOneof("kind")
    if kind is None:
        raise InvalidArgumentError("a parameter Value with no kind set")
    value: ParamValue = getattr(proto, kind)
    return value


__all__ = [
    "MAX_RECEIVE_BYTES",
    "MAX_SEND_BYTES",
    "STUDY_STATE_FROM_PROTO",
    "STUDY_STATE_TO_PROTO",
    "TRIAL_STATE_FROM_PROTO",
    "TRIAL_STATE_TO_PROTO",
    "annotations_from_proto",
    "annotations_to_proto",
    "change_from_proto",
    "change_to_proto",
    "error_from_rpc",
    "status_of",
    "study_from_proto",
    "study_to_proto",
    "trial_from_proto",
    "trial_to_proto",
    "value_from_proto",
    "value_to_proto",
]
