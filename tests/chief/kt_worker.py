"""A stock Keras Tuner worker: RandomSearch on tiny random data, pointed at a chief.

Run with KERASTUNER_TUNER_ID=worker0 KERASTUNER_ORACLE_IP=127.0.0.1
KERASTUNER_ORACLE_PORT=<port>: ``python kt_worker.py <directory> [EPOCHS [SECONDS [TUNER]]]``.
Each trial trains EPOCHS epochs (default 1), each padded to last at least SECONDS
(default 0), so that a test can make trials outlast a lease without burning CPU.  TUNER is
``random`` (``keras_tuner.RandomSearch``, the default) or ``hyperband``
(``keras_tuner.Hyperband``, which trains the epochs the chief assigns; workers of one
Hyperband search share DIRECTORY, where promoted trials find their parents' weights).
Every ``fit`` prints ``fit epochs=E initial_epoch=I``.  It runs trials until the chief
answers STOPPED, then exits 0.  Nothing here imports hpsearch.
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

    def on_train_begin(self, logs: object = None) -> None:
        self.first: int | None = None

    def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
        self.started = time.monotonic()
        if self.first is None:
            self.first = epoch
            print(f"fit epochs={self.params['epochs']} initial_epoch={epoch}", flush=True)

    def on_epoch_end(self, epoch: int, logs: object = None) -> None:
        time.sleep(max(0.0, self.seconds - (time.monotonic() - self.started)))


def main() -> int:
    epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    kind = sys.argv[4] if len(sys.argv) > 4 else "random"
    if kind == "hyperband":
        # The chief's study decides the brackets; these settings only shape the local
        # oracle Keras Tuner builds and does not use.  The directory is shared: no overwrite.
        tuner: keras_tuner.Tuner = keras_tuner.Hyperband(
            build, objective="val_loss", max_epochs=3, directory=sys.argv[1],
            project_name="interop",
        )  # fmt: skip
    else:
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
