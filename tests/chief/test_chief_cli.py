"""`hpsearch chief` as a process: the dashboard beside the oracle, and --exit-when-done."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

from hpsearch.client import Client

from .conftest import free_port, wait_serving


def test_chief_serves_the_dashboard_and_exits_when_its_study_is_done(tmp_path: Path) -> None:
    study = tmp_path / "tiny.yaml"
    study.write_text(
        textwrap.dedent("""\
        name: tiny
        metric: {name: score, goal: maximize}
        parameters:
          x: {type: double, min: 0, max: 1}
        budget: {max_trials: 2}
        algorithm: random
        """)
    )
    port, dashboard_port = free_port(), free_port()
    chief = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpsearch",
            "chief",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--study",
            str(study),
            "--dashboard-port",
            str(dashboard_port),
            "--exit-when-done",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_serving(f"127.0.0.1:{port}", 60, chief)
        # The dashboard starts just after the gRPC port serves: poll it, generously (a
        # request at once was refused under load).
        names = _studies_from_the_dashboard(f"http://127.0.0.1:{dashboard_port}", chief)
        assert names == ["tiny"]
        assert chief.poll() is None  # still serving: the study is not done
        with Client(f"127.0.0.1:{port}", wait_seconds=1.0) as client:
            for _ in range(2):
                (trial,) = client.ask("tiny", "w0")
                client.tell("tiny", trial.number, trial.attempt, value=0.5)
        assert chief.wait(30) == 0
    finally:
        if chief.poll() is None:
            chief.kill()
        output = chief.communicate()[0].decode()
    assert "chief exiting: study finished" in output


def _studies_from_the_dashboard(url: str, chief: subprocess.Popen[bytes]) -> list[str]:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/studies", timeout=10) as reply:
                return [s["name"] for s in json.load(reply)["studies"]]
        except OSError:
            if time.monotonic() > deadline or chief.poll() is not None:
                raise
            time.sleep(0.2)
