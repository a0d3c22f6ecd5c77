"""The classic Keras MLP on MNIST tuned by a stock Keras Tuner tuner.

The hypermodel is the search space of "Hands-On Machine Learning": learning rate
(1e-4..1e-1, log), 0..10 hidden layers of 1..300 neurons (log), SGD or Adam, and an SGD
momentum that exists only when the optimizer is SGD. This file stands alone: copy it.

Alone, it tunes in this process (``--tuner random|bayesian``, ``--max_trials``; results
under ``--directory/--project_name``). Distributed, it is driven purely by Keras Tuner's
own environment variables, so the same file is a worker of ``hpsearch chief`` (or of a
Keras Tuner chief) unchanged::

    KERASTUNER_TUNER_ID=tuner0 KERASTUNER_ORACLE_IP=10.0.0.2 KERASTUNER_ORACLE_PORT=8000 \\
        python trials/keras_tuner_mnist.py --dataset mnist

Each model trains under ``tf.distribute.MirroredStrategy`` over all local GPUs (the CPU
when there are none). ``HPSEARCH_CPU_REPLICAS=N`` splits the CPU into N logical devices
and mirrors over them, for testing the multi-replica path without GPUs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

logger = logging.getLogger("trials.keras_tuner_mnist")


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and run the search; return the process exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tuner", choices=("random", "bayesian"), default="bayesian")
    parser.add_argument("--max_trials", type=_positive_int, default=20)
    parser.add_argument("--epochs", type=_positive_int, default=10)
    parser.add_argument("--batch_size", type=_positive_int, default=32, help="per replica")
    parser.add_argument("--dataset", choices=("mnist", "fashion_mnist", "digits"), default="mnist")
    parser.add_argument("--directory", default="keras_tuner")
    parser.add_argument("--project_name", default="mnist_mlp")
    parser.add_argument("--overwrite", action="store_true", help="start over, not resume")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    replicas = int(float(os.environ.get("HPSEARCH_CPU_REPLICAS") or 0))
    if replicas:
        _split_cpu(replicas)  # before TensorFlow initialises its devices
    return search(args)


def build_model(hp: Any) -> Any:
    """The hypermodel: Flatten, n_hidden x Dense(n_neurons, relu), Dense(10, softmax)."""
    import tensorflow as tf

    learning_rate = hp.Float("learning_rate", 1e-4, 1e-1, sampling="log")
    n_hidden = hp.Int("n_hidden", 0, 10)
    n_neurons = hp.Int("n_neurons", 1, 300, sampling="log")
    optimizer_name = hp.Choice("optimizer", ["sgd", "adam"])
    with hp.conditional_scope("optimizer", ["sgd"]):
        momentum = hp.Float("momentum", 0.0, 0.99)

    # No Input layer: the model is built on the first batch, so one hypermodel serves
    # 28x28 MNIST images and 8x8 digits alike.
    model = tf.keras.Sequential([tf.keras.layers.Flatten()])
    for _ in range(n_hidden):
        model.add(tf.keras.layers.Dense(n_neurons, activation="relu"))
    model.add(tf.keras.layers.Dense(10, activation="softmax"))
    if optimizer_name == "sgd":
        optimizer = tf.keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    else:
        optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(
        loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"]
    )
    return model


def search(args: argparse.Namespace) -> int:
    """Run the Keras Tuner search and log the best hyperparameters; returns 0."""
    import keras_tuner as kt

    (x_train, y_train), (x_valid, y_valid) = load_data(args.dataset)
    strategy = _make_strategy()
    logger.info(
        "tuner=%s tuner_id=%s oracle=%s:%s replicas=%d",
        args.tuner,
        os.environ.get("KERASTUNER_TUNER_ID", "-"),
        os.environ.get("KERASTUNER_ORACLE_IP", "-"),
        os.environ.get("KERASTUNER_ORACLE_PORT", "-"),
        strategy.num_replicas_in_sync,
    )
    tuner_class = kt.RandomSearch if args.tuner == "random" else kt.BayesianOptimization
    tuner = tuner_class(
        build_model,
        objective="val_accuracy",
        max_trials=args.max_trials,
        seed=args.seed,
        distribution_strategy=strategy,
        directory=args.directory,
        project_name=args.project_name,
        overwrite=args.overwrite,
    )
    tuner.search(
        x_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size * strategy.num_replicas_in_sync,
        validation_data=(x_valid, y_valid),
        verbose=2,
    )
    best = tuner.get_best_hyperparameters(1)
    if best:
        logger.info("best hyperparameters=%s", best[0].values)
    return 0


def load_data(name: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(x_train, y_train), (x_valid, y_valid): float32 images in [0, 1], int labels.

    mnist/fashion_mnist hold out the last 5,000 training images; digits (scikit-learn's
    bundled 8x8 images, no download) holds out a fixed 20%.
    """
    import numpy as np

    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(0).permutation(len(digits.images))
        x = (digits.images[order] / 16.0).astype("float32")
        y = digits.target[order].astype("int32")
        n_valid = len(x) // 5
        return (x[n_valid:], y[n_valid:]), (x[:n_valid], y[:n_valid])
    import tensorflow as tf

    loader = tf.keras.datasets.mnist if name == "mnist" else tf.keras.datasets.fashion_mnist
    (x_full, y_full), _ = loader.load_data()
    x_full = (x_full / 255.0).astype("float32")
    return (x_full[:-5000], y_full[:-5000]), (x_full[-5000:], y_full[-5000:])


def _make_strategy() -> Any:
    import tensorflow as tf

    cpus = tf.config.list_logical_devices("CPU")
    if not tf.config.list_physical_devices("GPU") and len(cpus) > 1:
        return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.MirroredStrategy()


def _split_cpu(n: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )


def _positive_int(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}") from None
    if not value.is_integer() or value < 1:
        raise argparse.ArgumentTypeError(f"expects an integer >= 1, got {text!r}")
    return int(value)


if __name__ == "__main__":
    sys.exit(main())
