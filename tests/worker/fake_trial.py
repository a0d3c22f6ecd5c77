"""A stand-in for trials/mnist.py that needs no TensorFlow: a Vertex AI trial script.

Reads --x (and any other flags), reports ``score`` with cloudml-hypertune once per step,
checkpoints its step in AIP_CHECKPOINT_DIR and resumes from it.  FAKE_TRIAL_MODE picks a
misbehaviour: ok (default), fail, nometric, nan, slow (sleeps between steps), bad (slow, and
reports a poor value, for early stopping), peak (its values rise, peak at step 2, then fall:
the best and the last report differ).
FAKE_TRIAL_STEPS sets the number of steps (default 3).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import hypertune

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.5)
args, extra = parser.parse_known_args()
mode = os.environ.get("FAKE_TRIAL_MODE", "ok")
steps = int(os.environ.get("FAKE_TRIAL_STEPS", "3"))
model_dir = Path(os.environ["AIP_MODEL_DIR"])
checkpoint = Path(os.environ["AIP_CHECKPOINT_DIR"]) / "step.json"
start = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
with open(model_dir / "runs.jsonl", "a") as runs:
    runs.write(
        json.dumps(
            {
                "start_step": start,
                "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
                "trial": os.environ["CLOUD_ML_TRIAL_ID"],
                "argv": sys.argv[1:],
                "t0": time.time(),
            }
        )
        + "\n"
    )
if mode == "fail":
    print("loading data...", flush=True)
    print("ValueError: the fake trial was told to fail", file=sys.stderr, flush=True)
    sys.exit(3)
reporter = hypertune.HyperTune()
for step in range(start + 1, steps + 1):
    if mode in ("slow", "bad"):
        time.sleep(float(os.environ.get("FAKE_TRIAL_SLEEP", "1.0")))
    value = float("nan") if mode == "nan" else -((args.x - 0.3) ** 2) + step * 0.01
    if mode == "bad":
        value = -10.0
    if mode == "peak":
        value = -((args.x - 0.3) ** 2) + (0.01, 0.03, 0.02)[(step - 1) % 3]
    if mode != "nometric":
        reporter.report_hyperparameter_tuning_metric("score", value, global_step=step)
    checkpoint.write_text(json.dumps({"step": step}))
with open(model_dir / "runs.jsonl", "a") as runs:
    runs.write(json.dumps({"end": time.time()}) + "\n")
