"""Fixtures of the dashboard tests: a served dashboard and a JSON client for it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hpsearch.dashboard import serve_dashboard
from hpsearch.dashboard.server import DashboardServer


class ApiClient:
    """GET JSON from a running dashboard; errors come back as (status, body)."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def get(self, path: str) -> Any:
        status, body = self.request(path)
        assert status == 200, (path, status, body)
        return body

    def request(self, path: str, method: str = "GET") -> tuple[int, Any]:
        req = urllib.request.Request(self.base + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def dashboard(store: Any) -> Iterator[DashboardServer]:
    """The dashboard of the test's store, on a free port; stopped after the test."""
    server = serve_dashboard(store, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(dashboard: DashboardServer) -> ApiClient:
    return ApiClient(dashboard.url)
