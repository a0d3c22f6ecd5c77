"""The `hpsearch` command through its public entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpsearch.cli import main
from hpsearch.records import TrialState
from hpsearch.store import Store

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mnist_mlp.yaml"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--log-level", "WARNING", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _fill(storage_url: str) -> None:
    """Three finished trials and one running, through the store's API."""
    store = Store(storage_url)
    try:
        params = [
            {"learning_rate": 0.01, "n_hidden": 2, "n_neurons": 64, "optimizer": "adam"},
            {
                "learning_rate": 0.001,
                "n_hidden": 1,
                "n_neurons": 8,
                "optimizer": "sgd",
                "momentum": 0.9,
            },
            {"learning_rate": 0.05, "n_hidden": 0, "n_neurons": 1, "optimizer": "adam"},
        ]
        for value, p in zip((0.91, 0.97, 0.5), params, strict=True):
            trial = store.create_trial("mnist-mlp", p, worker_id="w1")
            store.complete_trial("mnist-mlp", trial.number, trial.attempt, value)
        failed = store.create_trial("mnist-mlp", params[0], worker_id="w2")
        store.fail_trial("mnist-mlp", failed.number, failed.attempt, "CUDA out of memory")
        store.create_trial("mnist-mlp", params[1], worker_id="w3")
    finally:
        store.close()


def test_study_life_cycle(storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "study", "create", str(EXAMPLE), "--storage", storage_url)
    assert code == 0 and "created study 'mnist-mlp' (5 parameters, 100 trials" in out
    _fill(storage_url)

    code, out, _ = run(capsys, "study", "list", "--format", "json", "--storage", storage_url)
    (row,) = json.loads(out)
    assert row["name"] == "mnist-mlp" and row["trials"] == 5
    assert (row["completed"], row["running"], row["failed"]) == (3, 1, 1)
    assert row["best"] == pytest.approx(0.97)

    code, out, _ = run(capsys, "study", "show", "mnist-mlp", "--storage", storage_url)
    assert code == 0
    assert "learning_rate: {type: double, min: 0.0001, max: 0.1, scale: log}" in out
    assert "# best: trial 1 val_accuracy=0.97" in out

    code, out, _ = run(capsys, "trials", "mnist-mlp", "--format", "csv", "--storage", storage_url)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["state"] for r in rows] == ["COMPLETED"] * 3 + ["FAILED", "RUNNING"]
    assert rows[1]["momentum"] == "0.9" and rows[0]["momentum"] == ""
    assert rows[3]["failure"] == "CUDA out of memory"

    code, out, _ = run(
        capsys, "trials", "mnist-mlp", "--state", "RUNNING", "--storage", storage_url
    )
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[:3] == ["number", "state", "val_accuracy"]
    assert lines[1].split()[:2] == ["4", TrialState.RUNNING.value]

    code, out, _ = run(
        capsys, "best", "mnist-mlp", "-n", "2", "--format", "json", "--storage", storage_url
    )
    assert [t["number"] for t in json.loads(out)] == [1, 0]


def test_user_mistakes_are_one_line_with_what_to_do(
    storage_url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "study", "show", "nope", "--storage", storage_url)
    assert code == 2 and err.count("\n") == 1 and "nope" in err and "Traceback" not in err

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nmetric: acc\nparameters:\n  lr: {type: double, min: 0, max: 1, scale: log}\n"
    )
    code, _, err = run(capsys, "study", "create", str(bad), "--storage", storage_url)
    assert code == 2 and "log scale needs min > 0" in err and "scale: linear" in err
    code, out, _ = run(capsys, "study", "list", "--storage", storage_url)
    assert "no studies yet" in out  # nothing was stored

    run(capsys, "study", "create", str(EXAMPLE), "--storage", storage_url)
    code, _, err = run(capsys, "study", "create", str(EXAMPLE), "--storage", storage_url)
    assert code == 2 and "mnist-mlp" in err
    code, _, _ = run(
        capsys, "study", "create", str(EXAMPLE), "--exist-ok", "--storage", storage_url
    )
    assert code == 0


def test_db_upgrade_and_current(storage_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "db", "upgrade", "--storage", storage_url)
    assert code == 0 and "upgraded" in out and "from empty" in out
    code, out, _ = run(capsys, "db", "upgrade", "--storage", storage_url)
    assert code == 0 and "already at revision" in out
    code, out, _ = run(capsys, "db", "current", "--storage", storage_url)
    assert code == 0 and "up to date" in out


def test_unreachable_database_is_exit_3_without_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    code, _, err = run(capsys, "study", "list", "--storage", url)
    assert code == 3 and "Traceback" not in err and err.startswith("hpsearch: error:")


def test_console_script_and_storage_from_environment(tmp_path: Path) -> None:
    env = {"HPSEARCH_STORAGE": f"sqlite:///{tmp_path / 'env.db'}", "PATH": "/usr/bin:/bin"}
    created = subprocess.run(
        [sys.executable, "-m", "hpsearch", "study", "create", str(EXAMPLE)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "env.db").is_file()
    listed = subprocess.run(
        [sys.executable, "-m", "hpsearch", "study", "list", "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.stdout.splitlines()[1].startswith("mnist-mlp,ACTIVE,")


def test_the_chief_lease_default_is_the_chiefs() -> None:
    """The CLI repeats it so as not to load the chief to build its parser."""
    from hpsearch.chief import DEFAULT_CHIEF_LEASE_SECONDS
    from hpsearch.cli.chief import DEFAULT_CHIEF_LEASE_SECONDS as cli_default

    assert cli_default == DEFAULT_CHIEF_LEASE_SECONDS


def test_python_m_hpsearch_chief_takes_the_chief_commands_flags() -> None:
    def flags(*argv: str) -> set[str]:
        text = subprocess.run(
            [sys.executable, *argv, "--help"], capture_output=True, text=True, check=True
        ).stdout
        return {word.strip("[],") for word in text.split() if word.startswith(("--", "[--"))}

    standalone = flags("-m", "hpsearch.chief")
    assert standalone == flags("-m", "hpsearch", "chief") | {"--hold-seconds", "--log-level"}


def test_the_progress_line_off_a_terminal_prints_only_changes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from hpsearch.cli.output import ProgressLine

    line = ProgressLine()
    for status in ("0/4 trials finished", "0/4 trials finished", "1/4 trials finished"):
        line.show(status)
    line.close()
    out = capsys.readouterr().out.splitlines()
    assert [row.split("] ", 1)[1] for row in out] == ["0/4 trials finished", "1/4 trials finished"]
