"""A pytest plugin for long runs of the suite (benchmarks/suite_under_load.sh): each failure's
report is appended to $FAILNOW_LOG the moment it happens, so a failure can be read while
the run goes on (pytest prints them only at the end).  ``-p failnow`` with this directory
on PYTHONPATH."""

from __future__ import annotations

import os
import time
from typing import Any


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed:
        with open(os.environ.get("FAILNOW_LOG", "failnow.log"), "a") as f:
            f.write(f"\n===== {time.strftime('%H:%M:%S')} {report.nodeid} ({report.when})\n")
            f.write(str(report.longrepr)[-6000:] + "\n")
