"""A stock Keras Tuner worker: RandomSearch on tiny random data, pointed at a chief.

Run with KERASTUNER_TUNER_ID=worker0 KERASTUNER_ORACLE_IP=127.0.0.1
KERASTUNER_ORACLE_PORT=<port>: ``python kt_worker.py <directory>``.  It runs trials until
the chief answers STOPPED, then exits 0.  Nothing here imports hpsearch.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import keras_tuner
import numpy as np


def build(hp: keras_tuner.HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.layers.Input((8,)),
            keras.layers.Dense(hp.Int("units", 4, 16), activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    lr = hp.Float("lr", 0.001, 0.1, sampling="log")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def main() -> int:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    tuner = keras_tuner.RandomSearch(
        build,
        objective="val_loss",
        max_trials=1000,  # the chief's budget decides
        directory=sys.argv[1],
        project_name="interop",
        overwrite=True,
    )
    tuner.search(x, y, validation_data=(x[:16], y[:16]), epochs=1, batch_size=32, verbose=0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
