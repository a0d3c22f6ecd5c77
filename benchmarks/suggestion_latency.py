"""Suggestion latency of ``hpsearch.search.suggest`` (bayesian), this checkout against another.

One suggestion for a 10-double study with ``--history`` finished trials (500 by default)
and 8 pending, the way the chief's suggester calls it.  Each checkout runs in its own
subprocess, in alternating rounds, so that both see the same machine load; the report
gives the median and p90 per checkout over all rounds.

    python benchmarks/suggestion_latency.py --baseline /tmp/hpsearch-base --rounds 6
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from hpsearch.search import Observation, suggest
from hpsearch.space import DoubleParam, Goal, Metric, Space, StudyConfig

history_size, repeats = int(sys.argv[2]), int(sys.argv[3])
space = Space(tuple(DoubleParam(f"x{i}", min=0.0, max=1.0) for i in range(10)))
rng = np.random.default_rng(0)
def value(p):
    x = np.array([p[f"x{i}"] for i in range(10)])
    return float(np.sum((x - 0.3) ** 2) + 0.1 * np.sin(9 * x).sum())
history = [Observation(p, value(p)) for p in (space.sample(rng) for _ in range(history_size))]
pending = [space.sample(rng) for _ in range(8)]
config = StudyConfig(name="lat", metric=Metric("loss", Goal.MINIMIZE), space=space, seed=0)
suggest(config, history, pending, 1, np.random.default_rng(0))  # warm imports and caches
times = []
for r in range(repeats):
    started = time.perf_counter()
    suggest(config, history, pending, 1, np.random.default_rng(r + 1))
    times.append(time.perf_counter() - started)
print(json.dumps(times))
"""


def run(checkout: Path, history: int, repeats: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(checkout), str(history), str(repeats)],
        capture_output=True,
        text=True,
        check=True,
        cwd=checkout,
    )
    return [float(t) for t in json.loads(out.stdout.strip().splitlines()[-1])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--history", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=10, help="suggestions per round")
    args = parser.parse_args(argv)
    checkouts = {"this checkout": REPO, f"baseline ({args.baseline})": args.baseline}
    times: dict[str, list[float]] = {name: [] for name in checkouts}
    for r in range(args.rounds):
        order = list(checkouts.items()) if r % 2 == 0 else list(reversed(checkouts.items()))
        for name, path in order:
            times[name] += run(path, args.history, args.repeats)
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(f"suggestion latency, {args.history} finished trials, 10 doubles, 8 pending")
    print("| checkout | median ms | p90 ms | suggestions |")
    print("|---|---:|---:|---:|")
    for name, values in times.items():
        values.sort()
        p90 = values[int(0.9 * (len(values) - 1))]
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.1f} | {1000 * p90:.1f} | {len(values)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
