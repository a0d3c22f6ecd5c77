"""``hpsearch tensorboard``: a study's trials read back by TensorBoard's own readers (the
event accumulator, the HParams plugin's metadata parser and its session-group backend)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hpsearch.cli import main
from hpsearch.records import TrialState
from hpsearch.space import loads_study
from hpsearch.store import Store
from tests.dashboard.study_data import PLAN, make_mixed_study

pytestmark = [pytest.mark.tf]  # the tensorboard package comes with the tf extra


@pytest.fixture(scope="module")
def tb() -> Any:
    """TensorBoard's readers (they import TensorFlow when it is installed: slow)."""
    pytest.importorskip("tensorboard", reason="needs tensorboard (the tf extra)")
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    return event_accumulator, api_pb2, metadata


def _accumulator(tb: Any, path: Path) -> Any:
    acc = tb[0].EventAccumulator(str(path), size_guidance={tb[0].TENSORS: 0, tb[0].SCALARS: 0})
    acc.Reload()
    return acc


def _hparam_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    return getattr(value, kind)


@pytest.mark.slow
def test_every_trial_that_ran_reads_back_as_an_hparams_session(
    tb: Any, storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, api_pb2, metadata = tb
    with Store(storage_url) as store:
        mixed = make_mixed_study(store, "mixed")
        trials = {t.number: t for t in store.list_trials("mixed")}
    logdir = tmp_path / "tb"
    argv = ["tensorboard", "mixed", "--logdir", str(logdir), "--storage", storage_url]
    assert main(argv) == 0
    ran = len(PLAN) - PLAN.count(TrialState.WAITING)
    assert f"{ran} trial(s) as HParams sessions (1 waiting" in capsys.readouterr().out

    # The experiment: the space's domains and the metrics, objective first.
    acc = _accumulator(tb, logdir)
    experiment = metadata.parse_experiment_plugin_data(
        acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    )
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"learning_rate", "units", "optimizer"}
    lr = infos["learning_rate"].domain_interval
    assert (lr.min_value, lr.max_value) == (0.0001, 0.1)
    assert sorted(v.string_value for v in infos["optimizer"].domain_discrete.values) == [
        "adam",
        "sgd",
    ]
    assert [m.name.tag for m in experiment.metric_infos] == ["val_accuracy", "loss"]
    assert experiment.metric_infos[0].display_name == "val_accuracy (objective, maximize)"

    runs = sorted(p.name for p in logdir.iterdir() if p.is_dir())
    assert runs == [
        f"trial-{n:04d}" for n in sorted(trials) if mixed.states[n] is not TrialState.WAITING
    ]
    status = {
        TrialState.COMPLETED: api_pb2.STATUS_SUCCESS,
        TrialState.FAILED: api_pb2.STATUS_FAILURE,
        TrialState.STOPPED: api_pb2.STATUS_UNKNOWN,
    }
    for number, state in mixed.states.items():
        run = logdir / f"trial-{number:04d}"
        if state is TrialState.WAITING:
            assert not run.exists()
            continue
        acc = _accumulator(tb, run)
        content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(
            content[metadata.SESSION_START_INFO_TAG]
        )
        assert start.group_name == f"trial-{number:04d}"
        params = {k: _hparam_value(v) for k, v in start.hparams.items()}
        expected = mixed.params[number]
        assert params["optimizer"] == expected["optimizer"]
        assert params["learning_rate"] == pytest.approx(expected["learning_rate"])
        assert params["units"] == expected["units"]
        assert start.start_time_secs == pytest.approx(trials[number].started_at)
        if state is TrialState.RUNNING:  # no end yet: TensorBoard shows it running
            assert metadata.SESSION_END_INFO_TAG not in content
        else:
            end = metadata.parse_session_end_info_plugin_data(
                content[metadata.SESSION_END_INFO_TAG]
            )
            assert end.status == status[state]
        if number in mixed.values:  # COMPLETED and STOPPED: the objective is the value
            (scalar,) = acc.Scalars("val_accuracy")
            assert scalar.value == pytest.approx(mixed.values[number])
        if state is TrialState.COMPLETED:
            (loss,) = acc.Scalars("loss")
            assert loss.value == pytest.approx(1 - mixed.values[number])
        # The intermediate measurements are curves in a run of their own.
        curve = _accumulator(tb, run / "measurements").Scalars("val_accuracy")
        assert [s.step for s in curve] == [0, 1, 2, 3]
        top = mixed.values.get(number)
        if top is not None and state is TrialState.COMPLETED:
            assert curve[-1].value == pytest.approx(top, rel=1e-6)


@pytest.mark.slow
def test_the_hparams_plugin_lists_the_sessions(tb: Any, sqlite_url: str, tmp_path: Path) -> None:
    """TensorBoard's HParams backend, as the dashboard queries it."""
    from tensorboard import context as tb_context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import backend_context, list_session_groups

    _, api_pb2, _ = tb
    with Store(sqlite_url) as store:
        store.create_study(
            loads_study(
                """
                name: kinds
                metric: {name: loss, goal: minimize}
                parameters:
                  batch: {type: discrete, values: [16, 32.5]}
                  bn: {type: boolean}
                  seed: {type: fixed, value: 7}
                  opt: {type: categorical, values: [sgd, adam]}
                  momentum: {type: double, min: 0, max: 0.9, when: {opt: [sgd]}}
                """
            )
        )
        for i, params in enumerate(
            [
                {"batch": 16, "bn": True, "seed": 7, "opt": "sgd", "momentum": 0.5},
                {"batch": 32.5, "bn": False, "seed": 7, "opt": "adam"},
            ]
        ):
            trial = store.create_trial("kinds", params, worker_id="w", lease_seconds=60)
            store.complete_trial("kinds", trial.number, trial.attempt, 0.5 + i, {})
    logdir = tmp_path / "tb"
    assert main(["tensorboard", "kinds", "--logdir", str(logdir), "--storage", sqlite_url]) == 0

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    context = backend_context.Context(
        base_plugin.TBContext(logdir=str(logdir), multiplexer=mux, data_provider=provider)
    )
    request_context = tb_context.RequestContext()
    experiment = context.experiment_from_metadata(
        request_context,
        "",
        include_metrics=True,
        hparams_run_to_tag_to_content=context.hparams_metadata(request_context, ""),
        data_provider_hparams=context.hparams_from_data_provider(request_context, "", None),
    )
    request = api_pb2.ListSessionGroupsRequest(
        experiment_name="",
        allowed_statuses=[api_pb2.STATUS_SUCCESS],
        col_params=[api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos]
        + [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos],
        start_index=0,
        slice_size=10,
    )
    response = list_session_groups.Handler(request_context, context, "", request).run()
    groups = {g.name: g for g in response.session_groups}
    assert set(groups) == {"trial-0000", "trial-0001"}
    first = {k: _hparam_value(v) for k, v in groups["trial-0000"].hparams.items()}
    assert first == {"batch": 16.0, "bn": True, "seed": 7.0, "opt": "sgd", "momentum": 0.5}
    second = {k: _hparam_value(v) for k, v in groups["trial-0001"].hparams.items()}
    assert "momentum" not in second and second["opt"] == "adam"  # inactive: left out
    values = {g: groups[g].metric_values[0].value for g in groups}
    assert values == {"trial-0000": 0.5, "trial-0001": 1.5}


def test_an_existing_export_is_replaced_only_when_asked(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorboard", reason="needs tensorboard (the tf extra)")
    with Store(sqlite_url) as store:
        make_mixed_study(store, "again")
    logdir = tmp_path / "tb"
    argv = ["tensorboard", "again", "--logdir", str(logdir), "--storage", sqlite_url]
    assert main(argv) == 0
    assert main(argv) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    # One event file per run: the first export was removed, not added to.
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    assert all(len(list(run.glob("events.out.tfevents.*"))) == 1 for run in logdir.glob("trial-*"))
    assert (
        main(["tensorboard", "again", "--logdir", "gs://bucket/tb", "--storage", sqlite_url]) == 2
    )
    assert "write to a local directory" in capsys.readouterr().err


def test_writing_imports_no_tensorflow(sqlite_url: str, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="needs tensorboard (the tf extra)")
    with Store(sqlite_url) as store:
        make_mixed_study(store, "light")
    code = (
        "import sys\n"
        "from hpsearch.cli import main\n"
        f"assert main(['tensorboard', 'light', '--logdir', {str(tmp_path / 'tb')!r}, "
        f"'--storage', {sqlite_url!r}]) == 0\n"
        "print('tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
