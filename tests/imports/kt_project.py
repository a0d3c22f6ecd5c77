"""Write two real Keras Tuner projects (RandomSearch, Hyperband) on random data, then reload
them with Keras Tuner and print what Keras Tuner itself holds for each trial, as JSON.

Run as a script (it imports TensorFlow): ``python kt_project.py OUT_DIR``.
"""

import json
import sys

import keras
import keras_tuner as kt
import numpy as np

out = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.random((64, 4)).astype("float32")
y = (x.sum(axis=1) > 2).astype("float32")


def build(hp):
    model = keras.Sequential([keras.Input((4,))])
    units = hp.Int("units", 2, 16, sampling="log")
    model.add(keras.layers.Dense(units, activation=hp.Choice("activation", ["relu", "tanh"])))
    if hp.Boolean("extra"):
        with hp.conditional_scope("extra", [True]):
            model.add(keras.layers.Dense(hp.Int("extra_units", 2, 8), activation="relu"))
    hp.Choice("batch", [32, 16], ordered=False)
    hp.Fixed("seed", 7)
    model.add(keras.layers.Dense(1, activation="sigmoid"))
    lr = hp.Float("lr", 1e-4, 1e-1, sampling="log")
    model.compile(
        optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model


def tuners(overwrite):
    common = {"directory": out, "seed": 1, "overwrite": overwrite}
    return {
        "random": kt.RandomSearch(
            build, objective="val_accuracy", max_trials=3, project_name="random", **common
        ),
        "hyperband": kt.Hyperband(
            build,
            objective=kt.Objective("val_loss", "min"),
            max_epochs=2,
            factor=2,
            project_name="hyperband",
            **common,
        ),
    }


for tuner in tuners(overwrite=True).values():
    tuner.search(x, y, epochs=2, validation_split=0.25, verbose=0)

held = {}
for name, tuner in tuners(overwrite=False).items():  # reloaded from the project directory
    trials = {}
    for trial_id, trial in tuner.oracle.trials.items():
        hp = trial.hyperparameters
        trials[trial_id] = {
            "status": trial.status,
            "score": trial.score,
            "best_step": trial.best_step,
            "active": {
                p.name: hp.values[p.name]
                for p in hp.space
                if hp.is_active(p) and p.name in hp.values
            },
            "tuner": {k: v for k, v in hp.values.items() if k.startswith("tuner/")},
            "val_loss": trial.metrics.get_best_value("val_loss"),
        }
    held[name] = trials
print(json.dumps(held))
