from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrialState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIAL_STATE_UNSPECIFIED: _ClassVar[TrialState]
    TRIAL_STATE_WAITING: _ClassVar[TrialState]
    TRIAL_STATE_RUNNING: _ClassVar[TrialState]
    TRIAL_STATE_COMPLETED: _ClassVar[TrialState]
    TRIAL_STATE_FAILED: _ClassVar[TrialState]
    TRIAL_STATE_STOPPED: _ClassVar[TrialState]

class StudyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STUDY_STATE_UNSPECIFIED: _ClassVar[StudyState]
    STUDY_STATE_ACTIVE: _ClassVar[StudyState]
    STUDY_STATE_COMPLETED: _ClassVar[StudyState]
    STUDY_STATE_STOPPED: _ClassVar[StudyState]
TRIAL_STATE_UNSPECIFIED: TrialState
TRIAL_STATE_WAITING: TrialState
TRIAL_STATE_RUNNING: TrialState
TRIAL_STATE_COMPLETED: TrialState
TRIAL_STATE_FAILED: TrialState
TRIAL_STATE_STOPPED: TrialState
STUDY_STATE_UNSPECIFIED: StudyState
STUDY_STATE_ACTIVE: StudyState
STUDY_STATE_COMPLETED: StudyState
STUDY_STATE_STOPPED: StudyState

class Value(_message.Message):
    __slots__ = ("double_value", "int_value", "string_value", "bool_value")
    DOUBLE_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    double_value: float
    int_value: int
    string_value: str
    bool_value: bool
    def __init__(self, double_value: _Optional[float] = ..., int_value: _Optional[int] = ..., string_value: _Optional[str] = ..., bool_value: _Optional[bool] = ...) -> None: ...

class Study(_message.Message):
    __slots__ = ("name", "config_json", "state", "created_at", "updated_at", "trial_counts", "best_value")
    class TrialCountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIAL_COUNTS_FIELD_NUMBER: _ClassVar[int]
    BEST_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    config_json: str
    state: StudyState
    created_at: float
    updated_at: float
    trial_counts: _containers.ScalarMap[str, int]
    best_value: float
    def __init__(self, name: _Optional[str] = ..., config_json: _Optional[str] = ..., state: _Optional[_Union[StudyState, str]] = ..., created_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., trial_counts: _Optional[_Mapping[str, int]] = ..., best_value: _Optional[float] = ...) -> None: ...

class Trial(_message.Message):
    __slots__ = ("study", "number", "state", "params", "attempt", "worker_id", "lease_expires_at", "value", "metrics", "failure_message", "created_at", "started_at", "completed_at", "study_id")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    study: str
    number: int
    state: TrialState
    params: _containers.MessageMap[str, Value]
    attempt: int
    worker_id: str
    lease_expires_at: float
    value: float
    metrics: _containers.ScalarMap[str, float]
    failure_message: str
    created_at: float
    started_at: float
    completed_at: float
    study_id: int
    def __init__(self, study: _Optional[str] = ..., number: _Optional[int] = ..., state: _Optional[_Union[TrialState, str]] = ..., params: _Optional[_Mapping[str, Value]] = ..., attempt: _Optional[int] = ..., worker_id: _Optional[str] = ..., lease_expires_at: _Optional[float] = ..., value: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., failure_message: _Optional[str] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., completed_at: _Optional[float] = ..., study_id: _Optional[int] = ...) -> None: ...

class CreateStudyRequest(_message.Message):
    __slots__ = ("config", "format", "exist_ok")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXIST_OK_FIELD_NUMBER: _ClassVar[int]
    config: str
    format: str
    exist_ok: bool
    def __init__(self, config: _Optional[str] = ..., format: _Optional[str] = ..., exist_ok: _Optional[bool] = ...) -> None: ...

class GetStudyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListStudiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStudiesResponse(_message.Message):
    __slots__ = ("studies",)
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    studies: _containers.RepeatedCompositeFieldContainer[Study]
    def __init__(self, studies: _Optional[_Iterable[_Union[Study, _Mapping]]] = ...) -> None: ...

class SuggestTrialsRequest(_message.Message):
    __slots__ = ("study", "worker_id", "count", "wait_seconds")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    study: str
    worker_id: str
    count: int
    wait_seconds: float
    def __init__(self, study: _Optional[str] = ..., worker_id: _Optional[str] = ..., count: _Optional[int] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class SuggestTrialsResponse(_message.Message):
    __slots__ = ("status", "trials", "lease_seconds")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[SuggestTrialsResponse.Status]
        TRIALS: _ClassVar[SuggestTrialsResponse.Status]
        WAIT: _ClassVar[SuggestTrialsResponse.Status]
        DONE: _ClassVar[SuggestTrialsResponse.Status]
    STATUS_UNSPECIFIED: SuggestTrialsResponse.Status
    TRIALS: SuggestTrialsResponse.Status
    WAIT: SuggestTrialsResponse.Status
    DONE: SuggestTrialsResponse.Status
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    status: SuggestTrialsResponse.Status
    trials: _containers.RepeatedCompositeFieldContainer[Trial]
    lease_seconds: float
    def __init__(self, status: _Optional[_Union[SuggestTrialsResponse.Status, str]] = ..., trials: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ..., lease_seconds: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("study", "number", "attempt", "worker_id")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    study: str
    number: int
    attempt: int
    worker_id: str
    def __init__(self, study: _Optional[str] = ..., number: _Optional[int] = ..., attempt: _Optional[int] = ..., worker_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("should_stop", "lease_expires_at", "reason")
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    should_stop: bool
    lease_expires_at: float
    reason: str
    def __init__(self, should_stop: _Optional[bool] = ..., lease_expires_at: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class ReportMeasurementRequest(_message.Message):
    __slots__ = ("study", "number", "attempt", "step", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    study: str
    number: int
    attempt: int
    step: int
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, study: _Optional[str] = ..., number: _Optional[int] = ..., attempt: _Optional[int] = ..., step: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ReportMeasurementResponse(_message.Message):
    __slots__ = ("should_stop", "lease_expires_at", "reason")
    SHOULD_STOP_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    should_stop: bool
    lease_expires_at: float
    reason: str
    def __init__(self, should_stop: _Optional[bool] = ..., lease_expires_at: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class CompleteTrialRequest(_message.Message):
    __slots__ = ("study", "number", "attempt", "state", "metrics", "value", "failure_message", "retry")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    study: str
    number: int
    attempt: int
    state: TrialState
    metrics: _containers.ScalarMap[str, float]
    value: float
    failure_message: str
    retry: bool
    def __init__(self, study: _Optional[str] = ..., number: _Optional[int] = ..., attempt: _Optional[int] = ..., state: _Optional[_Union[TrialState, str]] = ..., metrics: _Optional[_Mapping[str, float]] = ..., value: _Optional[float] = ..., failure_message: _Optional[str] = ..., retry: _Optional[bool] = ...) -> None: ...

class GetBestTrialsRequest(_message.Message):
    __slots__ = ("study", "count")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    study: str
    count: int
    def __init__(self, study: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetTrialRequest(_message.Message):
    __slots__ = ("study", "number")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    study: str
    number: int
    def __init__(self, study: _Optional[str] = ..., number: _Optional[int] = ...) -> None: ...

class ListTrialsRequest(_message.Message):
    __slots__ = ("study", "states", "offset", "limit")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    study: str
    states: _containers.RepeatedScalarFieldContainer[TrialState]
    offset: int
    limit: int
    def __init__(self, study: _Optional[str] = ..., states: _Optional[_Iterable[_Union[TrialState, str]]] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class TrialList(_message.Message):
    __slots__ = ("trials",)
    TRIALS_FIELD_NUMBER: _ClassVar[int]
    trials: _containers.RepeatedCompositeFieldContainer[Trial]
    def __init__(self, trials: _Optional[_Iterable[_Union[Trial, _Mapping]]] = ...) -> None: ...
