"""Multi-fidelity studies through the chief (hpsearch.v1): the budget in each answer, the
schedule kept across a restart of the chief, new configurations from the model once a
budget has enough results, and the budget shown by `hpsearch trials` and the dashboard."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.dashboard import serve_dashboard
from hpsearch.errors import InvalidArgumentError
from hpsearch.records import Trial

STUDY = """\
name: {name}
metric: {{name: score, goal: maximize}}
parameters:
  x: {{type: double, min: 0.0, max: 1.0}}
  y: {{type: double, min: 0.0, max: 1.0}}
budget: {{max_trials: 500, parallel_trials: 3}}
algorithm: {algorithm}
fidelity: {{max_epochs: 9, factor: 3}}
seed: 1
"""


def _score(params: dict[str, float], epochs: int) -> float:
    """A learning curve: closer to (0.3, 0.7) is better, more epochs better still."""
    distance = (params["x"] - 0.3) ** 2 + (params["y"] - 0.7) ** 2
    return -distance - 1.0 / epochs


def _run(
    client: Client, study: str, limit: int | None = None
) -> list[tuple[int, int, int | None]]:
    """Ask and tell (three in flight) until the study is done or ``limit`` trials ended;
    returns (epochs, initial_epoch, parent) per trial in creation order."""
    ended = 0
    held: list[Trial] = []
    while limit is None or ended < limit:
        while len(held) < 3:
            try:  # Hyperband may have nothing to hand out until a running trial ends
                got = client.ask(study, f"w{len(held)}-{ended}", timeout=1.0 if held else 30)
            except TimeoutError:
                break
            if not got:
                break  # the study is done
            held.extend(got)
        if not held:
            break
        trial = held.pop(0)
        rung = trial.fidelity
        assert rung is not None
        client.tell(study, trial.number, trial.attempt, value=_score(trial.params, rung.epochs))
        ended += 1
    return [
        (t.fidelity.epochs, t.fidelity.initial_epoch, t.fidelity.parent)
        for t in client.list_trials(study)
        if t.fidelity is not None
    ]


def test_a_hyperband_study_runs_to_its_end_and_survives_a_restart(chief_storage: str) -> None:
    with (
        Chief(chief_storage, host="127.0.0.1", port=0, hold_seconds=0.5) as chief,
        Client(chief.address, wait_seconds=0.5) as client,
    ):
        client.create_study(STUDY.format(name="hb", algorithm="hyperband"))
        first = _run(client, "hb", limit=20)
        in_flight = [t for t in client.list_trials("hb") if t.state.value == "RUNNING"]
    assert len(first) >= 20 and in_flight  # cut off mid-study, trials still held
    with (
        Chief(chief_storage, host="127.0.0.1", port=0, hold_seconds=0.5) as chief,
        Client(chief.address, wait_seconds=0.5) as client,
    ):
        for trial in in_flight:  # the workers of before come back with their results
            rung = trial.fidelity
            assert rung is not None
            client.tell("hb", trial.number, trial.attempt, value=_score(trial.params, rung.epochs))
        slots = _run(client, "hb")
        trials = client.list_trials("hb")
        assert client.get_study("hb").state.value == "COMPLETED"
    assert slots[: len(first)] == first
    assert [t.state.value for t in trials] == ["COMPLETED"] * len(trials)
    # Keras Tuner's brackets for max_epochs 9, factor 3, whatever the results: 9 trials of
    # 1 epoch, 3 of them promoted to 3, 1 of those to 9; 5 of 3 epochs, 2 promoted to 9;
    # 3 of 9 epochs.  Nothing lost or run twice across the restart.
    assert Counter((e, i) for e, i, _ in slots) == {
        (1, 0): 9, (3, 1): 3, (9, 3): 3, (3, 0): 5, (9, 0): 3,
    }  # fmt: skip
    by_number = {t.number: t for t in trials}
    parents = [p for _, _, p in slots if p is not None]
    assert len(parents) == len(set(parents)) == 6  # each promotion from its own parent
    for number, (_, initial, parent) in enumerate(slots):
        if parent is not None:
            assert by_number[number].params == by_number[parent].params
            parent_rung = by_number[parent].fidelity
            assert parent_rung is not None and parent_rung.epochs == initial


def test_new_configurations_come_from_the_model_once_a_budget_has_results(
    chief_storage: str,
) -> None:
    """ASHA keeps proposing: with enough results at a budget the GP steers new
    configurations towards the optimum, where random draws would not concentrate."""
    with (
        Chief(chief_storage, host="127.0.0.1", port=0, hold_seconds=0.5) as chief,
        Client(chief.address, wait_seconds=0.5) as client,
    ):
        client.create_study(STUDY.format(name="asha", algorithm="asha"))
        _run(client, "asha", limit=60)
        trials = client.list_trials("asha")
    new = [t for t in trials if t.fidelity is not None and t.fidelity.parent is None]
    promoted = [t for t in trials if t.fidelity is not None and t.fidelity.parent is not None]
    assert promoted and all(t.fidelity and t.fidelity.initial_epoch > 0 for t in promoted)
    late = new[-20:]
    near = [(t.params["x"] - 0.3) ** 2 + (t.params["y"] - 0.7) ** 2 < 0.05 for t in late]
    # Uniform draws land that close 16% of the time (8 or more of 20: about 1%); the
    # model's proposals did 55-65% in six runs (the GP still explores).
    assert sum(near) >= 8, near


def test_hpsearch_trials_and_the_dashboard_show_each_budget(chief_storage: str) -> None:
    with (
        Chief(chief_storage, host="127.0.0.1", port=0, hold_seconds=0.5) as chief,
        Client(chief.address, wait_seconds=0.5) as client,
    ):
        client.create_study(STUDY.format(name="shown", algorithm="hyperband"))
        slots = _run(client, "shown", limit=12)
    promoted = [n for n, (_, _, parent) in enumerate(slots) if parent is not None]
    assert promoted
    listed = subprocess.run(
        [sys.executable, "-m", "hpsearch", "trials", "shown", "--storage", chief_storage,
         "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = {row["number"]: row for row in json.loads(listed.stdout)}
    for number, (epochs, initial, parent) in enumerate(slots):
        row = rows[number]
        assert (row["epochs"], row["from_epoch"], row["promoted_from"]) == (
            epochs,
            initial,
            parent,
        )
        assert row["rung"] is not None and row["bracket"] is not None
    server = serve_dashboard(chief_storage, "127.0.0.1", 0)
    try:
        url = f"{server.url.rstrip('/')}/api/studies/shown/trials?limit=100&sort=number&order=asc"
        with urllib.request.urlopen(url, timeout=30) as response:
            table = json.loads(response.read())
    finally:
        server.stop()
    shown = {t["number"]: t["fidelity"] for t in table["trials"]}
    for number, (epochs, initial, parent) in enumerate(slots):
        assert (shown[number]["epochs"], shown[number]["initial_epoch"]) == (epochs, initial)
        assert shown[number]["parent"] == parent


def test_a_study_file_with_fidelity_needs_a_multi_fidelity_algorithm(tmp_path: Path) -> None:
    bad = STUDY.format(name="bad", algorithm="bayesian")
    with (
        Chief(f"sqlite:///{tmp_path / 'x.db'}", host="127.0.0.1", port=0) as chief,
        Client(chief.address) as client,
    ):
        with pytest.raises(InvalidArgumentError, match="fidelity is for algorithm hyperband"):
            client.create_study(bad)
        assert client.list_studies() == []
