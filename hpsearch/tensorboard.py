"""A study as TensorBoard HParams data: ``hpsearch tensorboard STUDY --logdir DIR``.

Writes, with the tensorboard package's own HParams summaries
(``tensorboard.plugins.hparams.summary_v2``) and record framing, event files that
``tensorboard --logdir DIR`` shows in its HParams dashboard (table, parallel coordinates,
scatter plots) and its Scalars dashboard:

- ``DIR/events.out.tfevents.*``: the experiment: one hyperparameter per parameter of the
  space with its domain (``double`` an interval of reals, ``integer`` of integers,
  ``categorical``/``discrete``/``boolean``/``fixed`` their values), and one metric per final
  metric the trials reported, the objective first (its display name says the goal);
- ``DIR/trial-NNNN/``: one session per trial that ran: its parameters (a conditional
  parameter that was inactive is left out, which TensorBoard shows as empty), started at the
  trial's start, its final metrics as scalars (the objective is the trial's value, chosen by
  the study's measurement rule) and its end: COMPLETED as success, FAILED as failure,
  STOPPED as unknown (TensorBoard has no "stopped early"); a RUNNING trial has no end yet
  (TensorBoard shows it running).  WAITING trials never ran: none;
- ``DIR/trial-NNNN/measurements/``: its intermediate measurements as scalar curves, one point
  per reported step, at the time it was reported.

Times are the database's.  No TensorFlow is imported (the tensorboard package alone is
needed: the ``tf`` extra has it).  ``DIR`` is a local directory: write there and copy it
to ``gs://`` if TensorBoard reads from there.  Writing again into a directory that holds an
export needs ``overwrite``, which removes that export first.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hpsearch.errors import FailedPreconditionError, InvalidArgumentError
from hpsearch.records import MeasurementRecord, Study, Trial, TrialState
from hpsearch.space import Parameter, Space
from hpsearch.store.api import Store

logger = logging.getLogger(__name__)

#: A trial's run directory under the logdir, and its measurements' run under that.
RUN = "trial-{number:04d}"
MEASUREMENTS_RUN = "measurements"
EVENTS_PREFIX = "events.out.tfevents."


@dataclass(frozen=True, slots=True)
class TensorBoardExport:
    """What :func:`write_study` wrote."""

    logdir: Path
    sessions: int  # trials written as HParams sessions
    skipped: int  # WAITING trials (never ran)
    hparams: tuple[str, ...]
    metrics: tuple[str, ...]  # the objective first


def write_study(
    store: Store,
    name: str,
    logdir: str | Path,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TensorBoardExport:
    """Write the study ``name`` as TensorBoard HParams data under ``logdir`` (see the
    module docstring); ``progress(done, total)`` after each trial."""
    tb = _tensorboard()
    root = _prepare(logdir, overwrite)
    study = store.get_study(name)
    trials = store.list_trials(name)
    measured: dict[int, list[MeasurementRecord]] = {}
    for record in store.list_measurements(name):
        measured.setdefault(record.trial_number, []).append(record)
    ran = [t for t in trials if t.state is not TrialState.WAITING]
    metrics = _metric_names(study, ran)
    space = study.config.space
    with _EventFile(root, tb) as events:
        events.summary(
            tb.summary_v2.hparams_config_pb(
                [_hparam(tb, param) for param in space],
                [_metric(tb, study, metric) for metric in metrics],
                time_created_secs=study.created_at,
            ),
            wall_time=study.created_at,
        )
    for done, trial in enumerate(ran, start=1):
        _write_trial(tb, root, study, trial, measured.get(trial.number, []))
        if progress is not None:
            progress(done, len(ran))
    logger.info("tensorboard export study=%s logdir=%s sessions=%d", name, root, len(ran))
    return TensorBoardExport(
        logdir=root,
        sessions=len(ran),
        skipped=len(trials) - len(ran),
        hparams=space.names,
        metrics=tuple(metrics),
    )


# -- one trial -------------------------------------------------------------------------------
def _write_trial(
    tb: Any, root: Path, study: Study, trial: Trial, measurements: list[MeasurementRecord]
) -> None:
    run = root / RUN.format(number=trial.number)
    started = trial.started_at or trial.created_at
    final = {k: v for k, v in trial.metrics.items() if _finite(v)}
    if trial.value is not None and _finite(trial.value):
        final[study.config.metric.name] = trial.value
    # The attempt whose result counts: the trial's own; a retried trial's earlier attempts
    # are not its curve.
    curve = [m for m in measurements if m.attempt == trial.attempt] or measurements
    last_step = max((m.step for m in curve), default=0)
    ended = trial.completed_at or started
    with _EventFile(run, tb) as events:
        events.summary(
            tb.summary_v2.hparams_pb(
                _hparam_values(study.config.space, trial.params),
                trial_id=RUN.format(number=trial.number),
                start_time_secs=started,
            ),
            wall_time=started,
        )
        for metric, value in sorted(final.items()):
            events.scalar(metric, value, step=last_step, wall_time=ended)
        status = _STATUS.get(trial.state)
        if status is not None:
            events.summary(_session_end(tb, status, ended), wall_time=ended)
    if curve:
        with _EventFile(run / MEASUREMENTS_RUN, tb) as events:
            for record in sorted(curve, key=lambda m: m.step):
                for metric, value in sorted(record.metrics.items()):
                    if _finite(value):
                        events.scalar(metric, value, step=record.step, wall_time=record.created_at)


#: A finished trial's TensorBoard session status (tensorboard.plugins.hparams.api_pb2):
#: TensorBoard knows success, failure and running only, so a trial stopped early (it did
#: not fail, nor did it train to the end) is "unknown".
_STATUS = {
    TrialState.COMPLETED: "STATUS_SUCCESS",
    TrialState.FAILED: "STATUS_FAILURE",
    TrialState.STOPPED: "STATUS_UNKNOWN",
}


def _session_end(tb: Any, status: str, end_time: float) -> Any:
    """A session's end: what ``summary.session_end_pb`` builds, without TensorFlow (that
    module imports it)."""
    data = tb.plugin_data_pb2.HParamsPluginData(
        session_end_info=tb.plugin_data_pb2.SessionEndInfo(
            status=tb.api_pb2.Status.Value(status), end_time_secs=end_time
        )
    )
    summary = tb.summary_pb2.Summary()
    summary.value.add(
        tag=tb.metadata.SESSION_END_INFO_TAG,
        metadata=tb.metadata.create_summary_metadata(data),
        tensor=tb.metadata.NULL_TENSOR,
    )
    return summary


# -- the experiment --------------------------------------------------------------------------
def _hparam(tb: Any, param: Parameter) -> Any:
    hp = tb.summary_v2
    kind = param.kind
    if kind == "double":
        domain = hp.RealInterval(float(param.min), float(param.max))  # type: ignore[union-attr]
    elif kind == "integer":
        domain = hp.IntInterval(int(param.min), int(param.max))  # type: ignore[union-attr]
    elif kind == "boolean":
        domain = hp.Discrete([False, True])
    elif kind == "fixed":
        domain = hp.Discrete([param.value])  # type: ignore[union-attr]
    else:  # categorical strings, discrete numbers (one type for TensorBoard: float if mixed)
        values = list(param.values)  # type: ignore[union-attr]
        if kind == "discrete" and any(isinstance(v, float) for v in values):
            values = [float(v) for v in values]
        domain = hp.Discrete(values)
    return hp.HParam(param.name, domain)


def _hparam_values(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's values as its session holds them (a mixed discrete parameter's as floats,
    like its domain)."""
    floats = {
        p.name
        for p in space
        if p.kind == "discrete" and any(isinstance(v, float) for v in p.values)  # type: ignore[union-attr]
    }
    return {k: float(v) if k in floats else v for k, v in params.items()}


def _metric_names(study: Study, trials: Iterable[Trial]) -> list[str]:
    objective = study.config.metric.name
    others = sorted({k for t in trials for k in t.metrics if k != objective})
    return [objective, *others]


def _metric(tb: Any, study: Study, name: str) -> Any:
    metric = study.config.metric
    shown = f"{name} (objective, {metric.goal.value})" if name == metric.name else name
    return tb.summary_v2.Metric(name, display_name=shown)


# -- files -----------------------------------------------------------------------------------
def _prepare(logdir: str | Path, overwrite: bool) -> Path:
    text = str(logdir)
    if "://" in text:
        raise InvalidArgumentError(
            f"--logdir {text}: write to a local directory, then copy it there "
            "(e.g. gsutil -m cp -r DIR gs://...)"
        )
    root = Path(text).resolve()
    if root.exists() and not root.is_dir():
        raise InvalidArgumentError(f"--logdir {root} is a file; give a directory")
    previous = _previous_export(root)
    if previous and not overwrite:
        raise FailedPreconditionError(
            f"{root} already holds TensorBoard data ({len(previous)} event files or runs); "
            "pass --overwrite to replace it, or give another --logdir"
        )
    for path in previous:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _previous_export(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.name.startswith(EVENTS_PREFIX) or (p.is_dir() and p.name.startswith("trial-"))
    )


class _EventFile:
    """One TensorBoard event file, written with tensorboard's record framing on a plain
    local file (its EventFileWriter imports TensorFlow for ``tf.io.gfile``)."""

    _count = 0

    def __init__(self, directory: Path, tb: Any) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        _EventFile._count += 1
        name = (
            f"{EVENTS_PREFIX}{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{_EventFile._count}"
        )
        self._tb = tb
        self._file = open(directory / name, "wb")  # noqa: SIM115 - closed in __exit__
        self._records = tb.RecordWriter(self._file)
        self._event(tb.event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def summary(self, summary: Any, *, wall_time: float, step: int = 0) -> None:
        self._event(self._tb.event_pb2.Event(wall_time=wall_time, step=step, summary=summary))

    def scalar(self, tag: str, value: float, *, step: int, wall_time: float) -> None:
        summary = self._tb.summary_pb2.Summary()
        summary.value.add(tag=tag, simple_value=float(value))
        self.summary(summary, wall_time=wall_time, step=step)

    def _event(self, event: Any) -> None:
        self._records.write(event.SerializeToString())

    def __enter__(self) -> _EventFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._records.close()


def _tensorboard() -> Any:
    """The tensorboard modules this needs, in one namespace (imported on first use)."""
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        raise InvalidArgumentError(
            "writing TensorBoard data needs the tensorboard package: pip install tensorboard "
            "(the tf extra has it)"
        ) from None

    return SimpleNamespace(
        event_pb2=event_pb2,
        summary_pb2=summary_pb2,
        api_pb2=api_pb2,
        metadata=metadata,
        plugin_data_pb2=plugin_data_pb2,
        summary_v2=summary_v2,
        RecordWriter=RecordWriter,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
