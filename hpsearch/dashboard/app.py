"""The dashboard as a WSGI application: a read-only JSON API and the page that reads it.

Routes (all GET; see docs/dashboard.md for the fields):

    /                                       the single-page UI
    /static/<file>                          its JS and CSS; /static/vendor/plotly.min.js
                                            comes from the ``plotly`` package's wheel
    /api/health
    /api/studies
    /api/studies/<name>
    /api/studies/<name>/revision
    /api/studies/<name>/history
    /api/studies/<name>/parameters
    /api/studies/<name>/front               objectives, feasibility, Pareto front
    /api/studies/<name>/intermediate?metric=&limit=
    /api/studies/<name>/trials?offset=&limit=&sort=&order=&state=&min.<p>=&max.<p>=&eq.<p>=
    /api/studies/<name>/trials/<number>
    /api/workers

The application holds only an engine; each request opens its own short read
transaction, so any number of server threads can share it.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import mimetypes
import threading
import time
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from hpsearch.dashboard import queries
from hpsearch.errors import HpsearchError, InvalidArgumentError, NotFoundError, StorageError
from hpsearch.records import TrialState
from hpsearch.store.engine import storage_error

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
Environ = dict[str, Any]

#: Seconds the browser may cache the vendored plotly.min.js.
VENDOR_MAX_AGE = 86400
_STATIC_FILES = ("index.html", "app.js", "app.css")


class DashboardApp:
    """The WSGI callable.  ``engine`` is the store's SQLAlchemy engine; nothing is written."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._vendor_lock = threading.Lock()
        self._vendor: tuple[bytes, bytes] | None = None  # (plain, gzip) plotly.min.js

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        body = self._respond(environ, start_response)
        if environ.get("REQUEST_METHOD") == "HEAD":  # same headers, no body
            return [b""]
        return body

    def _respond(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/") or "/"
        started = time.perf_counter()
        if method not in ("GET", "HEAD"):
            return _send(
                start_response,
                "405 Method Not Allowed",
                _json_bytes({"error": "the dashboard is read-only: only GET is served"}),
                "application/json",
                extra=[("Allow", "GET, HEAD")],
            )
        try:
            if path.startswith("/api/"):
                query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=False)
                body = self.api(path, query)
                status, payload = "200 OK", _json_bytes(body)
                return _send(start_response, status, payload, "application/json")
            return self._static(path, environ, start_response)
        except NotFoundError as exc:
            return _error(start_response, "404 Not Found", exc)
        except InvalidArgumentError as exc:
            return _error(start_response, "400 Bad Request", exc)
        except StorageError as exc:
            logger.warning("dashboard storage error path=%s error=%s", path, exc)
            return _error(start_response, "503 Service Unavailable", exc)
        except DBAPIError as exc:  # the database is down, or refused the query
            error = storage_error(exc, self.engine.url, "read")
            if isinstance(error, InvalidArgumentError):  # e.g. a NUL in a filter, PostgreSQL
                return _error(start_response, "400 Bad Request", error)
            logger.warning("dashboard storage error path=%s error=%s", path, error)
            return _error(start_response, "503 Service Unavailable", error)
        except HpsearchError as exc:
            return _error(start_response, "409 Conflict", exc)
        except Exception as exc:  # a bug: answer 500 and log it, keep serving
            logger.exception("dashboard request failed path=%s", path)
            return _error(start_response, "500 Internal Server Error", exc)
        finally:
            logger.debug(
                "dashboard request path=%s ms=%.1f", path, (time.perf_counter() - started) * 1e3
            )

    # -- the JSON API --------------------------------------------------------------------------
    def api(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """Answer one API path with a JSON-ready dict (also usable without HTTP)."""
        parts = [_wsgi_text(p) for p in path.split("/")[2:] if p]
        engine = self.engine
        match parts:
            case ["health"]:
                return {"ok": True}
            case ["studies"]:
                return queries.list_studies(engine)
            case ["studies", name]:
                return queries.study_detail(engine, name)
            case ["studies", name, "revision"]:
                return queries.study_revision(engine, name)
            case ["studies", name, "history"]:
                return queries.history(engine, name)
            case ["studies", name, "parameters"]:
                return queries.parameters(engine, name)
            case ["studies", name, "front"]:
                return queries.front(engine, name)
            case ["studies", name, "intermediate"]:
                return queries.intermediate(
                    engine,
                    name,
                    metric=_one(query, "metric"),
                    limit=_int(query, "limit", 100),
                )
            case ["studies", name, "trials"]:
                return queries.trial_page(engine, name, trial_query(query))
            case ["studies", name, "trials", number]:
                return queries.trial_detail(engine, name, _parse_int(number, "trial number"))
            case ["workers"]:
                return queries.workers(engine)
        raise NotFoundError(
            f"no API endpoint {path!r}; the endpoints are listed in docs/dashboard.md"
        )

    # -- static files --------------------------------------------------------------------------
    def _static(
        self, path: str, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        if path in ("/", "/index.html"):
            name = "index.html"
        elif path == "/favicon.ico":
            start_response("204 No Content", [("Cache-Control", f"max-age={VENDOR_MAX_AGE}")])
            return [b""]
        elif path == "/static/vendor/plotly.min.js":
            return self._plotly(environ, start_response)
        elif path.startswith("/static/") and path[len("/static/") :] in _STATIC_FILES:
            name = path[len("/static/") :]
        else:
            raise NotFoundError(f"nothing at {path!r}; open / for the dashboard")
        data = resources.files("hpsearch.dashboard").joinpath("static", name).read_bytes()
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype.endswith("javascript"):
            ctype += "; charset=utf-8"
        return _send(start_response, "200 OK", data, ctype, extra=[("Cache-Control", "no-cache")])

    def _plotly(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        plain, packed = self._vendor_js()
        accepts_gzip = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        headers = [("Cache-Control", f"max-age={VENDOR_MAX_AGE}"), ("Vary", "Accept-Encoding")]
        if accepts_gzip:
            headers.append(("Content-Encoding", "gzip"))
        return _send(
            start_response,
            "200 OK",
            packed if accepts_gzip else plain,
            "text/javascript; charset=utf-8",
            extra=headers,
        )

    def _vendor_js(self) -> tuple[bytes, bytes]:
        with self._vendor_lock:
            if self._vendor is None:
                plain = plotly_js_path().read_bytes()
                self._vendor = (plain, gzip.compress(plain, compresslevel=6))
            return self._vendor


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the ``plotly`` wheel (no CDN, no download).

    NotFoundError telling the user to install plotly when it is missing: the page then
    shows its tables without plots.
    """
    try:
        import plotly
    except ImportError as exc:
        raise NotFoundError(
            "plots need the plotly package (it ships plotly.min.js): "
            "pip install 'hpsearch[dashboard]' or pip install plotly"
        ) from exc
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise NotFoundError(f"plotly is installed but {path} is missing; reinstall plotly")
    return path


def trial_query(query: dict[str, list[str]]) -> queries.TrialQuery:
    """Parse the trial table's query string (see docs/dashboard.md)."""
    states: list[TrialState] = []
    for raw in query.get("state", []):
        for item in raw.split(","):
            if not item:
                continue
            try:
                states.append(TrialState(item.upper()))
            except ValueError:
                raise InvalidArgumentError(
                    f"unknown trial state {item!r}; use one of "
                    + ", ".join(s.value for s in TrialState)
                ) from None
    bounds: dict[str, list[float | None]] = {}
    equals: list[tuple[str, str]] = []
    for key, values in query.items():
        if key.startswith(("min.", "max.")):
            param = key[4:]
            number = _parse_float(values[-1], key)
            bounds.setdefault(param, [None, None])[0 if key.startswith("min.") else 1] = number
        elif key.startswith("eq."):
            equals.append((key[3:], values[-1]))
    order = (_one(query, "order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise InvalidArgumentError(f"order must be asc or desc, got {order!r}")
    return queries.TrialQuery(
        offset=_int(query, "offset", 0),
        limit=_int(query, "limit", 50),
        sort=_one(query, "sort") or "number",
        descending=order == "desc",
        states=tuple(states),
        ranges=tuple((p, lo, hi) for p, (lo, hi) in sorted(bounds.items())),
        equals=tuple(equals),
    )


# -- helpers -----------------------------------------------------------------------------------
def _wsgi_text(segment: str) -> str:
    """A PATH_INFO segment (already unquoted, bytes as latin-1 per PEP 3333) as text."""
    try:
        return segment.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return segment


def _one(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _int(query: dict[str, list[str]], key: str, default: int) -> int:
    raw = _one(query, key)
    return default if raw is None else _parse_int(raw, key)


def _parse_int(raw: str, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgumentError(f"{what} must be an integer, got {raw!r}") from None


def _parse_float(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(f"{what} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise InvalidArgumentError(f"{what} must be a finite number, got {raw!r}")
    return value


def _json_bytes(body: Any) -> bytes:
    try:
        text = json.dumps(body, separators=(",", ":"), default=_jsonable, allow_nan=False)
    except ValueError:  # a NaN or infinity from outside the store's checks: JSON has none
        text = json.dumps(_finite(body), separators=(",", ":"), default=_jsonable)
    return text.encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "value"):  # enums
        return value.value
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _send(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    *,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if content_type.startswith("application/json"):
        headers.append(("Cache-Control", "no-store"))
    headers.extend(extra or [])
    start_response(status, headers)
    return [body]


def _error(start_response: StartResponse, status: str, exc: BaseException) -> list[bytes]:
    body = _json_bytes({"error": str(exc) or type(exc).__name__, "status": int(status[:3])})
    return _send(start_response, status, body, "application/json")
