"""The dashboard in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``).

Install: ``apt-get install -y chromium chromium-driver``; the test skips, saying so, when
either is missing or selenium is not installed.  Screenshots are saved under
``$HPSEARCH_TEST_ARTIFACTS`` (default: the test's tmp_path).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hpsearch.dashboard import serve_dashboard
from hpsearch.records import TrialState
from hpsearch.store import Store

from .study_data import PLAN, make_mixed_study

CHROMIUM = next(
    (p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None
)
CHROMEDRIVER = shutil.which("chromedriver")

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:  # pragma: no cover - depends on the environment
    webdriver = None

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        webdriver is None, reason="selenium is not installed (pip install selenium)"
    ),
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Chromium not installed: apt-get install -y chromium chromium-driver",
    ),
]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,3200",
)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    path = Path(os.environ.get("HPSEARCH_TEST_ARTIFACTS") or tmp_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = condition()
        except Exception as exc:  # the element is not there yet
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")


HISTORY_POINTS = (
    "return document.querySelectorAll("
    "'#history-plot .scatterlayer .trace:nth-of-type(1) path.point').length"
)


def rows(driver: Any) -> list[int]:
    return [
        int(r.get_attribute("data-number"))
        for r in driver.find_elements(By.CSS_SELECTOR, "#trials-body tr[data-number]")
    ]


def test_study_page_history_filters_and_live_update(
    sqlite_url: str, browser: Any, artifacts: Path
) -> None:
    store = Store(sqlite_url)
    mixed = make_mixed_study(store, "browser-study")
    server = serve_dashboard(store, "127.0.0.1", 0)
    assert server.backend == "cheroot"  # the production server, as `hpsearch dashboard` runs it
    try:
        browser.get(server.url + "#/study/browser-study")
        completed = len(mixed.numbers(TrialState.COMPLETED))

        # The optimization history plots one point per COMPLETED trial.
        wait_for(
            lambda: browser.execute_script(HISTORY_POINTS) == completed,
            what=f"{completed} points in the history plot",
        )
        assert browser.find_element(By.ID, "count-STOPPED").text == "2"
        assert browser.find_element(By.ID, "count-RUNNING").text == "2"
        assert browser.find_element(By.ID, "count-FAILED").text == "2"
        wait_for(lambda: len(rows(browser)) == len(PLAN), what="the full trial table")
        # Intermediate curves: one per trial that reported, early-stopped ones marked.
        stopped_ends = wait_for(
            lambda: browser.execute_script(
                "const d = document.getElementById('intermediate-plot').data;"
                "return d && d.length ? d[d.length - 1] : null;"
            ),
            what="the intermediate plot",
        )
        assert stopped_ends["name"] == "stopped early"
        assert len(stopped_ends["x"]) == len(mixed.numbers(TrialState.STOPPED))
        browser.execute_script("window.__sameDocument = true")
        # Each parameter cell sits under its own header.
        cells = browser.execute_script(
            "const heads = [...document.querySelectorAll('#trials-table thead th')]"
            ".map((th) => th.textContent);"
            "const col = heads.indexOf('learning_rate');"
            "return [...document.querySelectorAll('#trials-body tr[data-number]')].map("
            "(tr) => [+tr.dataset.number, tr.children[col].textContent]);"
        )
        assert len(cells) == len(PLAN)
        for number, text in cells:
            expected_lr = float(mixed.params[number]["learning_rate"])
            assert float(text) == pytest.approx(expected_lr, rel=1e-3), (number, text)

        # Filter by state: only the FAILED trials remain.
        browser.find_element(By.CSS_SELECTOR, "input[data-state=FAILED]").click()
        wait_for(
            lambda: rows(browser) == sorted(mixed.numbers(TrialState.FAILED), reverse=True),
            what="only FAILED rows",
        )
        browser.find_element(By.CSS_SELECTOR, "input[data-state=FAILED]").click()
        wait_for(lambda: len(rows(browser)) == len(PLAN), what="the filter removed")

        # Filter by a parameter range.
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#filter-param option"))
        Select(browser.find_element(By.ID, "filter-param")).select_by_value("learning_rate")
        browser.find_element(By.ID, "filter-min").send_keys("0.001")
        browser.find_element(By.ID, "filter-max").send_keys("0.05")
        browser.find_element(By.ID, "filter-add").click()
        expected = sorted(
            (n for n, p in mixed.params.items() if 0.001 <= float(p["learning_rate"]) <= 0.05),
            reverse=True,
        )
        assert 0 < len(expected) < len(PLAN)
        wait_for(lambda: rows(browser) == expected, what=f"rows {expected}")
        assert browser.find_element(By.ID, "trials-range").text.endswith(f"of {len(expected)}")
        browser.find_element(By.CSS_SELECTOR, "#filter-chips button").click()
        wait_for(lambda: len(rows(browser)) == len(PLAN), what="the range filter removed")

        # A trial reported through the store appears without a reload.
        new = store.create_trial(
            "browser-study",
            {"learning_rate": 0.01, "units": 64, "optimizer": "adam"},
            worker_id="worker-new",
        )
        store.complete_trial("browser-study", new.number, new.attempt, 0.999)
        wait_for(lambda: rows(browser)[:1] == [new.number], timeout=10, what="the new trial row")
        wait_for(
            lambda: browser.execute_script(HISTORY_POINTS) == completed + 1,
            timeout=10,
            what="the new point in the history plot",
        )
        assert browser.execute_script("return window.__sameDocument === true")
        best = browser.find_element(By.ID, "study-best").text
        assert f"#{new.number}" in best

        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(artifacts / "dashboard-study.png"))

        # The trial page of the retried, failed trial lists both attempts.
        browser.get(server.url + "#/study/browser-study/trial/6")
        wait_for(
            lambda: len(browser.find_elements(By.CSS_SELECTOR, "#trial-attempts tbody tr")) == 2,
            what="two attempts",
        )
        text = browser.find_element(By.ID, "trial-attempts").text
        assert "worker-b" in text and "worker lost GPU" in text
        assert (
            "/runs/browser-study/6/model/" in browser.find_element(By.ID, "trial-artifacts").text
        )
        browser.save_screenshot(str(artifacts / "dashboard-trial.png"))

        # Workers: the live list with each worker's running trial.
        browser.get(server.url + "#/workers")
        worker = wait_for(
            lambda: browser.find_element(By.CSS_SELECTOR, "tr[data-worker=worker-1]"),
            what="worker-1 in the workers table",
        )
        assert "browser-study #10" in worker.text and "alive" in worker.text
    finally:
        server.stop()
        store.close()


MO_STUDY = """
name: {name}
metrics: {metrics}
constraints: ["memory_gb <= 8"]
parameters: {{x: {{type: double, min: 0, max: 1}}}}
"""


def _mo_study(store: Store, name: str, objectives: int) -> tuple[set[int], set[int]]:
    """A study with ``objectives`` metrics (minimised) whose front and infeasible trials
    are known by construction: trials on the plane sum(f) = 1 are mutually non-dominated;
    each is copied with +0.5 on every metric (dominated); one breaks the memory bound and
    one says it is infeasible.  Returns (front numbers, infeasible numbers)."""
    from hpsearch.space import loads_study

    metric_names = [f"f{i}" for i in range(objectives)]
    metrics = "[" + ", ".join(f"{{name: {m}, goal: minimize}}" for m in metric_names) + "]"
    store.create_study(loads_study(MO_STUDY.format(name=name, metrics=metrics)))
    front, infeasible = set(), set()

    def add(values: list[float], memory: float, reason: str | None = None) -> int:
        trial = store.create_trial(name, {"x": values[0]}, worker_id="w")
        metrics = dict(zip(metric_names, values, strict=True)) | {"memory_gb": memory}
        if reason is None and memory > 8:
            reason = f"memory_gb = {memory:g} breaks memory_gb <= 8"
        store.complete_trial(
            name, trial.number, trial.attempt, values[0], metrics, infeasible_reason=reason
        )
        return trial.number

    for i in range(6):
        share = i / 5
        rest = (1 - share) / (objectives - 1)
        point = [share] + [rest] * (objectives - 1)
        front.add(add(point, 4.0))
        add([v + 0.5 for v in point], 4.0)
    # Better than every front point on each metric, but infeasible: never on the front.
    infeasible.add(add([-1.0] * objectives, 12.0))
    infeasible.add(add([-1.0] * objectives, 2.0, "out of memory at batch 512"))
    return front, infeasible


FRONT_TRACE = (
    "const d = document.getElementById('front-plot').data;"
    "if (!d) return null;"
    "const out = {};"
    "for (const t of d) out[t.name] = {type: t.type, trials: t.customdata.map((c) => c[0])};"
    "return out;"
)


@pytest.mark.parametrize("objectives", [2, 3])
def test_study_page_draws_the_pareto_front_and_marks_infeasible_trials(
    sqlite_url: str, browser: Any, artifacts: Path, objectives: int
) -> None:
    store = Store(sqlite_url)
    name = f"front-{objectives}d"
    front, infeasible = _mo_study(store, name, objectives)
    server = serve_dashboard(store, "127.0.0.1", 0)
    try:
        browser.get(server.url + f"#/study/{name}")
        traces = wait_for(
            lambda: browser.execute_script(FRONT_TRACE), what="the Pareto front plot"
        )
        assert set(traces["Pareto front"]["trials"]) == front
        assert set(traces["infeasible"]["trials"]) == infeasible
        assert len(traces["dominated"]["trials"]) == len(front)
        expected_type = "scatter3d" if objectives == 3 else "scatter"
        assert {t["type"] for t in traces.values()} == {expected_type}
        note = browser.find_element(By.ID, "front-note").text
        assert f"{len(front)} trials on the front" in note and "2 infeasible" in note
        # The best-value card never shows an infeasible trial.
        best = browser.find_element(By.ID, "study-best").text
        assert not any(f"#{n})" in best for n in infeasible)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(artifacts / f"dashboard-front-{objectives}d.png"))
    finally:
        server.stop()
        store.close()
