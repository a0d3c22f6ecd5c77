"""A local HTTP fake of the Vertex AI REST API (the JobService calls hpsearch makes).

It records every request (method, path, query, JSON body) and answers:

- ``POST /v1/projects/P/locations/R/hyperparameterTuningJobs`` and ``.../customJobs``:
  the body back with a new ``name``, ``state: JOB_STATE_PENDING`` and ``createTime``;
  the job is then readable with GET;
- ``GET /v1/<job name>``: a job put in ``jobs`` (by a test) or created above;
- anything else: 404 in Google's error format.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeVertex:
    """Start with ``start()``, stop with ``stop()``; ``endpoint`` is its http:// URL."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeVertex:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path, _ = self._record(None)
                name = path.removeprefix("/v1/")
                with fake._lock:
                    job = fake.jobs.get(name)
                if job is None:
                    self._error(404, "NOT_FOUND", f"{name} not found")
                else:
                    self._reply(200, job)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else None
                path, _ = self._record(body)
                parts = path.removeprefix("/v1/").split("/")
                if (
                    len(parts) == 5
                    and parts[0] == "projects"
                    and parts[2] == "locations"
                    and parts[4] in ("hyperparameterTuningJobs", "customJobs")
                ):
                    name = "/".join(parts) + f"/{next(fake._ids)}"
                    job = dict(body or {})
                    job.update(
                        name=name, state="JOB_STATE_PENDING", createTime="2026-11-23T10:00:00Z"
                    )
                    with fake._lock:
                        fake.jobs[name] = job
                    self._reply(200, job)
                else:
                    self._error(404, "NOT_FOUND", f"no such collection {path}")

            def _record(self, body: Any) -> tuple[str, dict[str, list[str]]]:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                with fake._lock:
                    fake.requests.append(Request(self.command, url.path, query, body))
                return url.path, query

            def _reply(self, code: int, data: Any) -> None:
                payload = json.dumps(data).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _error(self, code: int, status: str, message: str) -> None:
                self._reply(code, {"error": {"code": code, "message": message, "status": status}})

        return Handler
