#!/usr/bin/env bash
# The whole test suite N times in a row (CI=true, PostgreSQL) beside a CPU-heavy process,
# from a worktree at a fixed commit (its subprocesses import hpsearch from it too).
#   benchmarks/suite_under_load.sh [runs=3] [commit=HEAD]
# The load: benchmarks/multi_fidelity.py at nice 19 (one core, GP fits), for the whole run;
# LOAD_ARGS runs chosen multi_fidelity.py arguments first.
# Each failure is written to $OUT/failnow.log as it happens; $OUT/status has one line a run.
set -uo pipefail
RUNS="${1:-3}"; COMMIT="${2:-HEAD}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-/tmp/suite-under-load}"; TREE="$OUT/tree"
mkdir -p "$OUT"
git -C "$REPO" worktree add --detach "$TREE" "$COMMIT" >/dev/null
ln -s "$REPO/.venv" "$TREE/.venv"
export CI=true PYTHONPATH="$TREE:$TREE/benchmarks" FAILNOW_LOG="$OUT/failnow.log"
export HPSEARCH_TEST_POSTGRES_URL="${HPSEARCH_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
# LOAD_ARGS (optional): multi_fidelity.py arguments to run first as the load (useful runs);
# the default load follows them until the suite is done.
(cd "$TREE"
 if [ -n "${LOAD_ARGS:-}" ]; then
   # shellcheck disable=SC2086
   nice -n 19 .venv/bin/python benchmarks/multi_fidelity.py $LOAD_ARGS >"$OUT/load-args.log" 2>&1
 fi
 exec nice -n 19 .venv/bin/python benchmarks/multi_fidelity.py --seeds 1000 \
    --problems lc-hartmann6 --results "$OUT/load.jsonl" >"$OUT/load.log" 2>&1) &
LOAD=$!
trap 'pkill -P $LOAD 2>/dev/null; kill $LOAD 2>/dev/null' EXIT
cd "$TREE"
for i in $(seq 1 "$RUNS"); do
  echo "run $i start $(date -u +%H:%M:%S) at $(git rev-parse --short HEAD)" >>"$OUT/status"
  .venv/bin/python -m pytest -p no:cacheprovider -p failnow --durations=25 >"$OUT/run$i.log" 2>&1
  echo "run $i rc=$? end $(date -u +%H:%M:%S) $(tail -1 "$OUT/run$i.log")" >>"$OUT/status"
done
cat "$OUT/status"
