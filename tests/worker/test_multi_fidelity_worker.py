"""A Hyperband study run by `hpsearch chief` + `hpsearch worker` + trials/mnist.py on digits.

Each trial gets its budget as ``--epochs``; a promoted trial starts from its parent's
checkpoint (the worker copies it into the trial's AIP_CHECKPOINT_DIR), so it resumes after
the parent's last epoch: its log says so and its measurements start there.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpsearch.chief import Chief
from hpsearch.records import TrialState
from hpsearch.store import Store

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.tf,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None,
        reason="TensorFlow is not installed (pip install -e '.[tf]')",
    ),
]


def test_promoted_trials_continue_from_their_parents_checkpoint(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'hb.db'}"
    study_file = tmp_path / "hb.yaml"
    study_file.write_text(
        textwrap.dedent("""\
        name: digits-hb
        metric: {name: val_accuracy, goal: maximize}
        parameters:
          learning_rate: {type: double, min: 1e-3, max: 1e-1, scale: log}
          n_neurons: {type: integer, min: 8, max: 32, scale: log}
        budget: {max_trials: 50, parallel_trials: 1}
        algorithm: hyperband
        fidelity: {max_epochs: 3, factor: 3}
        lease_seconds: 120
        seed: 3
        """)
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        env.pop(name, None)
    out = tmp_path / "out"
    with Chief(storage, study=str(study_file), host="127.0.0.1", port=0) as chief:
        worker = subprocess.run(
            [sys.executable, "-m", "hpsearch", "worker", "--oracle", chief.address,
             "--worker-id", "w0", "--gpus-per-trial", "0", "--output-dir", str(out), "--",
             sys.executable, str(REPO / "trials" / "mnist.py"), "--dataset", "digits",
             "--epochs", "1"],
            env=env, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    assert worker.returncode == 0, worker.stderr[-3000:]

    store = Store(storage)
    try:
        trials = store.list_trials("digits-hb")
        # max_epochs 3, factor 3: bracket 1 = 3 trials x 1 epoch, the best promoted to 3
        # epochs; bracket 0 = 2 trials x 3 epochs (Keras Tuner's schedule).
        budgets = [(t.fidelity.epochs, t.fidelity.initial_epoch) for t in trials if t.fidelity]
        assert budgets == [(1, 0), (1, 0), (1, 0), (3, 1), (3, 0), (3, 0)], budgets
        assert all(t.state is TrialState.COMPLETED for t in trials)
        promoted = trials[3]
        assert promoted.fidelity is not None and promoted.fidelity.parent in (0, 1, 2)
        assert promoted.params == trials[promoted.fidelity.parent].params
        steps = {
            t.number: [m.step for m in store.list_measurements("digits-hb", t.number)]
            for t in trials
        }
        assert steps[promoted.number] == [2, 3]  # it trained epochs 2 and 3 only
        assert all(steps[n] == [1] for n in (0, 1, 2)) and steps[4] == [1, 2, 3]
        log = (
            out / ".hpsearch" / "digits-hb" / "attempt-1" / f"trial-{promoted.number}"
            / "output.log"
        ).read_text()  # fmt: skip
        assert "resuming from checkpoint start_epoch=2" in log
        assert "continues parent trial" in worker.stderr
    finally:
        store.close()
