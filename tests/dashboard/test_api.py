"""The dashboard's JSON API over HTTP, on SQLite and PostgreSQL (``store`` fixture)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request

import pytest

from hpsearch.dashboard import serve_dashboard
from hpsearch.records import TrialState
from hpsearch.store import Store

from .conftest import ApiClient
from .study_data import PLAN, make_mixed_study


def test_studies_lists_counts_best_workers_and_activity(store: Store, api: ApiClient) -> None:
    mixed = make_mixed_study(store, "mx", goal="maximize")
    low = make_mixed_study(store, "mn", goal="minimize")
    body = api.get("/api/studies")
    by_name = {s["name"]: s for s in body["studies"]}
    assert sorted(by_name) == ["mn", "mx"]
    mx = by_name["mx"]
    assert mx["state"] == "ACTIVE"
    assert (mx["metric"], mx["goal"]) == ("val_accuracy", "maximize")
    assert mx["trials"] == {s.value: PLAN.count(s) for s in TrialState}
    assert mx["total_trials"] == len(PLAN)
    completed = [mixed.values[n] for n in mixed.numbers(TrialState.COMPLETED)]
    assert mx["best_value"] == pytest.approx(max(completed))
    assert by_name["mn"]["best_value"] == pytest.approx(
        min(low.values[n] for n in low.numbers(TrialState.COMPLETED))
    )
    assert mx["workers_alive"] == 2  # the two RUNNING trials hold live leases
    assert mx["last_activity"] <= body["now"] + 1
    assert mx["last_activity"] >= mx["created_at"]


def test_study_detail_and_history(store: Store, api: ApiClient) -> None:
    mixed = make_mixed_study(store, "hist")
    detail = api.get("/api/studies/hist")
    assert detail["total_trials"] == len(PLAN)
    assert detail["config"]["parameters"]["learning_rate"]["scale"] == "log"
    completed = mixed.numbers(TrialState.COMPLETED)
    best_number = max(completed, key=lambda n: mixed.values[n])
    assert detail["best"]["number"] == best_number
    assert detail["workers_alive"] == 2

    history = api.get("/api/studies/hist/history")
    assert history["completed"]["number"] == completed
    assert history["completed"]["value"] == pytest.approx([mixed.values[n] for n in completed])
    best = history["completed"]["best"]
    assert best == pytest.approx(
        [max(mixed.values[m] for m in completed[: i + 1]) for i in range(len(completed))]
    )
    assert history["stopped"]["number"] == mixed.numbers(TrialState.STOPPED)


def test_trial_table_pages_sorts_and_filters(store: Store, api: ApiClient) -> None:
    mixed = make_mixed_study(store, "tbl")
    page = api.get("/api/studies/tbl/trials?limit=5&offset=0")
    assert page["total"] == len(PLAN)
    assert [t["number"] for t in page["trials"]] == [12, 11, 10, 9, 8]  # newest first
    page2 = api.get("/api/studies/tbl/trials?limit=5&offset=10")
    assert [t["number"] for t in page2["trials"]] == [2, 1, 0]

    by_value = api.get("/api/studies/tbl/trials?sort=value&order=asc&limit=100")["trials"]
    valued = [t for t in by_value if t["value"] is not None]
    assert [t["value"] for t in valued] == sorted(t["value"] for t in valued)
    assert all(t["value"] is None for t in by_value[len(valued) :])  # NULLs last
    desc = api.get("/api/studies/tbl/trials?sort=value&order=desc&limit=100")["trials"]
    assert desc[0]["value"] == max(mixed.values.values())
    assert desc[-1]["value"] is None

    lr = api.get("/api/studies/tbl/trials?sort=param:learning_rate&order=asc&limit=100")
    rates = [t["params"]["learning_rate"] for t in lr["trials"]]
    assert rates == sorted(rates)

    failed = api.get("/api/studies/tbl/trials?state=FAILED")
    assert failed["total"] == 2
    assert {t["number"] for t in failed["trials"]} == set(mixed.numbers(TrialState.FAILED))
    assert all(t["failure_message"] == "ValueError: loss is NaN" for t in failed["trials"])
    two = api.get("/api/studies/tbl/trials?state=completed,stopped&state=RUNNING")
    assert two["total"] == 6 + 2 + 2

    ranged = api.get("/api/studies/tbl/trials?min.learning_rate=0.001&max.learning_rate=0.05")
    expected = {n for n, p in mixed.params.items() if 0.001 <= float(p["learning_rate"]) <= 0.05}
    assert 0 < len(expected) < len(PLAN)
    assert {t["number"] for t in ranged["trials"]} == expected
    assert ranged["total"] == len(expected)
    units = api.get("/api/studies/tbl/trials?min.units=100&state=COMPLETED")
    assert {t["number"] for t in units["trials"]} == {
        n for n in mixed.numbers(TrialState.COMPLETED) if int(mixed.params[n]["units"]) >= 100
    }
    adam = api.get("/api/studies/tbl/trials?eq.optimizer=adam&limit=100")
    assert {t["number"] for t in adam["trials"]} == {
        n for n, p in mixed.params.items() if p["optimizer"] == "adam"
    }


def test_bad_requests_say_what_to_do(store: Store, api: ApiClient) -> None:
    make_mixed_study(store, "bad")
    status, body = api.request("/api/studies/nope")
    assert status == 404 and "no study named 'nope'" in body["error"]
    status, body = api.request("/api/studies/bad/trials?state=DONE")
    assert status == 400 and "COMPLETED" in body["error"]
    status, body = api.request("/api/studies/bad/trials?limit=100000")
    assert status == 400 and "limit" in body["error"]
    status, body = api.request("/api/studies/bad/trials?sort=colour")
    assert status == 400 and "param:<name>" in body["error"]
    status, body = api.request("/api/studies/bad/trials?min.optimizer=1")
    assert status == 400 and "eq.optimizer" in body["error"]
    status, body = api.request("/api/studies/bad/trials/99")
    assert status == 404 and "no trial 99" in body["error"]
    status, body = api.request("/api/studies/bad/trials", method="POST")
    assert status == 405 and "read-only" in body["error"]
    status, body = api.request("/api/studies/bad", method="HEAD")
    assert status == 200 and body is None


def test_trial_detail_has_attempts_lease_measurements_and_artifacts(
    store: Store, api: ApiClient
) -> None:
    make_mixed_study(store, "one")
    retried = api.get("/api/studies/one/trials/6")
    assert retried["state"] == "FAILED"
    attempts = retried["attempts"]
    assert [(a["attempt"], a["worker_id"], a["state"]) for a in attempts] == [
        (1, "worker-0", "FAILED"),
        (2, "worker-b", "FAILED"),
    ]
    assert attempts[0]["failure_message"] == "worker lost GPU"
    assert attempts[1]["failure_message"] == "ValueError: loss is NaN"
    assert all(a["duration"] is not None and a["duration"] >= 0 for a in attempts)
    assert {(m["attempt"], m["step"]) for m in retried["measurements"]} == {
        (1, s) for s in range(4)
    }

    running = api.get("/api/studies/one/trials/10")
    assert running["state"] == "RUNNING"
    assert running["lease"]["worker_id"] == "worker-1"
    assert 0 < running["lease"]["seconds_left"] <= 600
    kinds = {a["kind"]: a["path"] for a in running["artifacts"]}
    assert kinds == {
        "model": "/runs/one/10/model/",
        "checkpoints": "/runs/one/10/checkpoints/",
        "logs": "/runs/one/10/logs/",
    }

    done = api.get("/api/studies/one/trials/0")
    assert done["state"] == "COMPLETED"
    assert set(done["metrics"]) >= {"loss"}
    assert done["duration"] is not None and done["lease"] is None


def test_intermediate_curves_mark_stopped_trials(store: Store, api: ApiClient) -> None:
    mixed = make_mixed_study(store, "curves")
    body = api.get("/api/studies/curves/intermediate")
    assert body["metric"] == "val_accuracy"
    numbers = [c["number"] for c in body["trials"]]
    assert numbers == [n for n in range(len(PLAN)) if PLAN[n] != TrialState.WAITING]
    stopped = [c for c in body["trials"] if c["state"] == "STOPPED"]
    assert [c["number"] for c in stopped] == mixed.numbers(TrialState.STOPPED)
    assert all(c["step"] == [0, 1, 2, 3] for c in body["trials"])
    latest = api.get("/api/studies/curves/intermediate?limit=3")
    assert [c["number"] for c in latest["trials"]] == numbers[-3:]


def test_parameters_rank_the_parameter_that_drives_the_objective(
    store: Store, api: ApiClient
) -> None:
    mixed = make_mixed_study(store, "imp")
    few = api.get("/api/studies/imp/parameters")["parameters"]
    assert [p["importance"] for p in few] == [None, None, None]  # 6 completed: too few
    # More completed trials so that importance has something to go on.
    for i in range(30):
        lr = 10 ** (-4 + 3 * i / 29)
        trial = store.create_trial(
            "imp",
            {
                "learning_rate": lr,
                "units": 7 + (i * 37) % 290,
                "optimizer": ("sgd", "adam")[i % 2],
            },
            worker_id="w",
        )
        store.complete_trial("imp", trial.number, trial.attempt, -abs(lr - 0.01) * 10)
    body = api.get("/api/studies/imp/parameters")
    names = [p["name"] for p in body["parameters"]]
    assert names == ["learning_rate", "units", "optimizer"]
    importance = {p["name"]: p["importance"] for p in body["parameters"]}
    assert max(importance, key=lambda k: importance[k]) == "learning_rate"
    assert sum(importance.values()) == pytest.approx(1.0)
    completed = len(mixed.numbers(TrialState.COMPLETED)) + 30
    assert len(body["trials"]["number"]) == completed
    assert len(body["trials"]["params"]["optimizer"]) == completed


def test_workers_show_current_trial_and_heartbeat(store: Store, api: ApiClient) -> None:
    make_mixed_study(store, "wk")
    body = api.get("/api/workers")
    by_id = {w["id"]: w for w in body["workers"]}
    assert by_id["worker-0"]["host"] == "gpu-0"
    assert by_id["worker-0"]["alive"] is True
    assert by_id["worker-0"]["current_trial"] is None
    assert 0 <= by_id["worker-0"]["seconds_since_seen"] < 60
    assert by_id["worker-1"]["current_trial"]["number"] == 10
    assert by_id["worker-1"]["current_trial"]["study"] == "wk"
    assert by_id["worker-2"]["current_trial"]["number"] == 11


def test_revision_moves_on_new_trials_and_measurements(store: Store, api: ApiClient) -> None:
    make_mixed_study(store, "rev")
    first = api.get("/api/studies/rev/revision")["revision"]
    assert api.get("/api/studies/rev/revision")["revision"] == first
    trial = store.create_trial(
        "rev", {"learning_rate": 0.01, "units": 3, "optimizer": "sgd"}, worker_id="w9"
    )
    second = api.get("/api/studies/rev/revision")["revision"]
    assert second != first
    store.add_measurement("rev", trial.number, trial.attempt, 0, {"val_accuracy": 0.5})
    assert api.get("/api/studies/rev/revision")["revision"] != second


def test_page_and_vendored_plotly_are_served(store: Store, dashboard: object) -> None:
    url = dashboard.url  # type: ignore[attr-defined]
    with urllib.request.urlopen(url) as res:
        assert "hpsearch dashboard" in res.read().decode()
    req = urllib.request.Request(
        url + "static/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"}
    )
    with urllib.request.urlopen(req) as res:
        assert res.headers["Content-Encoding"] == "gzip"
        assert int(res.headers["Content-Length"]) > 100_000


def test_serve_dashboard_from_a_url(storage_url: str) -> None:
    Store(storage_url).close()
    server = serve_dashboard(storage_url, "127.0.0.1", 0)
    try:
        assert ApiClient(server.url).get("/api/studies")["studies"] == []
    finally:
        server.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "api/health", timeout=2)


@pytest.mark.parametrize(
    ("request_first", "signum"),
    [(True, signal.SIGINT), (False, signal.SIGINT), (False, signal.SIGTERM)],
    ids=["after-a-request", "at-once", "sigterm-at-once"],
)
def test_cli_serves_until_interrupted(sqlite_url: str, request_first: bool, signum: int) -> None:
    """Ctrl-C (or SIGTERM, as a container stop sends) stops ``hpsearch dashboard`` with
    status 0 wherever it lands, at once as the server starts too.  cheroot's threads are not
    daemons: a KeyboardInterrupt raised between the server's start and its stop left the
    process hanging (seen twice under load, in both of these cases)."""
    store = Store(sqlite_url)
    make_mixed_study(store, "cli")
    store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpsearch", "dashboard", "--storage", sqlite_url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = ""
        for _ in range(50):
            line = proc.stderr.readline()
            if "http://" in line:
                break
        url = line[line.index("http://") :].split()[0]
        if request_first:
            studies = ApiClient(url).get("/api/studies")["studies"]
            assert [s["name"] for s in studies] == ["cli"]
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, hpsearch.cli.dashboard; "
        "print(sorted(m for m in ('sqlalchemy', 'numpy', 'plotly', 'hpsearch.store') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cached_plot_data_follows_new_results(store: Store, api: ApiClient) -> None:
    mixed = make_mixed_study(store, "cache")
    before = api.get("/api/studies/cache/history")
    params_before = api.get("/api/studies/cache/parameters")
    assert api.get("/api/studies/cache/history") == before  # served again, unchanged
    trial = store.create_trial(
        "cache", {"learning_rate": 0.01, "units": 5, "optimizer": "sgd"}, worker_id="w"
    )
    store.complete_trial("cache", trial.number, trial.attempt, 2.0)
    after = api.get("/api/studies/cache/history")
    assert after["completed"]["number"] == [*mixed.numbers(TrialState.COMPLETED), trial.number]
    assert after["completed"]["best"][-1] == 2.0
    params_after = api.get("/api/studies/cache/parameters")
    assert params_after["trials"]["number"][-1] == trial.number
    assert len(params_after["trials"]["value"]) == len(params_before["trials"]["value"]) + 1


def test_database_errors_answer_503_with_a_hint(sqlite_url: str) -> None:
    import sqlite3

    store = Store(sqlite_url)
    make_mixed_study(store, "gone")
    server = serve_dashboard(store, "127.0.0.1", 0)
    try:
        db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("DROP TABLE measurements")
        db.commit()
        db.close()
        status, body = ApiClient(server.url).request("/api/studies/gone/intermediate")
        assert status == 503
        assert "measurements" in body["error"] and "hpsearch db upgrade" in body["error"]
    finally:
        server.stop()
        store.close()


def test_a_taken_port_is_a_clear_error(sqlite_url: str) -> None:
    from hpsearch.errors import StorageError

    store = Store(sqlite_url)
    first = serve_dashboard(store, "127.0.0.1", 0)
    try:
        with pytest.raises(StorageError, match="pick another --port"):
            serve_dashboard(store, "127.0.0.1", first.port)
    finally:
        first.stop()
        store.close()
