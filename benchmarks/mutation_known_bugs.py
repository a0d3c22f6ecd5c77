"""Known bugs, each put on its own into a copy of the repository, against the tests aimed at
it: every one must make a test fail.

These are the plausible bugs that once passed every test aimed at them (issue 22): a log
range with min > max, a mean for the median, ``<=`` for ``<``, a held ``ask`` not woken by
a result, ``measurement: last`` ignored or the goal flipped at the chief, a lease hand-off
left to the periodic resync, the worker taking the best report for the last.  mutmut
(``[tool.mutmut]`` in pyproject.toml) covers the rule modules wholesale; this script keeps
these hand-written bugs, some of which (a lost ``notify_all``, a missing resync) need the
real server and long holds that a mutation tool's per-mutant budget does not allow.

    python benchmarks/mutation_known_bugs.py            # all, about 3 minutes
    python benchmarks/mutation_known_bugs.py --only wake handoff

Prints one line per bug (caught / NOT CAUGHT / no longer applies) with the first failing
test, and exits 1 unless every bug was caught.  Nothing in the checkout is modified: the
bugs go into a temporary copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("hpsearch", "tests", "examples", "trials", "pyproject.toml")


@dataclass(frozen=True)
class Bug:
    name: str
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BUGS = (
    Bug(
        "log-range",
        "the min < max check skipped for log and reverse-log scales",
        "hpsearch/space/params.py",
        "    if not lo < hi:\n",
        "    if scale is Scale.LINEAR and not lo < hi:\n",
        ("tests/space/test_space_validation.py",),
    ),
    Bug(
        "median-mean",
        "the median stopping rule takes the mean of the running averages",
        "hpsearch/early_stopping.py",
        "statistics.median(averages)",
        "statistics.mean(averages)",
        ("tests/test_early_stopping.py",),
    ),
    Bug(
        "median-tie",
        "the median stopping rule stops a trial equal to the median (<= for <)",
        "hpsearch/early_stopping.py",
        "    if not goal.better(median, best):\n",
        "    if goal.better(best, median):\n",
        ("tests/test_early_stopping.py",),
    ),
    Bug(
        "wake",
        "a result no longer wakes the asks held on the study",
        "hpsearch/oracle/scheduler.py",
        "            self._finish_if_done(mirror)\n            mirror.cond.notify_all()\n",
        "            self._finish_if_done(mirror)\n",
        ("tests/chief/test_chief_service.py", "-k", "parallel_limit"),
    ),
    Bug(
        "chief-last",
        "the chief takes the best measurement under measurement: last",
        "hpsearch/oracle/core.py",
        "return config.measurement.select(values, config.metric.goal)",
        "return type(config.measurement).BEST.select(values, config.metric.goal)",
        ("tests/chief/test_chief_measurement.py",),
    ),
    Bug(
        "chief-goal",
        "the chief picks the best measurement by the opposite goal",
        "hpsearch/oracle/core.py",
        "return config.measurement.select(values, config.metric.goal)",
        "return config.measurement.select(values, type(config.metric.goal)("
        "'minimize' if config.metric.goal.value == 'maximize' else 'maximize'))",
        ("tests/chief/test_chief_measurement.py",),
    ),
    Bug(
        "handoff",
        "an expired lease is handed over only at the periodic resync (the sweep does not)",
        "hpsearch/oracle/core.py",
        "            if mirror is not None:\n                mirror.resync(self.store)\n"
        "        return changed\n",
        "            pass\n        return changed\n",
        ("tests/chief/test_chief_service.py", "-k", "expired_lease"),
    ),
    Bug(
        "worker-last",
        "the worker takes the best report under measurement: last",
        "hpsearch/worker/loop.py",
        "config.metric.goal, config.measurement\n",
        "config.metric.goal, type(config.measurement).BEST\n",
        ("tests/worker/test_worker.py", "-k", "measurement"),
    ),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=[b.name for b in BUGS], help="bugs to try")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per bug")
    args = parser.parse_args()
    bugs = [b for b in BUGS if not args.only or b.name in args.only]
    with tempfile.TemporaryDirectory(prefix="hpsearch-bugs-") as tmp:
        copy = Path(tmp)
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, copy / name)
        missed = 0
        for i, bug in enumerate(bugs, start=1):
            print(f"[{i}/{len(bugs)}] {bug.name}: {bug.what}", flush=True)
            verdict, detail, seconds = _try(copy, bug, args.timeout)
            missed += verdict != "caught"
            print(f"    {verdict} in {seconds:.0f}s{': ' + detail if detail else ''}", flush=True)
    print(f"{len(bugs) - missed} of {len(bugs)} bugs caught")
    return 1 if missed else 0


def _try(copy: Path, bug: Bug, timeout: float) -> tuple[str, str, float]:
    """Put ``bug`` in, run its tests, take it out: (verdict, detail, seconds)."""
    target = copy / bug.path
    original = target.read_text()
    if original.count(bug.old) != 1:
        return "NO LONGER APPLIES", f"{bug.path} changed: update this bug", 0.0
    target.write_text(original.replace(bug.old, bug.new))
    env = dict(os.environ, PYTHONPATH=str(copy))
    env.pop("CI", None)  # a skip is not the point here
    started = time.monotonic()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *bug.tests],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return "caught (timed out)", "", time.monotonic() - started
    finally:
        target.write_text(original)
    seconds = time.monotonic() - started
    failed = [line for line in run.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if run.returncode == 1 and failed:
        return "caught", failed[0], seconds
    if run.returncode == 0:
        return "NOT CAUGHT", "every test aimed at it passed", seconds
    return "ERROR", f"pytest exited {run.returncode}: {run.stdout[-300:]}", seconds


if __name__ == "__main__":
    sys.exit(main())
