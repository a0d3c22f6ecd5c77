"""How the ``hpsearch`` commands print: rows as a table, CSV or JSON, and a live progress line.

Everything on stdout goes through here so that the formats stay the same from one command
to the next; messages for the user alone go to stderr.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any


def emit(rows: list[dict[str, Any]], fmt: str, *, empty: str) -> None:
    """Print ``rows`` as ``fmt`` (table, csv or json); a table of no rows is ``empty``.

    Columns are the union of the rows' keys in first-seen order, so rows may differ (a
    parameter only some trials have); a missing value is ``-`` in a table, empty in CSV.
    """
    if fmt == "json":
        print_json(rows)
        return
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        sys.stdout.write(buffer.getvalue())
        return
    if not rows:
        print(empty)
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def print_json(data: Any) -> None:
    """``data`` as indented JSON; what JSON cannot hold (a datetime) as its string."""
    print(json.dumps(data, indent=2, default=str))


def iso(ts: float | None) -> str | None:
    """A Unix time as UTC ISO 8601 to the second, as every command shows times."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class ProgressLine:
    """A status line with the seconds elapsed, for work that takes a while.

    On a terminal the line rewrites itself every :meth:`show`; elsewhere (a log file, CI)
    a line is printed only when the status changes, so the output stays short.
    """

    def __init__(self) -> None:
        self._start = time.monotonic()
        self._interactive = sys.stdout.isatty()
        self._last: str | None = None

    def show(self, status: str) -> None:
        """Show ``status`` (without the elapsed time, which is added in front)."""
        line = f"[{time.monotonic() - self._start:5.0f}s] {status}"
        if self._interactive:
            print("\r" + line, end="", flush=True)
        elif status != self._last:
            print(line, flush=True)
        self._last = status

    def close(self) -> None:
        """End the line (on a terminal the cursor is still on it)."""
        if self._interactive:
            print()


def progress_every(line: ProgressLine, verb: str, parts: int = 20) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback showing ``<verb> done/total trials`` on ``line``
    about every ``1/parts`` of the way (and at the end), not once per trial."""

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // parts) == 0:
            line.show(f"{verb} {done}/{total} trials")

    return progress


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
