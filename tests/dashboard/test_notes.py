"""Notes and user tags in the dashboard: its JSON API on both databases, and the study and
trial pages in a real Chromium (the fixtures of test_browser.py)."""

from __future__ import annotations

from typing import Any

import pytest

from hpsearch.dashboard import serve_dashboard
from hpsearch.store import Store

from .conftest import ApiClient
from .study_data import make_mixed_study
from .test_browser import CHROMEDRIVER, CHROMIUM, wait_for, webdriver
from .test_browser import browser as browser

NOTE = "Adam wins below lr 1e-2\nsee the slice plot"


def _annotate(store: Store, name: str) -> None:
    store.annotate(name, note=NOTE, tags={"owner": "ana", "team": "vision"})
    store.annotate(name, 0, note="<b>not bold</b>", tags={"rerun": "yes"})


def test_the_api_serves_notes_and_tags(store: Store, api: ApiClient) -> None:
    make_mixed_study(store, "notes")
    before = api.get("/api/studies/notes")
    assert before["note"] is None and before["tags"] == {}
    _annotate(store, "notes")
    detail = api.get("/api/studies/notes")
    assert detail["note"] == NOTE and detail["tags"] == {"owner": "ana", "team": "vision"}
    assert detail["revision"] != before["revision"]  # an open page refetches
    trial = api.get("/api/studies/notes/trials/0")
    assert trial["note"] == "<b>not bold</b>" and trial["user_tags"] == {"rerun": "yes"}
    other = api.get("/api/studies/notes/trials/1")
    assert other["note"] is None and other["user_tags"] == {}


@pytest.mark.slow
@pytest.mark.skipif(webdriver is None, reason="selenium is not installed (pip install selenium)")
@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="Chromium not installed: apt-get install -y chromium chromium-driver",
)
def test_the_study_and_trial_pages_show_them(sqlite_url: str, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    store = Store(sqlite_url)
    make_mixed_study(store, "noted")
    _annotate(store, "noted")
    server = serve_dashboard(store, "127.0.0.1", 0)
    try:
        browser.get(server.url + "#/study/noted")
        note = wait_for(lambda: browser.find_element(By.ID, "study-note"), what="the note")
        assert note.text == NOTE
        tags = browser.find_elements(By.CSS_SELECTOR, "#study-user-tags .tag")
        assert [t.text for t in tags] == ["owner=ana", "team=vision"]
        browser.get(server.url + "#/study/noted/trial/0")
        trial_note = wait_for(lambda: browser.find_element(By.ID, "trial-note"), what="note")
        assert trial_note.text == "<b>not bold</b>"  # shown as text, never as markup
        tags = browser.find_elements(By.CSS_SELECTOR, "#trial-user-tags .tag")
        assert [t.text for t in tags] == ["rerun=yes"]
    finally:
        server.stop()
        store.close()
