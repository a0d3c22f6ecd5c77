"""The dashboard with a bearer token: 401 without it, 200 with it; health stays open."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from hpsearch.dashboard import serve_dashboard
from hpsearch.store import Store

from .conftest import TOKEN


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("path", ["", "api/studies", "api/workers", "static/app.js"])
def test_dashboard_needs_the_token(sqlite_url: str, path: str) -> None:
    with Store(sqlite_url) as store, serve_dashboard(store, "127.0.0.1", 0, token=TOKEN) as dash:
        status, body = get(dash.url + path)
        assert status == 401 and b"bearer token" in body
        assert get(dash.url + path, "wrong")[0] == 401
        assert get(dash.url + path, TOKEN)[0] == 200


def test_dashboard_health_is_open_and_no_token_means_open(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        with serve_dashboard(store, "127.0.0.1", 0, token=TOKEN) as dash:
            assert get(dash.url + "api/health")[0] == 200
        with serve_dashboard(store, "127.0.0.1", 0) as dash:
            assert get(dash.url + "api/studies")[0] == 200
