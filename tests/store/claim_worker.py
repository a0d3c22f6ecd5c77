"""A worker process for the concurrency test: ``python claim_worker.py URL STUDY WORKER``.

Opens its own Store, claims and completes trials until none is left, then prints a JSON
object: the trial numbers it completed and the errors it met (there should be none).
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from hpsearch.store import Store

    url, study, worker = sys.argv[1:4]
    done: list[int] = []
    errors: list[str] = []
    store = Store(url, pool_size=1, max_overflow=1)
    try:
        while True:
            try:
                trial = store.claim_trial(study, worker)
                if trial is None:
                    break
                store.complete_trial(study, trial.number, trial.attempt, float(trial.number))
                done.append(trial.number)
            except Exception as exc:  # every error is a test failure: report, don't die
                errors.append(f"{type(exc).__name__}: {exc}")
                if len(errors) > 5:
                    break
    finally:
        store.close()
    sys.stdout.write(json.dumps({"done": done, "errors": errors}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
