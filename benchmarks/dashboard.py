"""Dashboard speed at 10,000 trials: study page and first trial-table page.

Bulk-inserts one study of N trials (mixed states, 4 parameters, a measurement curve for
the most recent trials) straight through the store's models, serves the dashboard on a
free port and times, over HTTP, every request the study page makes when it opens, then
the table operations a user clicks (sort by a parameter, filter by state and range, a
page deep in the table).  Optionally also times a real headless Chromium opening the
page until the history plot and the table are drawn.

    python benchmarks/dashboard.py                                  # SQLite in a temp dir
    python benchmarks/dashboard.py --storage postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/dashboard.py --browser --output benchmarks/results/dashboard.md

The PostgreSQL run creates its study under a unique name and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from hpsearch.dashboard import serve_dashboard
from hpsearch.dashboard.server import store_engine
from hpsearch.space import loads_study
from hpsearch.store import Store
from hpsearch.store.engine import safe_url
from hpsearch.store.models import AttemptRow, MeasurementRow, StudyRow, TrialRow

STUDY = """
name: {name}
metric: {{name: val_accuracy, goal: maximize}}
parameters:
  learning_rate: {{type: double, min: 0.0001, max: 0.1, scale: log}}
  n_neurons: {{type: integer, min: 1, max: 300, scale: log}}
  optimizer: {{type: categorical, values: [sgd, adam]}}
  batch_size: {{type: discrete, values: [32, 64, 128]}}
budget: {{max_trials: {trials}, parallel_trials: 16}}
"""

#: What the study page requests when it opens (it fires the last four together).
#: The first two are the study page with its first table page (cards and table paint on
#: them); the plots' data follows (the browser asks for the three together).
PAGE_REQUESTS = (
    "/api/studies/{name}",
    "/api/studies/{name}/trials?offset=0&limit=50&sort=number&order=desc",
    "/api/studies/{name}/history",
    "/api/studies/{name}/intermediate",
    "/api/studies/{name}/parameters",
    "/api/studies/{name}/revision",
)
FIRST_PAINT = 2  # requests of PAGE_REQUESTS before the cards and the table are drawn
PLOT_DATA = 5  # requests of PAGE_REQUESTS up to all plot data
TABLE_REQUESTS = (
    ("first table page", "/api/studies/{name}/trials?offset=0&limit=50&sort=number&order=desc"),
    ("sort by value", "/api/studies/{name}/trials?offset=0&limit=50&sort=value&order=desc"),
    (
        "sort by a parameter",
        "/api/studies/{name}/trials?offset=0&limit=50&sort=param:learning_rate&order=asc",
    ),
    (
        "filter state + range",
        "/api/studies/{name}/trials?state=COMPLETED&min.learning_rate=0.001"
        "&max.learning_rate=0.01&limit=50",
    ),
    ("page 150 (offset 7450)", "/api/studies/{name}/trials?offset=7450&limit=50"),
    ("studies list", "/api/studies"),
    ("trial page", "/api/studies/{name}/trials/9999"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", default=None, help="database URL (default: SQLite temp)")
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    parser.add_argument("--output", default=None, help="append a Markdown section here")
    args = parser.parse_args(argv)

    url = args.storage or f"sqlite:///{tempfile.mkdtemp(prefix='hps-dash-')}/bench.db"
    name = f"bench-{uuid.uuid4().hex[:8]}"
    store = Store(url)
    try:
        started = time.perf_counter()
        bulk_insert_study(store, name, args.trials)
        insert_s = time.perf_counter() - started
        server = serve_dashboard(store, "127.0.0.1", 0)
        try:
            results = measure(server.url, name, args.repeats)
            browser_s = time_browser(server.url, name, args.trials) if args.browser else None
        finally:
            server.stop()
    finally:
        if args.storage:
            store.delete_study(name)
        store.close()
    report = render(url, args.trials, insert_s, results, browser_s)
    print(report)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(report + "\n")
    return 0


def bulk_insert_study(store: Store, name: str, trials: int) -> None:
    """One study of ``trials`` trials in ~2 transactions (executemany through the models)."""
    store.create_study(loads_study(STUDY.format(name=name, trials=trials)))
    engine = store_engine(store)
    rng = random.Random(0)
    now = time.time()
    with engine.begin() as conn:
        study_id = conn.execute(select(StudyRow.id).where(StudyRow.name == name)).scalar_one()
        rows: list[dict[str, Any]] = []
        for n in range(trials):
            params: dict[str, Any] = {
                "learning_rate": 10 ** rng.uniform(-4, -1),
                "n_neurons": int(10 ** rng.uniform(0, 2.47)),
                "optimizer": rng.choice(["sgd", "adam"]),
                "batch_size": rng.choice([32, 64, 128]),
            }
            roll = rng.random()
            if n >= trials - 16:
                state = "RUNNING"
            else:
                state = "FAILED" if roll < 0.05 else "STOPPED" if roll < 0.2 else "COMPLETED"
            value = 0.95 - abs(params["learning_rate"] - 0.01) * 4 + rng.gauss(0, 0.01)
            start = now - (trials - n) * 30
            finished = state != "RUNNING"
            rows.append(
                {
                    "study_id": study_id,
                    "number": n,
                    "state": state,
                    "params": params,
                    "attempt": 1,
                    "worker_id": f"worker-{n % 16}",
                    "lease_expires_at": None if finished else now + 600,
                    "value": value if state in ("COMPLETED", "STOPPED") else None,
                    "metrics": {"val_accuracy": value} if state == "COMPLETED" else {},
                    "failure_message": "ResourceExhaustedError: OOM"
                    if state == "FAILED"
                    else None,
                    "tags": {"AIP_MODEL_DIR": f"/runs/{name}/{n}/model/"},
                    "created_at": start,
                    "started_at": start,
                    "updated_at": start + 25,
                    "completed_at": start + 25 if finished else None,
                }
            )
        conn.execute(insert(TrialRow), rows)
        conn.execute(update(StudyRow).where(StudyRow.id == study_id).values(trial_count=trials))
        ids = dict(
            conn.execute(
                select(TrialRow.number, TrialRow.id).where(TrialRow.study_id == study_id)
            ).all()
        )
        conn.execute(
            insert(AttemptRow),
            [
                {
                    "trial_id": ids[r["number"]],
                    "attempt": 1,
                    "worker_id": r["worker_id"],
                    "state": r["state"],
                    "started_at": r["started_at"],
                    "ended_at": r["completed_at"],
                    "failure_message": r["failure_message"],
                }
                for r in rows
            ],
        )
        # Curves for the 200 most recent trials, 20 steps each (the page shows 100).
        conn.execute(
            insert(MeasurementRow),
            [
                {
                    "trial_id": ids[n],
                    "attempt": 1,
                    "step": step,
                    "metrics": {"val_accuracy": 0.9 * (1 - 0.8 ** (step + 1))},
                    "created_at": now,
                }
                for n in range(max(0, trials - 200), trials)
                for step in range(20)
            ],
        )


def measure(base: str, name: str, repeats: int) -> dict[str, Any]:
    """Cold (first) and warm (median of ``repeats``) times per request, in milliseconds."""
    base = base.rstrip("/")
    out: dict[str, Any] = {"page": [], "table": []}
    for path in PAGE_REQUESTS:
        ms, size = _get(base + path.format(name=name))
        warm = statistics.median(_get(base + path.format(name=name))[0] for _ in range(repeats))
        out["page"].append((path.format(name="{name}"), ms, warm, size))
    page = out["page"]
    out["first_paint"] = (
        sum(c for _, c, _, _ in page[:FIRST_PAINT]),
        sum(w for _, _, w, _ in page[:FIRST_PAINT]),
    )
    out["all_data"] = (
        sum(c for _, c, _, _ in page[:PLOT_DATA]),
        sum(w for _, _, w, _ in page[:PLOT_DATA]),
    )
    for label, path in TABLE_REQUESTS:
        ms, size = _get(base + path.format(name=name))
        warm = statistics.median(_get(base + path.format(name=name))[0] for _ in range(repeats))
        out["table"].append((label, ms, warm, size))
    return out


def time_browser(base: str, name: str, trials: int) -> dict[str, float] | None:
    """Milliseconds from opening the study page until the trial table, then each plot,
    is drawn (``window.hpsearchTimings`` of the page: ``<plot>@`` is when it was drawn,
    ``<plot>`` how long drawing it took)."""
    import shutil

    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tempfile.mkdtemp(prefix='hps-chromium-')}",
        "--window-size=1400,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        driver.set_script_timeout(120)
        driver.get(base + "#/workers")  # load plotly.min.js once: the time is for the study
        time.sleep(1.0)
        driver.get(base + "#/study/" + name)  # a hash change: the same document, re-routed
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            timings = driver.execute_script("return window.hpsearchTimings")
            if timings and "trials-table@" in timings and "history-plot@" in timings:
                return {k: float(v) for k, v in timings.items()}
            time.sleep(0.05)
        return None
    finally:
        driver.quit()


def render(
    url: str, trials: int, insert_s: float, r: dict[str, Any], browser_s: dict[str, float] | None
) -> str:
    backend = "PostgreSQL" if url.startswith("postgres") else "SQLite"
    lines = [
        f"## {backend}, {trials:,} trials ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Storage `{safe_url(url)}`; bulk insert of {trials:,} trials + attempts + 4,000 "
        f"measurements: {insert_s:.2f} s.  Machine: {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} (1 min) while measuring.",
        "",
        "Study page: every request it makes on open, one after another (the browser sends "
        "the three plot requests together). *first* is the first request after the bulk "
        "insert (nothing cached); *warm* the median of the repeats (history and parameters "
        "then come from the per-revision cache; the page's 1 s poll costs one revision "
        "request):",
        "",
        "| request | first (ms) | warm median (ms) | bytes |",
        "|---|---:|---:|---:|",
    ]
    for path, cold, warm, size in r["page"]:
        lines.append(f"| `{path}` | {cold:.1f} | {warm:.1f} | {size:,} |")
    cold, warm = r["first_paint"]
    lines.append(
        f"| **study page + first table page** (first two) | **{cold:.1f}** | **{warm:.1f}** | |"
    )
    cold, warm = r["all_data"]
    lines.append(f"| **with all plot data** (first five) | **{cold:.1f}** | **{warm:.1f}** | |")
    lines += [
        "",
        "Trial table and other pages:",
        "",
        "| request | first (ms) | warm (ms) | bytes |",
        "|---|---:|---:|---:|",
    ]
    for label, cold, warm, size in r["table"]:
        lines.append(f"| {label} | {cold:.1f} | {warm:.1f} | {size:,} |")
    if browser_s is not None:
        lines += [
            "",
            "Headless Chromium (software rendering, no GPU), 1400x900 window, from opening "
            "the study page (plotly.min.js already cached):",
            "",
            "| drawn | at (ms) | drawing took (ms) |",
            "|---|---:|---:|",
        ]
        for key in sorted(k for k in browser_s if k.endswith("@")):
            plot_id = key[:-1]
            took = browser_s.get(plot_id)
            lines.append(
                f"| {plot_id} | {browser_s[key]:.0f} | {'' if took is None else f'{took:.0f}'} |"
            )
        lines.append(
            "\nPlots more than 200 px below the window are drawn when scrolled into view; "
            "those are absent here."
        )
    return "\n".join(lines) + "\n"


def _get(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as res:
        body = res.read()
    ms = (time.perf_counter() - started) * 1000
    json.loads(body)  # a real client parses it; not timed
    return ms, len(body)


if __name__ == "__main__":
    sys.exit(main())
