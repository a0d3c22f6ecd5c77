"""A Vertex AI hyperparameter-tuning trial: the classic Keras MLP on MNIST.

The model of "Hands-On Machine Learning" (and of the Vertex AI tuning tutorial): an MLP
with ``n_hidden`` ReLU layers of ``n_neurons`` units, trained with SGD (with momentum) or
Adam. This file stands alone: copy it, change the model, keep the contract.

Contract (what Vertex AI and ``hpsearch worker`` both give a trial):

flags
    ``--learning_rate --n_hidden --n_neurons --optimizer [--momentum] --batch_size
    --epochs --dataset --seed --metric_tag``. Integers are parsed as ``int(float(s))``
    (Vertex prints them without ".0", other drivers may not). Unknown flags are logged
    and ignored, since a study may define parameters this script does not use.
env
    ``CLOUD_ML_TRIAL_ID`` and ``CLOUD_ML_HP_METRIC_FILE`` (read by ``hypertune``);
    ``AIP_MODEL_DIR`` (the trained model is saved as ``<AIP_MODEL_DIR>/1/saved_model.pb``,
    a layout TF Serving loads), ``AIP_CHECKPOINT_DIR`` (a checkpoint every epoch; a
    restarted attempt resumes after the last finished epoch) and
    ``AIP_TENSORBOARD_LOG_DIR`` (TensorBoard logs). Each may be a local path or ``gs://``.
    In a multi-fidelity study a promoted trial finds its parent's checkpoint there (the
    worker copies it) and so continues from the parent's last epoch up to ``--epochs``.
    ``TF_CONFIG``/``CLUSTER_SPEC`` may be present; one machine trains here.
metrics
    After every epoch the Keras log named by ``--metric_tag`` (default ``val_accuracy``)
    is reported with ``hypertune``, ``global_step`` = the number of finished epochs.
exit status
    0 on success; 2 for bad flags; 1 when training fails, e.g. the loss became NaN.

Training runs under ``tf.distribute.MirroredStrategy`` over all local GPUs (the CPU when
there are none); ``--batch_size`` is the batch per replica. Environment variables for
testing without GPUs:

``HPSEARCH_CPU_REPLICAS=N``
    split the CPU into N logical devices and mirror over them (the real multi-replica
    code path on a machine without GPUs; ignored where there are GPUs).
``HPSEARCH_TEST_EXIT_AFTER_EPOCH=N``
    kill this process with SIGKILL right after epoch N's checkpoint is written, the way a
    preempted machine dies, to test resuming.

Example::

    python trials/mnist.py --learning_rate=0.01 --n_hidden=2 --n_neurons=64 \\
        --optimizer=sgd --momentum=0.9 --batch_size=32 --epochs=5 --dataset=digits
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from typing import Any

logger = logging.getLogger("trials.mnist")

DATASETS = ("mnist", "fashion_mnist", "digits")
OPTIMIZERS = ("sgd", "adam")
MODEL_VERSION = "1"
# BackupAndRestore's own file names inside the checkpoint directory.
_TRAINING_METADATA = "training_metadata.json"
# Ours, next to them: the flags that shaped the checkpointed model.
_TRIAL_FLAGS = "trial_flags.json"
# Flags a resumed run may change without making the checkpoint meaningless.
_RESUMABLE_CHANGES = ("epochs", "metric_tag")


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, train, report, save; return the process exit status."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # TensorFlow logs every all-reduce of MirroredStrategy at INFO.
    logging.getLogger("tensorflow").setLevel(logging.WARNING)
    args = parse_args(argv)
    # Must run before TensorFlow initialises its devices.
    cpu_replicas = _env_int("HPSEARCH_CPU_REPLICAS")
    if cpu_replicas:
        _split_cpu(cpu_replicas)
    try:
        return train(args)
    except TrainingError as exc:
        logger.error("trial failed: %s", exc)
        return 1


class TrainingError(Exception):
    """Training cannot finish; the message says why and what to change."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse and check the trial flags; exit with status 2 and a clear message if bad."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learning_rate", type=_positive_float, default=1e-2)
    parser.add_argument("--n_hidden", type=_integer(minimum=0), default=2)
    parser.add_argument("--n_neurons", type=_integer(minimum=1), default=100)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd")
    parser.add_argument(
        "--momentum", type=_momentum, default=None, help="SGD momentum in [0, 1); sgd only"
    )
    parser.add_argument(
        "--batch_size", type=_integer(minimum=1), default=32, help="examples per replica"
    )
    parser.add_argument("--epochs", type=_integer(minimum=1), default=10)
    parser.add_argument("--dataset", choices=DATASETS, default="mnist")
    parser.add_argument("--seed", type=_integer(minimum=0), default=42)
    parser.add_argument(
        "--metric_tag",
        default="val_accuracy",
        help="the Keras log reported to hypertune each epoch, under this name",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        logger.warning("ignoring unknown flags: %s", " ".join(unknown))
    if args.momentum is not None and args.optimizer != "sgd":
        logger.warning("ignoring --momentum=%s: it applies to --optimizer=sgd only", args.momentum)
        args.momentum = None
    return args


def train(args: argparse.Namespace) -> int:
    """Train the MLP as the flags say; report each epoch; save the model. Returns 0."""
    import tensorflow as tf

    model_dir = os.environ.get("AIP_MODEL_DIR", "")
    checkpoint_dir = os.environ.get("AIP_CHECKPOINT_DIR", "")
    log_dir = os.environ.get("AIP_TENSORBOARD_LOG_DIR", "")
    trial_id = os.environ.get("CLOUD_ML_TRIAL_ID", "0")
    logger.info(
        "trial=%s flags=%s model_dir=%s checkpoint_dir=%s log_dir=%s",
        trial_id,
        json.dumps(vars(args), sort_keys=True),
        model_dir or "-",
        checkpoint_dir or "-",
        log_dir or "-",
    )
    _warn_if_multi_worker(os.environ.get("TF_CONFIG", ""))
    tf.keras.utils.set_random_seed(args.seed)

    strategy = make_strategy()
    replicas = strategy.num_replicas_in_sync
    global_batch = args.batch_size * replicas
    logger.info(
        "strategy=MirroredStrategy replicas=%d devices=%s global_batch_size=%d",
        replicas,
        ",".join(strategy.extended.worker_devices),
        global_batch,
    )

    (x_train, y_train), (x_valid, y_valid) = load_data(args.dataset)
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=args.seed, reshuffle_each_iteration=True)
        .batch(global_batch)
        .prefetch(tf.data.AUTOTUNE)
    )
    valid_ds = tf.data.Dataset.from_tensor_slices((x_valid, y_valid)).batch(global_batch)

    with strategy.scope():
        model = build_model(
            input_shape=x_train.shape[1:],
            n_hidden=args.n_hidden,
            n_neurons=args.n_neurons,
            optimizer=args.optimizer,
            learning_rate=args.learning_rate,
            momentum=args.momentum,
        )

    done_epochs = _finished_epochs(checkpoint_dir)
    _check_checkpoint_flags(checkpoint_dir, args, done_epochs)
    if done_epochs:
        logger.info("checkpoint found dir=%s finished_epochs=%d", checkpoint_dir, done_epochs)
    reporter = HypertuneReporter(args.metric_tag, trial_id, done_epochs)

    def fail_on_nan(epoch: int, logs: dict[str, Any] | None = None) -> None:
        loss = float((logs or {}).get("loss", 0.0))
        if not math.isfinite(loss):
            raise TrainingError(
                f"the loss became {loss} in epoch {epoch + 1}: training diverged; "
                f"lower --learning_rate (got {args.learning_rate})"
            )

    # TerminateOnNaN stops at the first bad batch; fail_on_nan then fails the trial before
    # the diverged epoch is checkpointed or reported.
    callbacks: list[Any] = [
        tf.keras.callbacks.TerminateOnNaN(),
        tf.keras.callbacks.LambdaCallback(on_epoch_end=fail_on_nan),
    ]
    if checkpoint_dir:
        # Keep the checkpoint after success too: Vertex keeps AIP_CHECKPOINT_DIR, and a
        # retry of a finished attempt then only re-reports and re-saves. The previous
        # epoch's copy is kept for a machine killed in the middle of writing the latest.
        callbacks.append(
            tf.keras.callbacks.BackupAndRestore(
                checkpoint_dir, double_checkpoint=True, delete_checkpoint=False
            )
        )
    if log_dir:
        callbacks.append(tf.keras.callbacks.TensorBoard(log_dir=log_dir))
    first_epoch: list[int] = []

    def log_start(epoch: int, logs: dict[str, Any] | None = None) -> None:
        # The truth about resuming: BackupAndRestore may fall back to its previous copy.
        if not first_epoch:
            first_epoch.append(epoch)
            if epoch:
                logger.info("resuming from checkpoint start_epoch=%d", epoch + 1)
            reporter.forget_after(epoch)

    callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_begin=log_start))
    # After BackupAndRestore: an epoch is reported only once its checkpoint is written.
    callbacks.append(tf.keras.callbacks.LambdaCallback(on_epoch_end=reporter.on_epoch_end))
    exit_after = _env_int("HPSEARCH_TEST_EXIT_AFTER_EPOCH")
    if exit_after:
        callbacks.append(_kill_after_epoch(exit_after))

    history = model.fit(
        train_ds,
        validation_data=valid_ds,
        epochs=args.epochs,
        callbacks=callbacks,
        shuffle=False,  # train_ds shuffles itself each epoch
        verbose=2,
    )
    if not history.history.get("loss"):
        # Every epoch had finished before this attempt: report the final value again.
        reporter.report_evaluation(model, valid_ds, step=done_epochs)

    if model_dir:
        export_path = _join(model_dir, MODEL_VERSION)
        model.export(export_path, format="tf_saved_model", verbose=False)
        logger.info("saved_model path=%s", export_path)
    logger.info("trial=%s done epochs=%d", trial_id, args.epochs)
    return 0


def make_strategy() -> Any:
    """MirroredStrategy over every local GPU, or the CPU's logical devices when split."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        cpus = tf.config.list_logical_devices("CPU")
        if len(cpus) > 1:
            return tf.distribute.MirroredStrategy([d.name for d in cpus])
    return tf.distribute.MirroredStrategy()


def build_model(
    input_shape: tuple[int, ...],
    n_hidden: int,
    n_neurons: int,
    optimizer: str,
    learning_rate: float,
    momentum: float | None,
) -> Any:
    """The compiled MLP: Flatten, n_hidden x Dense(n_neurons, relu), Dense(10, softmax)."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.Input(shape=input_shape), tf.keras.layers.Flatten()])
    for _ in range(n_hidden):
        model.add(tf.keras.layers.Dense(n_neurons, activation="relu"))
    model.add(tf.keras.layers.Dense(10, activation="softmax"))
    if optimizer == "sgd":
        opt = tf.keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum or 0.0)
    else:
        opt = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
    return model


def load_data(name: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(x_train, y_train), (x_valid, y_valid) as float32 images in [0, 1] and int labels.

    mnist and fashion_mnist hold out the last 5,000 training images for validation (the
    test set is never touched while tuning); digits (scikit-learn's bundled 8x8 images,
    no download) holds out a fixed 20%.
    """
    import numpy as np

    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images / 16.0).astype("float32")
        y = digits.target.astype("int32")
        order = np.random.default_rng(0).permutation(len(x))
        x, y = x[order], y[order]
        n_valid = len(x) // 5
        return (x[n_valid:], y[n_valid:]), (x[:n_valid], y[:n_valid])
    import tensorflow as tf

    loader = tf.keras.datasets.mnist if name == "mnist" else tf.keras.datasets.fashion_mnist
    (x_full, y_full), _ = loader.load_data()
    x_full = (x_full / 255.0).astype("float32")
    y_full = y_full.astype("int32")
    return (x_full[:-5000], y_full[:-5000]), (x_full[-5000:], y_full[-5000:])


class HypertuneReporter:
    """Reports one Keras log to hypertune after every epoch (via a LambdaCallback)."""

    def __init__(self, metric_tag: str, trial_id: str, done_epochs: int) -> None:
        import hypertune

        path = os.environ.get("CLOUD_ML_HP_METRIC_FILE", "")
        if path and not os.path.dirname(path):
            # hypertune calls os.makedirs("") for a bare file name, which fails.
            os.environ["CLOUD_ML_HP_METRIC_FILE"] = os.path.abspath(path)
        self.metric_tag = metric_tag
        self.hpt = hypertune.HyperTune()
        self._keep_earlier_reports(trial_id, done_epochs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.metric_tag not in logs:
            raise TrainingError(
                f"--metric_tag={self.metric_tag} is not a Keras log of this model; "
                f"choose one of {sorted(logs)}"
            )
        self._report(float(logs[self.metric_tag]), step=epoch + 1)

    def report_evaluation(self, model: Any, dataset: Any, step: int) -> None:
        """Evaluate the model and report the metric at ``step`` (a resumed, finished run).

        Nothing is reported when the metric file already holds ``step`` for this trial.
        """
        if any(str(e.get("global_step")) == str(step) for e in self.hpt.metrics_queue):
            logger.info("already reported metric=%s step=%d", self.metric_tag, step)
            return
        results = model.evaluate(dataset, return_dict=True, verbose=0)
        key = self.metric_tag.removeprefix("val_")
        if key not in results:
            raise TrainingError(
                f"--metric_tag={self.metric_tag} cannot be re-evaluated; choose one of "
                f"{sorted('val_' + k for k in results)}"
            )
        self._report(float(results[key]), step=step)

    def forget_after(self, step: int) -> None:
        """Drop earlier reports past ``step``: those epochs are about to be trained again."""
        kept = [e for e in self.hpt.metrics_queue if int(e.get("global_step", "0")) <= step]
        self.hpt.metrics_queue.clear()
        self.hpt.metrics_queue.extend(kept)

    def _report(self, value: float, step: int) -> None:
        if not math.isfinite(value):
            logger.warning(
                "not reporting metric=%s value=%s step=%d", self.metric_tag, value, step
            )
            return
        self.hpt.report_hyperparameter_tuning_metric(
            hyperparameter_metric_tag=self.metric_tag, metric_value=value, global_step=step
        )
        logger.info("reported metric=%s value=%.6g step=%d", self.metric_tag, value, step)

    def _keep_earlier_reports(self, trial_id: str, done_epochs: int) -> None:
        # hypertune rewrites its whole file from memory on every report; a resumed attempt
        # would otherwise erase the epochs its predecessor reported.
        if not done_epochs or not os.path.exists(self.hpt.metric_path):
            return
        with open(self.hpt.metric_path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                    step = int(entry.get("global_step", "0"))
                except ValueError:
                    continue
                if str(entry.get("trial")) == str(trial_id) and step <= done_epochs:
                    self.hpt.metrics_queue.append(entry)


def _kill_after_epoch(last_epoch: int) -> Any:
    """Test hook: a callback that SIGKILLs this process once ``last_epoch`` finished."""
    import tensorflow as tf

    def on_epoch_end(epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 == last_epoch:
            logger.warning("HPSEARCH_TEST_EXIT_AFTER_EPOCH=%d: killing this process", last_epoch)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)

    return tf.keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def _finished_epochs(checkpoint_dir: str) -> int:
    """Epochs finished by an earlier attempt, from BackupAndRestore's metadata file."""
    if not checkpoint_dir:
        return 0
    import tensorflow as tf

    path = _join(checkpoint_dir, _TRAINING_METADATA)
    if not tf.io.gfile.exists(path):
        return 0
    with tf.io.gfile.GFile(path) as f:
        return int(json.loads(f.read()).get("epoch", 0))


def _check_checkpoint_flags(checkpoint_dir: str, args: argparse.Namespace, done: int) -> None:
    """Refuse to resume a checkpoint written with other flags; record ours otherwise."""
    if not checkpoint_dir:
        return
    import tensorflow as tf

    ours = {k: v for k, v in sorted(vars(args).items()) if k not in _RESUMABLE_CHANGES}
    path = _join(checkpoint_dir, _TRIAL_FLAGS)
    if done and tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            theirs = json.loads(f.read())
        changed = {k: (theirs.get(k), v) for k, v in ours.items() if theirs.get(k) != v}
        if changed:
            diff = ", ".join(f"--{k} {old} -> {new}" for k, (old, new) in changed.items())
            raise TrainingError(
                f"{checkpoint_dir} holds a checkpoint of this trial trained with other flags "
                f"({diff}); a trial's flags must not change between attempts: use another "
                "AIP_CHECKPOINT_DIR or delete this one to start over"
            )
        return
    tf.io.gfile.makedirs(checkpoint_dir)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(ours, sort_keys=True))


def _warn_if_multi_worker(tf_config: str) -> None:
    try:
        cluster = json.loads(tf_config or "{}").get("cluster", {})
    except (ValueError, AttributeError):
        return
    machines = sum(len(tasks) for tasks in cluster.values() if isinstance(tasks, list))
    if machines > 1:
        logger.warning(
            "TF_CONFIG names machines=%d; this script trains on this machine only "
            "(MirroredStrategy); use MultiWorkerMirroredStrategy to train across machines",
            machines,
        )


def _split_cpu(n: int) -> None:
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )


def _join(base: str, name: str) -> str:
    # os.path.join would mangle gs:// on some platforms; AIP dirs end with "/".
    return base.rstrip("/") + "/" + name


def _env_int(name: str) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return 0
    try:
        return int(float(raw))
    except ValueError:
        sys.exit(f"{name} must be an integer, got {raw!r}")


def _integer(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}") from None
        if not value.is_integer():
            raise argparse.ArgumentTypeError(f"expects an integer, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expects an integer >= {minimum}, got {text!r}")
        return int(value)

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expects a finite number > 0, got {text!r}")
    return value


def _momentum(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects a number, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expects a number in [0, 1), got {text!r}")
    return value


if __name__ == "__main__":
    sys.exit(main())
