"""Optuna studies, written by the real Optuna, imported into hpsearch studies.

Through the Python API (an in-memory study) and the CLI (SQLite URL, journal file), on both
databases; the values must come back as Optuna holds them, and the chief's model must use
them.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest

from hpsearch.chief import Chief
from hpsearch.cli import main
from hpsearch.client import Client
from hpsearch.errors import InvalidArgumentError, NotFoundError
from hpsearch.importers.optuna import import_optuna
from hpsearch.records import TrialState
from hpsearch.store import Store

optuna = pytest.importorskip("optuna", reason="needs optuna (the optuna extra)")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: Any) -> float:
    """Every kind of Optuna distribution, a define-by-run conditional, pruned and failed
    trials, intermediate values."""
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
    units = trial.suggest_int("units", 8, 64, step=8)
    layers = trial.suggest_int("layers", 1, 16, log=True)
    optimizer = trial.suggest_categorical("optimizer", ["sgd", "adam"])
    if optimizer == "sgd":
        trial.suggest_float("momentum", 0.0, 0.9)
    batch = trial.suggest_categorical("batch", [64, 32, 128])
    trial.suggest_categorical("bias", [True, False])
    trial.suggest_categorical("mixed", [None, 1, "a"])
    value = math.log10(lr) + dropout + units / 64 + layers / 16 + batch / 128
    for step in range(3):
        trial.report(value + step, step)
        if trial.number % 7 == 6 and step == 1:
            raise optuna.TrialPruned()
    if trial.number == 4:
        raise ValueError("the objective failed")
    return value


def optuna_study(storage: Any = None, name: str = "tuned", n_trials: int = 24) -> Any:
    study = optuna.create_study(
        study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler(seed=3)
    )
    study.optimize(objective, n_trials=n_trials, catch=(ValueError,))
    return study


def assert_round_trip(store: Store, name: str, study: Any) -> None:
    trials = {int(t.tags["optuna_trial"]): t for t in store.list_trials(name)}
    assert set(trials) == {t.number for t in study.trials}
    for source in study.trials:
        trial = trials[source.number]
        expected_params = dict(source.params)
        expected_params["mixed"] = str(expected_params["mixed"])  # the one lossy mapping
        assert trial.params == expected_params
        for key in ("units", "layers", "batch"):  # ints stay ints
            assert type(trial.params[key]) is int
        assert type(trial.params["bias"]) is bool
        steps = [(m.step, m.metrics) for m in store.list_measurements(name, trial.number)]
        assert steps == [(s, {"value": v}) for s, v in sorted(source.intermediate_values.items())]
        assert trial.tags["imported_from"] == "optuna"
        assert trial.tags["optuna_state"] == source.state.name
        if source.state.name == "COMPLETE":
            assert trial.state is TrialState.COMPLETED and trial.value == source.value
        elif source.state.name == "PRUNED":
            assert trial.state is TrialState.STOPPED
            assert trial.value == source.intermediate_values[1]
        else:
            assert trial.state is TrialState.FAILED and trial.value is None


def test_an_in_memory_study_round_trips_its_space_and_values(store: Store) -> None:
    study = optuna_study()
    states = {t.state.name for t in study.trials}
    assert states == {"COMPLETE", "PRUNED", "FAIL"}
    result = import_optuna(store, study, into="imported")
    by_state = [t.state.name for t in study.trials]
    assert (result.completed, result.stopped, result.failed) == (
        by_state.count("COMPLETE"),
        by_state.count("PRUNED"),
        by_state.count("FAIL"),
    )
    assert result.created_study and result.pending == result.skipped == 0
    config = store.get_study("imported").config
    assert config.metric.name == "value" and config.metric.goal.value == "minimize"
    space = config.space
    assert (space["lr"].kind, space["lr"].scale.value) == ("double", "log")
    assert (space["dropout"].kind, space["dropout"].step) == ("double", 0.1)
    assert (space["units"].kind, space["units"].step, space["units"].min) == ("integer", 8, 8)
    assert (space["layers"].kind, space["layers"].scale.value) == ("integer", "log")
    assert space["optimizer"].values == ("sgd", "adam")
    assert (space["batch"].kind, space["batch"].values) == ("discrete", (64, 32, 128))
    assert space["batch"].ordered is False
    assert space["bias"].kind == "boolean"
    assert space["mixed"].values == ("None", "1", "a")
    (condition,) = space["momentum"].conditions
    assert (condition.parent, condition.values) == ("optimizer", ("sgd",))
    assert_round_trip(store, "imported", study)
    # Importing again adds nothing.
    again = import_optuna(store, study, into="imported")
    assert (again.added, again.unchanged) == (0, len(study.trials))


def test_the_cli_imports_from_an_sqlite_url_and_then_only_new_trials(
    storage_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna_study(url, n_trials=10)
    argv = ["--log-level", "WARNING", "import", "optuna", "--from", url, "--study", "tuned"]
    assert main([*argv, "--storage", storage_url]) == 0
    out = capsys.readouterr().out
    assert "imported 10 trial(s)" in out and "into study 'tuned' (created)" in out
    with Store(storage_url) as store:
        assert_round_trip(store, "tuned", study)
    study.optimize(objective, n_trials=5, catch=(ValueError,))
    assert main([*argv, "--storage", storage_url]) == 0
    out = capsys.readouterr().out
    assert "imported 5 trial(s)" in out and "10 imported before" in out
    with Store(storage_url) as store:
        assert_round_trip(store, "tuned", optuna.load_study(study_name="tuned", storage=url))


def test_the_cli_imports_a_journal_file(sqlite_url: str, tmp_path: Path) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "optuna.log"
    study = optuna_study(JournalStorage(JournalFileBackend(str(path))), name="journal")
    code = main(["import", "optuna", "--from", str(path), "--into", "j", "--storage", sqlite_url])
    assert code == 0
    with Store(sqlite_url) as store:
        assert_round_trip(store, "j", study)
        assert store.get_trial("j", 0).tags["optuna_storage"] == str(path.resolve())


def test_mistakes_are_refused_with_what_to_do(
    sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna_study(url, name="a", n_trials=3)
    optuna_study(url, name="b", n_trials=3)
    with Store(sqlite_url) as store:
        with pytest.raises(InvalidArgumentError, match=r"holds 2 Optuna studies \(a, b\); name"):
            import_optuna(store, url)
        with pytest.raises(NotFoundError, match=r"no Optuna study 'c'.*a, b"):
            import_optuna(store, url, "c")
        two = optuna.create_study(directions=["minimize", "maximize"])
        with pytest.raises(InvalidArgumentError, match="2 objectives"):
            import_optuna(store, two)
        import_optuna(store, url, "a", into="mine")
        flipped = optuna.create_study(direction="maximize")
        flipped.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True), n_trials=2)
        with pytest.raises(InvalidArgumentError, match=r"optimizes value \(minimize\) but"):
            import_optuna(store, flipped, into="mine")
        assert len(store.list_trials("mine")) == 3  # nothing added by the refusals
    code = main(["import", "optuna", "--from", str(tmp_path / "none.db"), "--storage", sqlite_url])
    assert code == 2
    assert "neither a URL" in capsys.readouterr().err


def quadratic(trial: Any) -> float:
    return (trial.suggest_float("x", 0.0, 1.0) - 0.3) ** 2


@pytest.fixture
def chief_with_import(chief_storage: str) -> Any:
    """The import first (so the chief finds the study in SQL), then the chief."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=11))
    study.optimize(quadratic, n_trials=25)
    with Store(chief_storage) as store:
        import_optuna(store, study, into="warm", max_trials=40)
    server = Chief(chief_storage, host="127.0.0.1", port=0, hold_seconds=1.0)
    server.start()
    try:
        yield server
    finally:
        server.stop(0)


def test_the_chiefs_model_uses_the_imported_trials(chief_with_import: Chief) -> None:
    """After 25 imported random trials of (x - 0.3)^2, the GP's next proposals sit near
    0.3: uniform draws (a search that ignored them) would put the median of 5 within 0.05
    of it with probability 0.009."""
    with Client(chief_with_import.address, timeout=30, wait_seconds=5) as client:
        proposals = []
        for _ in range(5):
            (trial,) = client.ask("warm", "w0", timeout=60)
            assert trial.number >= 25  # numbered after the imported ones
            x = float(trial.params["x"])
            proposals.append(x)
            client.tell("warm", trial.number, trial.attempt, value=(x - 0.3) ** 2)
    assert abs(statistics.median(proposals) - 0.3) < 0.05, proposals
