"""`hpsearch study stop|resume|delete|copy|update|note|tag|enqueue` through the command's
entry point, on SQLite and PostgreSQL, checked through the CLI's own listings and the store."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from hpsearch.cli import main
from hpsearch.records import AttemptState, StudyState, TrialState
from hpsearch.store import Store

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mnist_mlp.yaml"
ADAM = {"learning_rate": 0.01, "n_hidden": 2, "n_neurons": 64, "optimizer": "adam"}
SGD = {"learning_rate": 0.001, "n_hidden": 1, "n_neurons": 8, "optimizer": "sgd", "momentum": 0.9}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--log-level", "WARNING", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def study(storage_url: str, capsys: pytest.CaptureFixture[str]) -> str:
    """mnist-mlp with two completed trials (measured), one failed and one running."""
    assert run(capsys, "study", "create", str(EXAMPLE), "--storage", storage_url)[0] == 0
    with Store(storage_url) as store:
        for value, params in ((0.91, ADAM), (0.97, SGD)):
            trial = store.create_trial("mnist-mlp", params, worker_id="w1")
            store.add_measurement("mnist-mlp", trial.number, 1, 1, {"val_accuracy": value / 2})
            store.complete_trial("mnist-mlp", trial.number, 1, value)
        failed = store.create_trial("mnist-mlp", ADAM, worker_id="w2")
        store.fail_trial("mnist-mlp", failed.number, 1, "CUDA out of memory")
        running = store.create_trial("mnist-mlp", SGD, worker_id="w3")
        store.add_measurement("mnist-mlp", running.number, 1, 4, {"val_accuracy": 0.5})
    return storage_url


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stop_and_resume(study: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "study", "stop", "mnist-mlp", "--storage", study)
    assert code == 0 and "is STOPPED" in out and "hpsearch study resume mnist-mlp" in out
    code, out, _ = run(capsys, "study", "list", "--format", "json", "--storage", study)
    assert json.loads(out)[0]["state"] == "STOPPED"
    code, out, _ = run(capsys, "study", "resume", "mnist-mlp", "--storage", study)
    assert code == 0 and "is ACTIVE" in out
    code, _, err = run(capsys, "study", "stop", "nope", "--storage", study)
    assert code == 2 and "there is no study 'nope'" in err


def test_delete_asks_on_a_terminal_and_refuses_without_one(
    study: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Off a terminal (a script, CI): only with --yes.
    code, _, err = run(capsys, "study", "delete", "mnist-mlp", "--storage", study)
    assert code == 2 and "without confirmation" in err and "--yes" in err
    # On a terminal, a wrong answer keeps the study.
    monkeypatch.setattr(sys, "stdin", _Terminal("mnist\n"))
    code, _, err = run(capsys, "study", "delete", "mnist-mlp", "--storage", study)
    assert code == 1 and "its 4 trials" in err and "not deleted" in err
    # A running trial: stop the study first, or --force.
    monkeypatch.setattr(sys, "stdin", _Terminal("mnist-mlp\n"))
    code, _, err = run(capsys, "study", "delete", "mnist-mlp", "--storage", study)
    assert code == 2 and "1 running trial(s)" in err and "hpsearch study stop" in err
    with Store(study) as store:
        assert len(store.list_trials("mnist-mlp")) == 4
    monkeypatch.setattr(sys, "stdin", _Terminal("mnist-mlp\n"))
    code, out, _ = run(capsys, "study", "delete", "mnist-mlp", "--force", "--storage", study)
    assert code == 0 and "deleted study 'mnist-mlp' and its 4 trials" in out
    code, out, _ = run(capsys, "study", "list", "--storage", study)
    assert "no studies yet" in out


def test_copy_to_another_database_and_under_another_name(
    study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(capsys, "study", "note", "mnist-mlp", "first sweep", "--storage", study)
    run(capsys, "study", "tag", "mnist-mlp", "owner=ana", "--storage", study)
    run(capsys, "study", "tag", "mnist-mlp", "best=yes", "--trial", "1", "--storage", study)
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    code, out, _ = run(capsys, "study", "copy", "mnist-mlp", "--to", target, "--storage", study)
    assert code == 0 and "copied study 'mnist-mlp' to 'mnist-mlp'" in out and "4 trials" in out
    code, _, err = run(capsys, "study", "copy", "mnist-mlp", "--storage", study)
    assert code == 2 and "--name NEW" in err
    code, out, _ = run(
        capsys, "study", "copy", "mnist-mlp", "--name", "mnist-v2", "--storage", study
    )
    assert code == 0
    code, _, err = run(capsys, "study", "copy", "mnist-mlp", "--to", target, "--storage", study)
    assert code == 2 and "already exists in the target database" in err

    with Store(study) as source:
        original = source.snapshot_study("mnist-mlp")
        renamed = source.snapshot_study("mnist-v2")
    with Store(target) as store:
        copied = store.snapshot_study("mnist-mlp")
    for copy in (copied, renamed):
        assert copy.study.note == "first sweep" and copy.study.user_tags == {"owner": "ana"}
        assert copy.trial_count == 4
        pairs = list(zip(original.trials, copy.trials, strict=True))
        for was, now in pairs[:3]:
            assert (now.number, now.state, now.params, now.value, now.metrics, now.tags) == (
                was.number,
                was.state,
                was.params,
                was.value,
                was.metrics,
                was.tags,
            )
            assert (now.worker_id, now.created_at, now.completed_at) == (
                was.worker_id,
                was.created_at,
                was.completed_at,
            )
        # The running trial is to run again in the copy, its attempt given up on.
        running = copy.trials[3]
        assert running.state is TrialState.WAITING and running.lease_expires_at is None
        assert "copied" in (running.failure_message or "")
        assert [a.state for a in copy.attempts] == [
            AttemptState.COMPLETED,
            AttemptState.COMPLETED,
            AttemptState.FAILED,
            AttemptState.LOST,
        ]
        assert [(m.trial_number, m.step, m.metrics) for m in copy.measurements] == [
            (m.trial_number, m.step, m.metrics) for m in original.measurements
        ]
        assert copy.trials[1].user_tags == {"best": "yes"}
    with Store(target) as store:  # the copy runs on: its next trial is number 4
        again = store.claim_trial("mnist-mlp", "w9")
        assert again is not None and (again.number, again.attempt) == (3, 2)
        assert store.create_trial("mnist-mlp", ADAM).number == 4


def test_update_with_flags_and_with_a_file(
    study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys,
        "study",
        "update",
        "mnist-mlp",
        "--max-trials",
        "150",
        "--parallel-trials",
        "4",
        "--max-failed-trials",
        "none",
        "--storage",
        study,
    )
    assert code == 0
    assert "mnist-mlp: budget.max_trials: 100 -> 150" in out
    assert "mnist-mlp: budget.parallel_trials: 20 -> 4" in out
    assert "budget.max_failed_trials: 10 -> (none)" in out
    code, out, _ = run(
        capsys, "study", "show", "mnist-mlp", "--format", "json", "--storage", study
    )
    budget = json.loads(out)["study"]["budget"]
    assert (budget["max_trials"], budget["parallel_trials"]) == (150, 4)
    assert budget["max_failed_trials"] is None

    changed = tmp_path / "changed.yaml"
    text = EXAMPLE.read_text()
    changed.write_text(text.replace("algorithm: bayesian", "algorithm: random"))
    code, _, err = run(
        capsys, "study", "update", "mnist-mlp", "--file", str(changed), "--storage", study
    )
    assert code == 2 and "algorithm: bayesian -> random" in err and "warm_start" in err
    added = text.replace(
        "parameters:", "parameters:\n  dropout: {type: double, min: 0.0, max: 0.5}", 1
    )
    changed.write_text(added)
    code, out, _ = run(
        capsys, "study", "update", "mnist-mlp", "--file", str(changed), "--storage", study
    )
    assert code == 0 and "parameters.dropout: (none) -> " in out
    assert "budget.max_trials: 150 -> 100" in out  # the file's own budget
    code, _, err = run(
        capsys, "study", "update", "mnist-mlp", "--max-trials", "3", "--storage", study
    )
    assert code == 2 and "has 4 trials already" in err
    code, _, err = run(capsys, "study", "update", "mnist-mlp", "--storage", study)
    assert code == 2 and "nothing to change" in err


def test_notes_and_tags_show_in_study_show_and_trials(
    study: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "study", "note", "mnist-mlp", "Adam vs SGD", "--storage", study)
    assert code == 0 and out.strip() == "Adam vs SGD"
    code, out, _ = run(
        capsys, "study", "tag", "mnist-mlp", "owner=ana", "team=vision", "--storage", study
    )
    assert out.split() == ["owner=ana", "team=vision"]
    code, out, _ = run(capsys, "study", "tag", "mnist-mlp", "--remove", "team", "--storage", study)
    assert out.split() == ["owner=ana"]
    run(capsys, "study", "note", "mnist-mlp", "OOM at bs 128", "--trial", "2", "--storage", study)
    run(capsys, "study", "tag", "mnist-mlp", "rerun=yes", "--trial", "2", "--storage", study)

    code, out, _ = run(capsys, "study", "show", "mnist-mlp", "--storage", study)
    assert "# note: Adam vs SGD" in out and "# tags: owner=ana" in out
    code, out, _ = run(capsys, "trials", "mnist-mlp", "--format", "json", "--storage", study)
    rows = {row["number"]: row for row in json.loads(out)}
    assert rows[2]["note"] == "OOM at bs 128" and rows[2]["tags"] == "rerun=yes"
    assert "note" not in rows[0] and "tags" not in rows[0]
    code, out, _ = run(capsys, "study", "note", "mnist-mlp", "--trial", "2", "--storage", study)
    assert out.strip() == "OOM at bs 128"
    code, out, err = run(
        capsys, "study", "note", "mnist-mlp", "--trial", "2", "--clear", "--storage", study
    )
    assert code == 0 and out == ""
    code, _, err = run(capsys, "study", "tag", "mnist-mlp", "owner", "--storage", study)
    assert code == 2 and "not KEY=VALUE" in err


def test_enqueue_from_a_file(
    study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sets = tmp_path / "known.yaml"
    sets.write_text(
        "- {learning_rate: 1e-3, n_hidden: 3, n_neurons: 100, optimizer: adam}\n"
        "- {learning_rate: 0.05, n_hidden: 0, n_neurons: 10, optimizer: sgd, momentum: 0.5}\n"
    )
    code, out, _ = run(capsys, "study", "enqueue", "mnist-mlp", str(sets), "--storage", study)
    assert code == 0 and "queued 2 parameter sets" in out and "as trials 4, 5" in out
    with Store(study) as store:
        waiting = store.list_trials("mnist-mlp", states=[TrialState.WAITING])
        assert [t.params["n_neurons"] for t in waiting] == [100, 10]
        assert waiting[0].params["learning_rate"] == pytest.approx(1e-3)
        # The chief claims WAITING trials before it creates suggested ones.
        claimed = store.claim_trial("mnist-mlp", "w5")
        assert claimed is not None and claimed.number == 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"learning_rate": 5.0, "n_hidden": 1, "n_neurons": 10}]))
    code, _, err = run(capsys, "study", "enqueue", "mnist-mlp", str(bad), "--storage", study)
    assert code == 2 and "parameter set 1" in err and "learning_rate" in err


def test_a_warm_started_study_says_what_it_starts_from(
    study: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warm = tmp_path / "warm.yaml"
    warm.write_text(
        "name: mnist-warm\nmetric: {name: val_accuracy, goal: maximize}\n"
        "parameters:\n  learning_rate: {type: double, min: 0.005, max: 0.1, scale: log}\n"
        "  optimizer: {type: categorical, values: [adam, sgd]}\n"
        "warm_start: {study: mnist-mlp}\n"
    )
    code, out, _ = run(capsys, "study", "create", str(warm), "--storage", study)
    assert code == 0
    code, out, _ = run(capsys, "study", "show", "mnist-warm", "--storage", study)
    # Of the two completed trials only the one with learning_rate 0.01 fits [0.005, 0.1].
    assert "# warm start: 1 completed trials of study 'mnist-mlp'" in out
    assert "(1 outside this space)" in out
    assert run(capsys, "study", "show", "mnist-warm", "--format", "json", "--storage", study)
    with Store(study) as store:
        assert store.get_study("mnist-warm").state is StudyState.ACTIVE
