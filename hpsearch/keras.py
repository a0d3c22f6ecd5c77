"""A tf.keras callback that reports each epoch to hpsearch and stops training when told.

One callback, three places to run, chosen by what it is given:

- ``TrialCallback(trial)`` in an objective of :func:`hpsearch.optimize`: each epoch's logs
  are reported through the running trial; when the oracle says stop (the study's
  early-stopping rule, the study stopped, the attempt's lease lost) it sets
  ``model.stop_training`` and the trial ends STOPPED.
- ``TrialCallback(trial, client=client, study="mnist")`` in a loop of your own over
  :class:`hpsearch.Client` (``trial`` is what ``client.ask`` handed out): the same through
  the chief, and the lease is renewed while an epoch trains.
- ``TrialCallback(metric="val_accuracy")`` in a trial script run by ``hpsearch worker``
  (or by Vertex AI): that Keras log is written each epoch through cloudml-hypertune
  (``CLOUD_ML_HP_METRIC_FILE``), so the script stays a plain Vertex AI trial and imports
  no hpsearch client.  The worker reads the file, and stops a trial the chief says to stop
  by ending its process (SIGTERM), as for any trial script.

The step of each report is the number of epochs trained in all (``epoch + 1``: a run
resumed with ``initial_epoch`` continues the count), as ``trials/mnist.py`` reports it.
Importing this module imports TensorFlow; ``import hpsearch`` does not import this module.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from hpsearch.errors import FailedPreconditionError, InvalidArgumentError

try:
    import tensorflow as tf
except ImportError as error:  # pragma: no cover - the tf extra is installed in CI
    raise ImportError("hpsearch.keras needs TensorFlow: pip install 'hpsearch[tf]'") from error

if TYPE_CHECKING:
    from hpsearch.client import Client

logger = logging.getLogger(__name__)


class TrialCallback(tf.keras.callbacks.Callback):  # type: ignore[misc]
    """Report each epoch's logs and stop ``model.fit`` when hpsearch says so (see the
    module docstring for the three ways to construct it).

    ``metric``: the Keras log that is the study's objective.  Required in a trial script
    (it is the hypertune tag, the study's metric name); elsewhere it defaults to the
    study's metric, and must equal it.  After ``fit``, :attr:`stopped_epoch` is the number
    of epochs trained when hpsearch said stop (None if it never did) and
    :attr:`stop_reason` says why.
    """

    def __init__(
        self,
        trial: Any = None,
        *,
        client: Client | None = None,
        study: str | None = None,
        metric: str | None = None,
    ) -> None:
        super().__init__()
        self._sink: _Sink
        if client is not None:
            if trial is None or not study:
                raise InvalidArgumentError(
                    "with a client, pass the trial it handed out and the study's name: "
                    "TrialCallback(trial, client=client, study='mnist')"
                )
            self._sink = _ClientSink(client, study, trial)
        elif trial is not None:
            if not callable(getattr(trial, "report", None)) or not hasattr(trial, "metric"):
                raise InvalidArgumentError(
                    f"TrialCallback(trial) takes the trial hpsearch.optimize gives the "
                    f"objective, got {type(trial).__name__}; with a trial from Client.ask, "
                    "pass client= and study= too"
                )
            self._sink = _TrialSink(trial)
        else:
            if not metric:
                raise InvalidArgumentError(
                    "name the Keras log to report: TrialCallback(metric='val_accuracy') in a "
                    "trial script (its hypertune tag, the study's metric name); in an "
                    "objective of hpsearch.optimize pass the trial: TrialCallback(trial)"
                )
            self._sink = _HypertuneSink(metric)
        if metric is not None and metric != self._sink.metric:
            raise InvalidArgumentError(
                f"metric={metric!r} but the study's metric is {self._sink.metric!r}; the "
                "callback reports Keras logs under their own names: compile the model with "
                f"a metric logged as {self._sink.metric!r}"
            )
        self.metric = self._sink.metric
        self.stopped_epoch: int | None = None
        self.stop_reason = ""

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self.stopped_epoch = None
        self.stop_reason = ""
        self._sink.begin(self)

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._sink.end()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.metric not in logs:
            raise InvalidArgumentError(
                f"the study's metric {self.metric!r} is not a Keras log of this fit "
                f"(logs: {sorted(logs)}); compile the model with that metric, or pass "
                "validation_data for a val_ metric"
            )
        step = epoch + 1
        metrics = _finite_logs(logs)
        if self.metric not in metrics:
            logger.warning(
                "not reporting epoch %d: %s is %s", step, self.metric, logs[self.metric]
            )
            return
        stop, reason = self._sink.report(step, metrics)
        if stop:
            self.stop(reason, epochs=step)

    def stop(self, reason: str, *, epochs: int | None = None) -> None:
        """Stop training after the current batch (``model.stop_training``)."""
        if self.stopped_epoch is None:
            self.stopped_epoch = epochs
            self.stop_reason = reason
            logger.info("training stops epochs=%s reason=%r", epochs, reason)
        if self.model is not None:
            self.model.stop_training = True


class _Sink(Protocol):
    """Where a callback's reports go."""

    metric: str

    def begin(self, callback: TrialCallback) -> None: ...

    def end(self) -> None: ...

    def report(self, step: int, metrics: dict[str, float]) -> tuple[bool, str]:
        """Report one epoch; (whether to stop, why)."""
        ...


class _TrialSink:
    """The running trial of :func:`hpsearch.optimize` (its loop renews the lease)."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.metric: str = trial.metric

    def begin(self, callback: TrialCallback) -> None:
        pass

    def end(self) -> None:
        pass

    def report(self, step: int, metrics: dict[str, float]) -> tuple[bool, str]:
        stop = bool(self.trial.report(step, metrics))
        return stop, self.trial.stop_reason if stop else ""


class _ClientSink:
    """A trial handed out by a chief through :class:`hpsearch.Client`: reports go to the
    chief, and a thread renews the lease while ``fit`` runs (an epoch may outlast it)."""

    def __init__(self, client: Client, study: str, trial: Any) -> None:
        config = client.get_study(study).config
        self.client = client
        self.study = study
        self.number: int = trial.number
        self.attempt: int = trial.attempt
        self.metric = config.metric.name
        self.interval = max(0.5, min(config.lease_seconds / 3.0, 30.0))
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, callback: TrialCallback) -> None:
        self._done.clear()
        self._thread = threading.Thread(
            target=self._heartbeats,
            args=(weakref.ref(callback),),
            name=f"hpsearch-keras-heartbeat-{self.number}",
            daemon=True,
        )
        self._thread.start()

    def end(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def report(self, step: int, metrics: dict[str, float]) -> tuple[bool, str]:
        try:
            answer = self.client.report(self.study, self.number, self.attempt, step, metrics)
        except FailedPreconditionError as error:  # the attempt was given up on
            return True, f"this attempt no longer runs the trial: {error}"
        return answer.should_stop, answer.reason

    def _heartbeats(self, callback: weakref.ref[TrialCallback]) -> None:
        # Ends with fit (on_train_end), when the chief refuses the attempt (it ended, e.g.
        # told FAILED after fit raised), or when the callback is gone.
        while not self._done.wait(self.interval):
            owner = callback()
            if owner is None:
                return
            try:
                answer = self.client.heartbeat(self.study, self.number, self.attempt)
            except FailedPreconditionError as error:
                owner.stop(f"this attempt no longer runs the trial: {error}")
                return
            except Exception as error:  # the client already retried; try again next round
                logger.warning(
                    "heartbeat failed study=%s trial=%d: %s", self.study, self.number, error
                )
                continue
            if answer.should_stop:
                owner.stop(answer.reason)
            del owner


class _HypertuneSink:
    """A trial script's metric file, written through cloudml-hypertune (the Vertex AI
    contract ``hpsearch worker`` reads)."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self._hypertune: Any = None

    def begin(self, callback: TrialCallback) -> None:
        if self._hypertune is None:
            self._hypertune = _shared_hypertune()

    def end(self) -> None:
        pass

    def report(self, step: int, metrics: dict[str, float]) -> tuple[bool, str]:
        # One metric per line, as Vertex AI reads it; the first line of a step is the
        # measurement the worker keeps.
        self._hypertune.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag=self.metric,
            metric_value=metrics[self.metric],
            global_step=step,
        )
        return False, ""


_HYPERTUNE: Any = None
_HYPERTUNE_LOCK = threading.Lock()


def _shared_hypertune() -> Any:
    """This process's one ``hypertune.HyperTune``: it rewrites the whole metric file from
    its memory on every report, so a second instance would erase the first one's lines."""
    global _HYPERTUNE
    with _HYPERTUNE_LOCK:
        if _HYPERTUNE is None:
            try:
                import hypertune
            except ImportError:
                raise InvalidArgumentError(
                    "TrialCallback(metric=...) writes through cloudml-hypertune: "
                    "pip install cloudml-hypertune (in the tf extra)"
                ) from None
            path = os.environ.get("CLOUD_ML_HP_METRIC_FILE", "")
            if path and not os.path.dirname(path):
                # hypertune calls os.makedirs("") for a bare file name, which fails.
                os.environ["CLOUD_ML_HP_METRIC_FILE"] = os.path.abspath(path)
            if not path and "CLOUD_ML_TRIAL_ID" not in os.environ:
                logger.warning(
                    "not running as a trial (no CLOUD_ML_HP_METRIC_FILE or CLOUD_ML_TRIAL_ID): "
                    "metrics go to hypertune's default file; run the script under hpsearch "
                    "worker, or pass the trial (hpsearch.optimize) or a client"
                )
            _HYPERTUNE = hypertune.HyperTune()
        return _HYPERTUNE


def _finite_logs(logs: Mapping[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for name, value in logs.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            metrics[name] = number
    return metrics


__all__ = ["TrialCallback"]
