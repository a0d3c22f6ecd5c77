"""A trial run by ``hpsearch worker`` lists its directories on the dashboard's trial page."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from hpsearch.chief import Chief
from hpsearch.client import Client
from hpsearch.dashboard import serve_dashboard
from hpsearch.worker.loop import Worker, WorkerOptions

from .conftest import FAKE_TRIAL, make_study


def test_the_dashboard_lists_the_directories_of_a_worker_run_trial(
    chief: Chief, client: Client, tmp_path: Path
) -> None:
    study = make_study(client, "artifacts", max_trials=1)
    out = tmp_path / "out"
    options = WorkerOptions(
        oracle=chief.address,
        study=study,
        command=list(FAKE_TRIAL),
        worker_id="w0",
        output_dir=str(out),
        gpus=[],
        poll_seconds=0.1,
    )
    (outcome,) = Worker(options, client).run()
    assert chief.store is not None
    with serve_dashboard(chief.store, "127.0.0.1", 0) as dashboard:
        url = f"{dashboard.url}api/studies/{study}/trials/{outcome.number}"
        with urllib.request.urlopen(url, timeout=30) as res:
            page = json.loads(res.read())
    listed = {a["kind"]: (a["path"], a["tag"]) for a in page["artifacts"]}
    trial_dir = out.resolve() / study / str(outcome.number)
    assert listed["model"] == (f"{trial_dir}/model/", "model_dir")
    assert listed["checkpoints"] == (f"{trial_dir}/checkpoints/", "checkpoint_dir")
    assert listed["logs"] == (f"{trial_dir}/logs/", "log_dir")
    # They are the directories the trial was given: the fake trial wrote into them.
    assert (trial_dir / "model" / "runs.jsonl").is_file()
    assert json.loads((trial_dir / "checkpoints" / "step.json").read_text()) == {"step": 3}
    # And the worker's copy of the trial's output.
    log_path, tag = listed["output_log_path"]
    assert tag == "output_log_path" and Path(log_path).is_file()
    assert Path(log_path).name == "output.log"
