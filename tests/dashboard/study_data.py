"""A study with trials in every finished and unfinished state, made through the Store API."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hpsearch.records import TrialState
from hpsearch.space import loads_study
from hpsearch.store import Store

STUDY_YAML = """
name: {name}
metric: {{name: val_accuracy, goal: {goal}}}
parameters:
  learning_rate: {{type: double, min: 0.0001, max: 0.1, scale: log}}
  units: {{type: integer, min: 1, max: 300}}
  optimizer: {{type: categorical, values: [sgd, adam]}}
budget: {{max_trials: 100, max_attempts: 3}}
"""

#: The state each trial number ends in (the order trials are created in).
PLAN = (
    [TrialState.COMPLETED] * 6
    + [TrialState.FAILED] * 2
    + [TrialState.STOPPED] * 2
    + [TrialState.RUNNING] * 2
    + [TrialState.WAITING]
)


@dataclass
class MixedStudy:
    name: str
    goal: str
    params: dict[int, dict[str, object]] = field(default_factory=dict)
    values: dict[int, float] = field(default_factory=dict)  # COMPLETED and STOPPED trials
    states: dict[int, TrialState] = field(default_factory=dict)

    def numbers(self, state: TrialState) -> list[int]:
        return sorted(n for n, s in self.states.items() if s == state)


def make_mixed_study(store: Store, name: str = "mixed", goal: str = "maximize") -> MixedStudy:
    """COMPLETED x6, FAILED x2, STOPPED x2 (early-stopped), RUNNING x2, WAITING x1.

    Every trial that ran reports 4 intermediate measurements; the objective is driven by
    ``learning_rate`` (so it is the most important parameter).  Trial 6 fails once with
    a retry (attempt 1 on worker-0, attempt 2 on worker-b) before it fails for good.
    """
    store.create_study(loads_study(STUDY_YAML.format(name=name, goal=goal)))
    rng = random.Random(7)
    study = MixedStudy(name, goal)
    for i, state in enumerate(PLAN):
        params = {
            "learning_rate": round(10 ** rng.uniform(-4, -1), 8),
            "units": rng.randint(1, 300),
            "optimizer": "adam" if i % 2 else "sgd",
        }
        value = round(1.0 - abs(params["learning_rate"] - 0.01) * 5 + rng.gauss(0, 0.002), 6)
        tags = {
            "AIP_MODEL_DIR": f"/runs/{name}/{i}/model/",
            "AIP_CHECKPOINT_DIR": f"/runs/{name}/{i}/checkpoints/",
            "AIP_TENSORBOARD_LOG_DIR": f"/runs/{name}/{i}/logs/",
        }
        if state == TrialState.WAITING:
            trial = store.create_trial(name, params, tags=tags)
        else:
            trial = store.create_trial(
                name, params, worker_id=f"worker-{i % 3}", lease_seconds=600, tags=tags
            )
            for step in range(4):
                store.add_measurement(
                    name,
                    trial.number,
                    trial.attempt,
                    step,
                    {"val_accuracy": value * (step + 1) / 4},
                )
        if state == TrialState.COMPLETED:
            store.complete_trial(name, trial.number, trial.attempt, value, {"loss": 1 - value})
            study.values[trial.number] = value
        elif state == TrialState.FAILED:
            if i == 6:
                store.fail_trial(name, trial.number, trial.attempt, "worker lost GPU", retry=True)
                again = store.claim_trial(name, "worker-b", lease_seconds=600)
                assert again is not None and again.number == trial.number
                trial = again
            store.fail_trial(name, trial.number, trial.attempt, "ValueError: loss is NaN")
        elif state == TrialState.STOPPED:
            store.stop_trial(name, trial.number, trial.attempt, value=value / 2)
            study.values[trial.number] = value / 2
        study.params[trial.number] = params
        study.states[trial.number] = state
    store.touch_worker("worker-0", host="gpu-0")
    return study
