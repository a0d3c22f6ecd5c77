"""Keras Tuner's ``keras_tuner.Oracle`` gRPC service on top of the oracle.

Stock Keras Tuner workers (``KERASTUNER_TUNER_ID=worker0``, ``KERASTUNER_ORACLE_IP``,
``KERASTUNER_ORACLE_PORT``) talk to the chief through this servicer.  Keras Tuner sends
no study name: the chief serves one study here, chosen at start (``--study``).

Mapping:
- ``tuner_id`` is the worker id; a trial's ``trial_id`` is its number (``"7"``), or
  ``"7.2"`` for its second attempt, so a late report from a lost attempt is recognised.
- ``CreateTrial`` holds the call while no trial is ready and answers IDLE only after the
  hold; STOPPED once the study is finished, which makes the worker exit.
- ``UpdateTrial`` records a measurement and renews the lease; ``EndTrial`` with COMPLETED
  takes the objective from the measurements under the study's ``measurement`` rule;
  INVALID fails the attempt with a retry, FAILED without.

The lease of a stock worker (see docs/design.md, "Stock Keras Tuner workers"): Keras Tuner
1.4 sends nothing while a model trains, so no heartbeat can renew a lease during a trial.
Its attempts get the study's ``keras_tuner_lease_seconds`` (two days by default), not
``lease_seconds``.  A stock worker runs one trial at a time and asks for the next only
after ending the last, so a ``CreateTrial`` from a tuner id that still holds a trial means
that worker restarted: its attempt is ended as LOST and the trial retried at once.  And
no answer crashes a stock worker when the chief can use what it sent (Keras Tuner's
client has no retry and ends ``tuner.search()`` on any error): a late ``UpdateTrial`` /
``EndTrial`` from an attempt given up on counts unless another attempt completed the
trial, and is otherwise acknowledged, logged and not stored.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from typing import Any

import grpc

from hpsearch.errors import FailedPreconditionError, InvalidArgumentError, StaleAttemptError
from hpsearch.oracle import AskStatus, Oracle
from hpsearch.protos import keras_tuner_pb2 as kt_pb2
from hpsearch.protos import keras_tuner_service_pb2 as service_pb2
from hpsearch.protos import keras_tuner_service_pb2_grpc as service_grpc
from hpsearch.records import Trial, TrialState
from hpsearch.service.errors import rpc
from hpsearch.service.holds import HoldSlots
from hpsearch.space import Goal, Params, ParamValue, Rung, Space, StudyConfig
from hpsearch.space.keras_tuner import (
    space_from_keras_tuner,
    space_to_keras_tuner,
    values_to_keras_tuner,
)

logger = logging.getLogger(__name__)

# Keras Tuner's Trial message carries no error text: the worker's log has the traceback.
_REPORTED = "the Keras Tuner worker ended the trial as %s (see the worker's log for why)"
_TRIAL_ID = re.compile(r"^(\d+)(?:\.(\d+))?$")
_STATUS = {
    TrialState.WAITING: kt_pb2.IDLE,
    TrialState.RUNNING: kt_pb2.RUNNING,
    TrialState.COMPLETED: kt_pb2.COMPLETED,
    TrialState.FAILED: kt_pb2.FAILED,
    TrialState.STOPPED: kt_pb2.STOPPED,
}
_SAMPLING_NAMES = {
    kt_pb2.NONE: "linear",
    kt_pb2.LINEAR: "linear",
    kt_pb2.LOG: "log",
    kt_pb2.REVERSE_LOG: "reverse_log",
}
_SAMPLING_ENUMS = {"linear": kt_pb2.LINEAR, "log": kt_pb2.LOG, "reverse_log": kt_pb2.REVERSE_LOG}


class KerasTunerServicer(service_grpc.OracleServicer):
    """``keras_tuner.Oracle``: decode, call the oracle, encode."""

    def __init__(self, oracle: Oracle, study: str | None, holds: HoldSlots | None = None) -> None:
        self.oracle = oracle
        self.study = study
        self.holds = holds or HoldSlots(1 << 30)
        # Attempts whose objective came in as NaN/inf (Keras Tuner: the trial is invalid).
        self._non_finite: dict[tuple[int, int], list[str]] = {}
        self._lock = threading.Lock()
        self._learned: dict[str, bytes] = {}  # the last space learned from EndTrial, per study
        # number -> (space, params, message): a trial's HyperParameters message, built once
        # for its CreateTrial, GetTrial and UpdateTrial answers; dropped at EndTrial.
        self._hp_messages: dict[int, tuple[Space, Params, kt_pb2.HyperParameters]] = {}

    @rpc
    def GetSpace(
        self, request: service_pb2.GetSpaceRequest, context: grpc.ServicerContext
    ) -> service_pb2.GetSpaceResponse:
        study = self.oracle.get_study(self._study())
        return service_pb2.GetSpaceResponse(
            hyperparameters=hyperparameters_to_proto(study.config.space, {})
        )

    @rpc
    def UpdateSpace(
        self, request: service_pb2.UpdateSpaceRequest, context: grpc.ServicerContext
    ) -> service_pb2.UpdateSpaceResponse:
        self.oracle.update_space(self._study(), space_from_proto(request.hyperparameters))
        return service_pb2.UpdateSpaceResponse()

    @rpc
    def CreateTrial(
        self, request: service_pb2.CreateTrialRequest, context: grpc.ServicerContext
    ) -> service_pb2.CreateTrialResponse:
        name = self._study()
        with self.holds.hold() as may_hold:  # else IDLE at once: threads stay free
            answer = self.oracle.ask(
                name,
                request.tuner_id or "tuner0",
                1,
                wait=None if may_hold else 0.0,
                lease_seconds=self.oracle.config(name).keras_tuner_lease_seconds,
                restarted=True,
            )
        if answer.status is AskStatus.DONE:
            return service_pb2.CreateTrialResponse(trial=kt_pb2.Trial(status=kt_pb2.STOPPED))
        if answer.status is AskStatus.WAIT:
            return service_pb2.CreateTrialResponse(trial=kt_pb2.Trial(status=kt_pb2.IDLE))
        config = self.oracle.config(name)
        return service_pb2.CreateTrialResponse(trial=self._trial_proto(config, answer.trials[0]))

    @rpc
    def UpdateTrial(
        self, request: service_pb2.UpdateTrialRequest, context: grpc.ServicerContext
    ) -> service_pb2.UpdateTrialResponse:
        name = self._study()
        number, attempt = parse_trial_id(request.trial_id)
        config = self.oracle.config(name)
        metrics, dropped = _split_finite(request.metrics)
        if dropped:
            logger.warning(
                "non-finite metrics dropped study=%s number=%d attempt=%d metrics=%s",
                name,
                number,
                attempt,
                ",".join(dropped),
            )
            if config.metric.name in dropped:
                with self._lock:
                    self._non_finite[(number, attempt)] = dropped
        lease = config.keras_tuner_lease_seconds
        try:
            if metrics:
                answer = self.oracle.report(
                    name,
                    number,
                    attempt,
                    max(0, request.step),
                    metrics,
                    lease_seconds=lease,
                    late=True,
                )
            else:  # nothing storable: still a sign of life
                answer = self.oracle.heartbeat(name, number, attempt, lease_seconds=lease)
        except StaleAttemptError as error:
            # The trial was completed by another attempt (or this one ended): acknowledge,
            # or Keras Tuner's search() dies on its way out of the trial.
            logger.info(
                "late UpdateTrial acknowledged, nothing stored study=%s trial_id=%s reason=%r",
                name,
                request.trial_id,
                str(error),
            )
            answer = None
        trial = (answer and answer.trial) or self.oracle.get_trial(name, number, exact=False)
        proto = self._trial_proto(config, trial, attempt=attempt)
        if answer is not None and answer.should_stop:
            proto.status = kt_pb2.STOPPED
        return service_pb2.UpdateTrialResponse(trial=proto)

    @rpc
    def EndTrial(
        self, request: service_pb2.EndTrialRequest, context: grpc.ServicerContext
    ) -> service_pb2.EndTrialResponse:
        name = self._study()
        sent = request.trial
        number, attempt = parse_trial_id(sent.trial_id)
        self._hp_messages.pop(number, None)
        self._learn_space(name, sent.hyperparameters)
        with self._lock:
            non_finite = self._non_finite.pop((number, attempt), None)
        try:
            self._end(name, number, attempt, sent, non_finite)
        except StaleAttemptError as error:
            # Only a report that contradicts this attempt's own earlier one gets here; the
            # worker cannot do better, so it is told nothing and goes on.
            logger.warning(
                "EndTrial acknowledged, nothing stored study=%s trial_id=%s reason=%r",
                name,
                sent.trial_id,
                str(error),
            )
        return service_pb2.EndTrialResponse()

    def _end(
        self,
        name: str,
        number: int,
        attempt: int,
        sent: kt_pb2.Trial,
        non_finite: list[str] | None,
    ) -> None:
        if sent.status == kt_pb2.COMPLETED and non_finite is None:
            config = self.oracle.config(name)
            try:
                trial = self.oracle.complete(
                    name,
                    number,
                    attempt,
                    value=None if config.multi_objective else _score_of(config, sent),
                    metrics=_objectives_sent(config, sent),
                )
                if trial.attempt != attempt:
                    logger.info(
                        "EndTrial acknowledged, result not stored: attempt %d completed "
                        "trial %d first study=%s trial_id=%s",
                        trial.attempt,
                        number,
                        name,
                        sent.trial_id,
                    )
            except InvalidArgumentError as error:
                # The worker did its part; the study metric is missing (e.g. the tuner's
                # objective differs from the study's).  Keep the worker alive, fail the trial.
                self.oracle.fail(name, number, attempt, str(error), retry=False)
        elif sent.status == kt_pb2.COMPLETED:
            self.oracle.fail(name, number, attempt, f"the objective was not finite ({non_finite})")
        elif sent.status == kt_pb2.INVALID:
            self.oracle.fail(name, number, attempt, _REPORTED % "INVALID", retry=True)
        elif sent.status == kt_pb2.FAILED:
            self.oracle.fail(name, number, attempt, _REPORTED % "FAILED", retry=False)
        elif sent.status == kt_pb2.STOPPED:
            self.oracle.stop_trial(name, number, attempt)
        else:
            known = sent.status in kt_pb2.TrialStatus.values()
            raise InvalidArgumentError(
                f"EndTrial for trial {sent.trial_id!r} with status "
                f"{kt_pb2.TrialStatus.Name(sent.status) if known else sent.status}; "
                "send COMPLETED, INVALID or FAILED"
            )

    @rpc
    def GetBestTrials(
        self, request: service_pb2.GetBestTrialsRequest, context: grpc.ServicerContext
    ) -> service_pb2.GetBestTrialsResponse:
        name = self._study()
        config = self.oracle.config(name)
        count = max(1, min(int(request.num_trials or 1), 1000))
        trials = self.oracle.best_trials(name, count)
        return service_pb2.GetBestTrialsResponse(
            trials=[self._trial_proto(config, t) for t in trials]
        )

    @rpc
    def GetTrial(
        self, request: service_pb2.GetTrialRequest, context: grpc.ServicerContext
    ) -> service_pb2.GetTrialResponse:
        name = self._study()
        number, attempt = parse_trial_id(request.trial_id)
        config = self.oracle.config(name)
        trial = self.oracle.get_trial(name, number, exact=False)
        proto = self._trial_proto(config, trial, attempt=attempt)
        return service_pb2.GetTrialResponse(trial=proto)

    # -- helpers ----------------------------------------------------------------------------
    def _study(self) -> str:
        if not self.study:
            raise FailedPreconditionError(
                "this chief serves no Keras Tuner study; start it with --study FILE_OR_NAME"
            )
        return self.study

    def _trial_proto(
        self, config: StudyConfig, trial: Trial, *, attempt: int | None = None
    ) -> kt_pb2.Trial:
        attempt = trial.attempt if attempt is None else attempt
        proto = kt_pb2.Trial(
            trial_id=trial_id_of(trial.number, max(attempt, 1)),
            status=_STATUS[trial.state],
            hyperparameters=self._hyperparameters(config.space, trial),
        )
        tracker = proto.metrics
        maximize = config.metric.goal is Goal.MAXIMIZE
        for record in self.oracle.measurements(config.name, trial.number, attempt):
            for metric, value in record.metrics.items():
                history = tracker.metrics[metric]
                history.maximize = maximize if metric == config.metric.name else False
                history.observations.add(value=[value], step=record.step)
        if trial.value is not None and attempt == trial.attempt:
            proto.score.value = trial.value
        return proto

    def _hyperparameters(self, space: Space, trial: Trial) -> kt_pb2.HyperParameters:
        cached = self._hp_messages.get(trial.number)
        if cached is not None and cached[0] is space and cached[1] == trial.params:
            return cached[2]
        message = hyperparameters_to_proto(space, trial.params)
        rung = trial.fidelity
        if rung is not None:
            self._add_tuner_values(message, rung)
        if trial.state is TrialState.RUNNING:
            if len(self._hp_messages) >= 4096:  # trials whose EndTrial never came
                self._hp_messages.clear()
            self._hp_messages[trial.number] = (space, trial.params, message)
        return message

    def _add_tuner_values(self, message: kt_pb2.HyperParameters, rung: Rung) -> None:
        """The ``tuner/*`` values Keras Tuner's Hyperband tuner reads: the epochs to train
        (``fit(initial_epoch=..., epochs=...)``) and the trial whose checkpoint to load,
        as its HyperbandOracle sets them."""
        values = message.values.values
        values["tuner/epochs"].CopyFrom(kt_pb2.Value(int_value=rung.epochs))
        values["tuner/initial_epoch"].CopyFrom(kt_pb2.Value(int_value=rung.initial_epoch))
        values["tuner/bracket"].CopyFrom(kt_pb2.Value(int_value=rung.bracket))
        values["tuner/round"].CopyFrom(kt_pb2.Value(int_value=rung.round))
        if rung.parent is not None:
            # The attempt that completed the parent wrote the checkpoint (trial_<id>/).
            parent = self.oracle.get_trial(self._study(), rung.parent)
            values["tuner/trial_id"].CopyFrom(
                kt_pb2.Value(string_value=trial_id_of(parent.number, max(parent.attempt, 1)))
            )

    def _learn_space(self, name: str, hyperparameters: kt_pb2.HyperParameters) -> None:
        """Keras Tuner's chief grows its space from every ended trial; so does this one."""
        key = hyperparameters.space.SerializeToString(deterministic=True)
        if self._learned.get(name) == key:
            return  # the same space as the last trial's: nothing new
        try:
            space = space_from_proto(hyperparameters)
        except InvalidArgumentError as error:
            logger.warning("space in EndTrial ignored study=%s reason=%r", name, str(error))
            return
        if len(space):
            self.oracle.update_space(name, space)
        self._learned[name] = key


# -- conversions --------------------------------------------------------------------------
def trial_id_of(number: int, attempt: int) -> str:
    """Keras Tuner's string trial id for a trial attempt: ``"7"``, then ``"7.2"``, ..."""
    return str(number) if attempt <= 1 else f"{number}.{attempt}"


def parse_trial_id(trial_id: str) -> tuple[int, int]:
    """``(number, attempt)`` from a trial id made by :func:`trial_id_of`."""
    match = _TRIAL_ID.match(trial_id or "")
    if match is None:
        raise InvalidArgumentError(
            f"trial id {trial_id!r} was not handed out by this chief (expected '7' or '7.2')"
        )
    number, attempt = int(match.group(1)), int(match.group(2) or 1)
    if number > _MAX_ID or attempt > _MAX_ID:  # the store's columns are 32-bit integers
        raise InvalidArgumentError(f"trial id {trial_id!r} is out of range")
    return number, attempt


_MAX_ID = 2**31 - 1


def hyperparameters_to_proto(
    space: Space, params: Mapping[str, ParamValue]
) -> kt_pb2.HyperParameters:
    """A study space and a trial's values as Keras Tuner's ``HyperParameters`` message."""
    proto = kt_pb2.HyperParameters()
    proto.space.CopyFrom(_space_proto(space))
    try:
        values = values_to_keras_tuner(space, params)
    except InvalidArgumentError:
        # A trial created before the space grew (Keras Tuner studies learn their space
        # from the workers) lacks the newer parameters: send what it has.
        values = dict(params)
    for name, value in values.items():
        proto.values.values[name].CopyFrom(_value_proto(value))
    return proto


def _space_proto(space: Space) -> kt_pb2.HyperParameters.Space:
    """The ``Space`` message of ``space``, built once per space object (a study's space
    only changes by replacing its config, so identity is the key; hot path: every trial
    answer carries it)."""
    cached = _SPACE_PROTOS.get(id(space))
    if cached is not None and cached[0] is space:
        return cached[1]
    message = kt_pb2.HyperParameters.Space()
    for entry in space_to_keras_tuner(space)["space"]:
        _add_entry(message, entry["class_name"], entry["config"])
    if len(_SPACE_PROTOS) >= 16:
        _SPACE_PROTOS.clear()
    _SPACE_PROTOS[id(space)] = (space, message)  # holds ``space``: its id is not reused
    return message


_SPACE_PROTOS: dict[int, tuple[Space, kt_pb2.HyperParameters.Space]] = {}


def space_from_proto(proto: kt_pb2.HyperParameters) -> Space:
    """Keras Tuner's ``HyperParameters`` message as a declared :class:`Space`.

    The message is read into the ``HyperParameters.get_config()`` form and converted by
    :func:`hpsearch.space.keras_tuner.space_from_keras_tuner`, the one conversion.
    """
    return space_from_keras_tuner({"space": config_entries_from_proto(proto.space)})


def config_entries_from_proto(space: kt_pb2.HyperParameters.Space) -> list[dict[str, Any]]:
    """The ``get_config()["space"]`` entries Keras Tuner would build from this message."""
    entries: list[dict[str, Any]] = []
    for x in space.fixed_space:
        entries.append(_entry("Fixed", x, value=_value_of(x.value)))
    for f in space.float_space:
        entries.append(_entry("Float", f, **_range(f)))
    for i in space.int_space:
        entries.append(_entry("Int", i, **_range(i)))
    for c in space.choice_space:
        default = _value_of(c.default) if c.default.WhichOneof("kind") else None
        values = [_value_of(v) for v in c.values]
        entries.append(_entry("Choice", c, values=values, ordered=c.ordered, default=default))
    for b in space.boolean_space:
        entries.append(_entry("Boolean", b, default=b.default))
    return entries


def _entry(kind: str, proto: Any, **config: Any) -> dict[str, Any]:
    conditions = []
    for condition in proto.conditions:
        if condition.WhichOneof("kind") != "parent":
            raise InvalidArgumentError(
                f"Keras Tuner {kind} {proto.name!r}: only parent conditions are supported"
            )
        conditions.append(
            {
                "class_name": "Parent",
                "config": {
                    "name": condition.parent.name,
                    "values": [_value_of(v) for v in condition.parent.values],
                },
            }
        )
    return {"class_name": kind, "config": {"name": proto.name, "conditions": conditions, **config}}


def _range(proto: kt_pb2.Float | kt_pb2.Int) -> dict[str, Any]:
    # An unset default arrives as 0 (proto3): keep it only when it lies in the range.
    default = proto.default if proto.min_value <= proto.default <= proto.max_value else None
    return {
        "min_value": proto.min_value,
        "max_value": proto.max_value,
        "step": proto.step or None,
        "sampling": _SAMPLING_NAMES.get(proto.sampling, "linear"),
        "default": default,
    }


def _add_entry(space: kt_pb2.HyperParameters.Space, kind: str, config: Mapping[str, Any]) -> None:
    conditions = [
        kt_pb2.Condition(
            parent=kt_pb2.Condition.Parent(
                name=c["config"]["name"], values=[_value_proto(v) for v in c["config"]["values"]]
            )
        )
        for c in config.get("conditions", [])
    ]
    name = config["name"]
    if kind in ("Float", "Int"):
        default = config.get("default")
        target = space.float_space.add() if kind == "Float" else space.int_space.add()
        target.name = name
        target.min_value = config["min_value"]
        target.max_value = config["max_value"]
        target.step = config.get("step") or 0
        target.sampling = _SAMPLING_ENUMS[config.get("sampling") or "linear"]
        target.default = config["min_value"] if default is None else default
        target.conditions.extend(conditions)
    elif kind == "Choice":
        values = [_value_proto(v) for v in config["values"]]
        space.choice_space.add(
            name=name,
            values=values,
            default=_value_proto(config["default"]),
            ordered=bool(config.get("ordered")),
            conditions=conditions,
        )
    elif kind == "Boolean":
        space.boolean_space.add(
            name=name, default=bool(config.get("default")), conditions=conditions
        )
    else:
        space.fixed_space.add(
            name=name, value=_value_proto(config["value"]), conditions=conditions
        )


def _value_proto(value: ParamValue) -> kt_pb2.Value:
    if isinstance(value, bool):
        return kt_pb2.Value(boolean_value=value)
    if isinstance(value, int):
        return kt_pb2.Value(int_value=value)
    if isinstance(value, float):
        return kt_pb2.Value(float_value=value)
    return kt_pb2.Value(string_value=str(value))


def _value_of(proto: kt_pb2.Value) -> ParamValue:
    kind = proto.WhichOneof("kind")
    if kind is None:
        raise InvalidArgumentError("a Keras Tuner Value with no kind set")
    value: ParamValue = getattr(proto, kind)
    return value


def _split_finite(metrics: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    finite: dict[str, float] = {}
    dropped: list[str] = []
    for name, value in metrics.items():
        if math.isfinite(value):
            finite[name] = value
        else:
            dropped.append(name)
    return finite, sorted(dropped)


def _score_of(config: StudyConfig, trial: kt_pb2.Trial) -> float | None:
    """The objective a worker sent with EndTrial, if any (stock workers send none)."""
    if trial.HasField("score") and math.isfinite(trial.score.value):
        return float(trial.score.value)
    history = trial.metrics.metrics.get(config.metric.name)
    if history is None:
        return None
    values = [v for obs in history.observations for v in obs.value if math.isfinite(v)]
    if not values:
        return None
    return config.metric.goal.best(values)


def _objectives_sent(config: StudyConfig, trial: kt_pb2.Trial) -> dict[str, float]:
    """In a multi-objective study, each objective's last value in the metrics a worker
    sent with EndTrial (one point; Keras Tuner's own score is a sum of the objectives,
    which the chief does not use).  Empty otherwise, or when it sent none: the chief then
    reads them from the measurements the worker reported."""
    if not config.multi_objective:
        return {}
    found = {}
    for metric in config.metrics:
        history = trial.metrics.metrics.get(metric.name)
        values = (
            []
            if history is None
            else [v for obs in history.observations for v in obs.value if math.isfinite(v)]
        )
        if values:
            found[metric.name] = float(values[-1])
    return found


def params_of(proto: kt_pb2.HyperParameters) -> Params:
    """The values of a ``HyperParameters`` message as plain params."""
    return {name: _value_of(value) for name, value in proto.values.values.items()}


__all__ = [
    "KerasTunerServicer",
    "hyperparameters_to_proto",
    "params_of",
    "parse_trial_id",
    "space_from_proto",
    "trial_id_of",
]
