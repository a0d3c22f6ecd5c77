"""The dashboard's WSGI server: cheroot in production, wsgiref only as a fallback."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hpsearch.dashboard import serve_dashboard
from hpsearch.errors import InvalidArgumentError
from hpsearch.store import Store

from .conftest import ApiClient
from .study_data import make_mixed_study


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, dict[str, str], bytes]:
    conn.request("GET", path)
    res = conn.getresponse()
    return res.status, dict(res.getheaders()), res.read()


def test_cheroot_serves_by_default_with_keep_alive(store: Store) -> None:
    make_mixed_study(store, "served")
    with serve_dashboard(store, "127.0.0.1", 0) as server:
        assert server.backend == "cheroot"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        try:
            status, headers, body = _get(conn, "/api/studies")
            assert status == 200
            assert headers["Server"] == "hpsearch-dashboard"
            assert [s["name"] for s in json.loads(body)["studies"]] == ["served"]
            first_socket = conn.sock
            # HTTP/1.1 keep-alive: the next request goes over the same connection
            # (wsgiref closes every connection after one answer).
            status, _, body = _get(conn, "/api/studies/served")
            assert status == 200 and json.loads(body)["name"] == "served"
            assert conn.sock is first_socket
            # Still read-only under the production server.
            conn.request("POST", "/api/studies")
            res = conn.getresponse()
            assert res.status == 405
            res.read()
        finally:
            conn.close()
        # Requests in parallel are all answered.
        api = ApiClient(server.url)
        with ThreadPoolExecutor(8) as pool:
            names = list(pool.map(lambda _: api.get("/api/studies/served")["name"], range(32)))
        assert names == ["served"] * 32


def test_wsgiref_on_request_and_a_bad_name_is_refused(sqlite_url: str) -> None:
    with Store(sqlite_url) as store:
        with serve_dashboard(store, "127.0.0.1", 0, server="wsgiref") as server:
            assert server.backend == "wsgiref"
            assert ApiClient(server.url).get("/api/health") == {"ok": True}
        with pytest.raises(InvalidArgumentError, match="auto, cheroot, wsgiref"):
            serve_dashboard(store, "127.0.0.1", 0, server="gunicorn")


def test_without_cheroot_the_cli_falls_back_to_wsgiref_and_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    """cheroot made unimportable in a child process: the command still serves."""
    Store(sqlite_url).close()
    script = tmp_path / "no_cheroot.py"
    script.write_text(
        textwrap.dedent(
            """\
            import sys
            sys.modules["cheroot"] = None  # import cheroot -> ImportError
            from hpsearch.cli import main
            sys.exit(main(sys.argv[1:]))
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), "dashboard", "--storage", sqlite_url, "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        lines = []
        for _ in range(50):
            lines.append(proc.stderr.readline())
            if "hpsearch dashboard: http" in lines[-1]:
                break
        text = "".join(lines)
        assert "cheroot is not installed" in text and "hpsearch[dashboard]" in text
        assert "served by wsgiref" in lines[-1]
        url = lines[-1][lines[-1].index("http://") :].split()[0]
        assert ApiClient(url).get("/api/studies")["studies"] == []
        proc.terminate()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cheroot_by_name_when_it_is_missing_is_a_clear_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    Store(sqlite_url).close()
    code = (
        "import sys; sys.modules['cheroot'] = None\n"
        "from hpsearch.cli import main\n"
        f"sys.exit(main(['dashboard', '--storage', {sqlite_url!r}, '--port', '0', "
        "'--server', 'cheroot']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "pip install 'hpsearch[dashboard]'" in out.stderr
