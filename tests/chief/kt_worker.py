"""A stock Keras Tuner worker: RandomSearch on tiny random data, pointed at a chief.

Run with KERASTUNER_TUNER_ID=worker0 KERASTUNER_ORACLE_IP=127.0.0.1
KERASTUNER_ORACLE_PORT=<port>: ``python kt_worker.py <directory> [EPOCHS [SECONDS]]``.  Each
trial trains EPOCHS epochs (default 1), each padded to last at least SECONDS (default 0),
so that a test can make trials outlast a lease without burning CPU.  It runs trials until
the chief answers STOPPED, then exits 0.  Nothing here imports hpsearch.
"""

from __future__ import annotations

import os
import sys
import time

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


class _SlowEpochs(keras.callbacks.Callback):
    """Pads every epoch to ``seconds`` (sleeping: a real model would be computing)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.started = 0.0

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        self.started = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        time.sleep(max(0.0, self.seconds - (time.monotonic() - self.started)))


def main() -> int:
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
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
    tuner.search(
        x,
        y,
        validation_data=(x[:16], y[:16]),
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=[_SlowEpochs(seconds)],
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
