"""Multi-fidelity search: best objective against total epochs spent, hpsearch vs its peers.

Runs side by side, on the same problems and seeds, with 1 or 8 trials in flight:

* ``hpsearch-hyperband`` -- hpsearch's ``hyperband`` (Keras Tuner's brackets, GP proposals),
  driven through the real :class:`hpsearch.oracle.Oracle` on an in-memory store;
* ``hpsearch-asha``      -- hpsearch's ``asha`` (asynchronous successive halving, GP);
* ``hpsearch-gp-median`` -- hpsearch's ``bayesian`` with the median stopping rule, every
  trial asked to train ``max_epochs`` and reporting each epoch;
* ``kt-hyperband``       -- Keras Tuner 1.4's ``HyperbandOracle``, driven directly;
* ``optuna-tpe-hb``      -- Optuna's TPESampler with its HyperbandPruner (min_resource 1,
  max_resource ``max_epochs``, reduction_factor 3), reporting each epoch.

Every method runs on a simulated cluster: ``--in-flight`` workers, each training one
epoch per time unit; an epoch is the unit of resource.  A promoted trial (Hyperband, ASHA)
continues its parent's training, so it costs only its new epochs, as with checkpoints.
The best-so-far value (the lowest loss any trained model reached, at any epoch) is
recorded against the epochs spent.  Problems (:func:`problems`): learning curves built on
Branin (2-d), Hartmann-6, Rosenbrock-4 and Ackley-5, whose early epochs rank the
configurations differently from the last ones (each configuration also has its own
learning speed), and ``digits-mlp``: a real Keras MLP on scikit-learn's digits (the loss is
1 - validation accuracy), tabulated: each configuration of a 320-point grid was trained
once with Keras for 27 epochs (``--tabulate-digits``; the curves are committed in
``benchmarks/data/``), a proposal is snapped to the nearest grid point, and a promotion
reads on along its curve, so it continues exactly as from a checkpoint.

Reported (``--report``): per problem and in-flight count, the median (and interquartile
range) over seeds of the best value at fractions of the resource cap; the resource each
method needs to reach Keras Tuner Hyperband's median final value (target for
``hpsearch-hyperband``: half of Keras Tuner's epochs or less); and a plot of the median
curves (``--plot``).  Each finished run is appended to ``--results`` as one JSON line and
skipped when the command runs again (resumable).

Usage::

    nice -n 19 python benchmarks/multi_fidelity.py --seeds 10 --in-flight 1 8
    python benchmarks/multi_fidelity.py --report-only
    python benchmarks/multi_fidelity.py --tabulate-digits --problems digits-mlp  # TensorFlow
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import heapq  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hpsearch.space import (  # noqa: E402
    CategoricalParam,
    DoubleParam,
    IntegerParam,
    Params,
    Scale,
    Space,
)

RESULTS = REPO / "benchmarks" / "results" / "multi_fidelity.jsonl"
#: The digits-mlp problem's learning curves (:func:`tabulate_digits`), committed.
DIGITS_CURVES = REPO / "benchmarks" / "data" / "digits_mlp_curves.jsonl"
REPORT = REPO / "benchmarks" / "results" / "multi_fidelity.md"
PLOT = REPO / "benchmarks" / "results" / "multi_fidelity.png"
METHODS = ("hpsearch-hyperband", "hpsearch-asha", "hpsearch-gp-median", "kt-hyperband",
           "optuna-tpe-hb")  # fmt: skip
MAX_EPOCHS = 27
FACTOR = 3
#: The resource cap of a run, in epochs: about three of Keras Tuner's Hyperband iterations
#: at max_epochs 27, factor 3.
CAP = 2400


# -- problems -------------------------------------------------------------------------------
@dataclass
class Problem:
    name: str
    space: Space
    #: loss(params, epoch) for epoch = 1..MAX_EPOCHS, lower is better
    loss: Callable[[Params, int], float]
    cap: int = CAP


def _curve(final: float, start_gap: float, speed: float, epoch: int) -> float:
    """A power-law learning curve: ``final + start_gap`` after one epoch, ``final`` after
    MAX_EPOCHS; ``speed`` in (0, 1] bends it (slow learners look worse early)."""
    exponent = 0.3 + 1.5 * speed
    progress = (epoch**-exponent - MAX_EPOCHS**-exponent) / (1 - MAX_EPOCHS**-exponent)
    return final + start_gap * progress


def _unit(params: Params, d: int) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(d)])  # type: ignore[arg-type]


def _synthetic(name: str, d: int, f: Callable[[np.ndarray], float], lo: float,
               hi: float, scale: float) -> Problem:  # fmt: skip
    space = Space(tuple(DoubleParam(f"x{i}", min=0.0, max=1.0) for i in range(d)))

    def loss(params: Params, epoch: int) -> float:
        u = _unit(params, d)
        final = f(lo + (hi - lo) * u) / scale
        # Each configuration's own learning speed and early gap: rank crossings.
        speed = 0.5 + 0.5 * math.sin(7.0 * u.sum() + 3.0 * u[0])
        gap = 0.5 + 0.4 * math.cos(5.0 * u[-1] - 2.0 * u.mean())
        return _curve(final, gap, speed, epoch)

    return Problem(name, space, loss)


def _branin(x: np.ndarray) -> float:
    x1, x2 = x
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10 - 0.397887)


def _branin_box(d: int) -> Callable[[np.ndarray], float]:
    def f(x: np.ndarray) -> float:  # x1 in [-5, 10], x2 in [0, 15]
        return _branin(np.array([x[0], x[1] + 5.0]))

    return f


_H_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                 [17, 8, 0.05, 10, 0.1, 14]])  # fmt: skip
_H_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                        [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650],
                        [4047, 8828, 8732, 5743, 1091, 381]])  # fmt: skip
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(x: np.ndarray) -> float:
    inner = np.sum(_H_A * (x - _H_P) ** 2, axis=1)
    return float(-np.sum(_H_ALPHA * np.exp(-inner)) + 3.322368)


def _rosenbrock(x: np.ndarray) -> float:
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _ackley(x: np.ndarray) -> float:
    d = len(x)
    return float(
        -20 * math.exp(-0.2 * math.sqrt(np.sum(x**2) / d))
        - math.exp(np.sum(np.cos(2 * math.pi * x)) / d)
        + 20
        + math.e
    )


class _DigitsMLP:
    """A Keras MLP on scikit-learn's digits, tabulated: every configuration of a grid was
    trained once for MAX_EPOCHS epochs (:func:`tabulate_digits`, real Keras training, one
    fixed seed) and its validation error after each epoch recorded in DIGITS_CURVES.  A
    configuration the search proposes is snapped to the nearest grid point (learning rate
    and width on a log scale); a promotion reads on along the same curve, exactly as a
    model continued from its checkpoint.  Tabulating, as LCBench and HPOBench do, turns a
    run of hours of training into seconds, so that every method runs 10 seeds."""

    space = Space(
        (
            DoubleParam("learning_rate", min=1e-4, max=1e-1, scale=Scale.LOG),
            IntegerParam("n_hidden", min=0, max=3),
            IntegerParam("n_neurons", min=8, max=128, scale=Scale.LOG),
            CategoricalParam("optimizer", values=("sgd", "adam")),
        )
    )
    learning_rates = tuple(float(v) for v in np.logspace(-4, -1, 10))
    widths = (8, 16, 32, 64, 128)

    def __init__(self) -> None:
        self._table: dict[tuple[float, int, int, str], list[float]] | None = None

    @classmethod
    def grid(cls) -> list[tuple[float, int, int, str]]:
        """(learning_rate, n_hidden, n_neurons, optimizer); no width without a hidden layer."""
        return [
            (lr, hidden, width, optimizer)
            for lr in cls.learning_rates
            for hidden in range(4)
            for width in (cls.widths if hidden else (0,))
            for optimizer in ("sgd", "adam")
        ]

    def snap(self, params: Params) -> tuple[float, int, int, str]:
        lr = float(params["learning_rate"])  # type: ignore[arg-type]
        hidden = int(params["n_hidden"])  # type: ignore[call-overload]
        width = int(params["n_neurons"])  # type: ignore[call-overload]
        return (
            min(self.learning_rates, key=lambda v: abs(math.log(v / lr))),
            hidden,
            min(self.widths, key=lambda v: abs(math.log(v / width))) if hidden else 0,
            str(params["optimizer"]),
        )

    def loss(self, params: Params, epoch: int) -> float:
        if self._table is None:
            self._table = _read_digits_curves()
            missing = len(self.grid()) - len(self._table)
            if missing:
                raise SystemExit(
                    f"{DIGITS_CURVES} lacks {missing} of the digits-mlp grid's curves: run "
                    "`python benchmarks/multi_fidelity.py --tabulate-digits` first"
                )
        return self._table[self.snap(params)][epoch - 1]


def _read_digits_curves() -> dict[tuple[float, int, int, str], list[float]]:
    table = {}
    if DIGITS_CURVES.exists():
        for line in DIGITS_CURVES.read_text().splitlines():
            r = json.loads(line)
            key = (float(r["learning_rate"]), int(r["n_hidden"]), int(r["n_neurons"]),
                   str(r["optimizer"]))  # fmt: skip
            table[key] = [float(v) for v in r["val_error"]]
    return table


def tabulate_digits() -> None:
    """Train every configuration of the digits-mlp grid missing from DIGITS_CURVES for
    MAX_EPOCHS epochs with Keras, appending its validation error after each epoch
    (resumable)."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = (x[order] / 16.0).astype("float32"), y[order]
    train, valid = (x[:1400], y[:1400]), (x[1400:], y[1400:])
    done = _read_digits_curves()
    todo = [key for key in _DigitsMLP.grid() if key not in done]
    DIGITS_CURVES.parent.mkdir(parents=True, exist_ok=True)
    for i, (lr, hidden, width, name) in enumerate(todo, 1):
        started = time.perf_counter()
        tf.keras.utils.set_random_seed(0)
        layers: list[Any] = [tf.keras.layers.Input((64,))]
        layers += [tf.keras.layers.Dense(width, activation="relu") for _ in range(hidden)]
        layers.append(tf.keras.layers.Dense(10, activation="softmax"))
        model = tf.keras.Sequential(layers)
        optimizer = (
            tf.keras.optimizers.SGD(lr, momentum=0.9)
            if name == "sgd"
            else tf.keras.optimizers.Adam(lr)
        )
        model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(*train, batch_size=64, epochs=MAX_EPOCHS, verbose=0,
                            validation_data=valid)  # fmt: skip
        errors = [round(1.0 - float(a), 6) for a in history.history["val_accuracy"]]
        record = {"learning_rate": lr, "n_hidden": hidden, "n_neurons": width,
                  "optimizer": name, "val_error": errors}  # fmt: skip
        with DIGITS_CURVES.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(f"[{i}/{len(todo)}] lr={lr:.2g} hidden={hidden} width={width} {name}: "
              f"val error {errors[0]:.3f} -> {errors[-1]:.3f} "
              f"({time.perf_counter() - started:.1f} s)", file=sys.stderr, flush=True)  # fmt: skip


def problems() -> dict[str, Problem]:
    suite = [
        _synthetic("lc-branin", 2, _branin_box(2), -5.0, 10.0, 30.0),
        _synthetic("lc-hartmann6", 6, _hartmann6, 0.0, 1.0, 3.3),
        _synthetic("lc-rosenbrock4", 4, _rosenbrock, -2.0, 2.0, 400.0),
        _synthetic("lc-ackley5", 5, _ackley, -5.0, 10.0, 20.0),
    ]
    digits = _DigitsMLP()
    suite.append(Problem("digits-mlp", digits.space, digits.loss))
    return {p.name: p for p in suite}


# -- the simulated cluster ------------------------------------------------------------------
@dataclass
class Job:
    params: Params
    first_epoch: int  # trains epochs first_epoch+1 .. last_epoch
    last_epoch: int
    handle: Any


class Method:
    """A search method on the simulated cluster: hands out jobs, hears each epoch."""

    def ask(self, worker: int) -> Job | str | None:
        """A job, None (nothing now: ask again after the next event) or "done"."""
        raise NotImplementedError

    def report(self, job: Job, epoch: int, loss: float) -> bool:
        """An epoch's loss; True: stop this job now."""
        return False

    def finish(self, job: Job, loss: float, stopped: bool) -> None:
        raise NotImplementedError


def simulate(method: Method, problem: Problem, workers: int, cap: int) -> list[tuple[int, float]]:
    """(epochs spent, best loss so far) after every epoch trained, until ``cap`` epochs."""
    spent, best, curve = 0, math.inf, []
    events: list[tuple[int, int, int]] = []  # (time, worker, epoch): an epoch ends
    jobs: dict[int, Job] = {}
    idle = list(range(workers))
    now = 0
    done = False
    while spent < cap:
        for worker in list(idle):
            if done:
                break
            job = method.ask(worker)
            if job == "done":
                done = True
                break
            if job is None or isinstance(job, str):
                continue
            idle.remove(worker)
            jobs[worker] = job
            heapq.heappush(events, (now + 1, worker, job.first_epoch + 1))
        if not events:
            break
        now, worker, epoch = heapq.heappop(events)
        job = jobs[worker]
        loss = problem.loss(job.params, epoch)
        spent += 1
        best = min(best, loss)
        curve.append((spent, best))
        stop = method.report(job, epoch, loss)
        if stop or epoch >= job.last_epoch:
            method.finish(job, loss, stopped=stop and epoch < job.last_epoch)
            del jobs[worker]
            idle.append(worker)
        else:
            heapq.heappush(events, (now + 1, worker, epoch + 1))
    return curve


class HpsearchMethod(Method):
    def __init__(self, problem: Problem, seed: int, algorithm: str) -> None:
        from hpsearch.oracle import Oracle
        from hpsearch.space import EarlyStopping, Fidelity, Goal, Metric, StudyConfig
        from hpsearch.store import Store

        self.store = Store("sqlite://")
        self.oracle = Oracle(self.store, hold_seconds=0.0)
        config = StudyConfig(
            name="mf",
            metric=Metric("loss", Goal.MINIMIZE),
            space=problem.space,
            algorithm=algorithm,
            lease_seconds=86400,
            seed=seed,
            fidelity=None if algorithm == "bayesian" else Fidelity(
                max_epochs=MAX_EPOCHS, factor=FACTOR, hyperband_iterations=100),
            early_stopping=EarlyStopping("median", min_trials=5, min_steps=1)
            if algorithm == "bayesian" else EarlyStopping(),
        )  # fmt: skip
        config = config.__class__.from_dict({**config.to_dict(), "budget": {
            "max_trials": 100000, "parallel_trials": 64}})  # fmt: skip
        self.oracle.create_study(config)

    def ask(self, worker: int) -> Job | str | None:
        from hpsearch.oracle import AskStatus

        for _ in range(200):  # the suggester is not running: refill in this thread
            answer = self.oracle.ask("mf", f"w{worker}", wait=0.0)
            if answer.status is AskStatus.DONE:
                return "done"
            if answer.trials:
                trial = answer.trials[0]
                rung = trial.fidelity
                first, last = (
                    (0, MAX_EPOCHS) if rung is None else (rung.initial_epoch, rung.epochs)
                )
                return Job(trial.params, first, last, trial)
            if not self.oracle.refill("mf"):  # the suggester thread's work, here
                return None
        return None

    def report(self, job: Job, epoch: int, loss: float) -> bool:
        trial = job.handle
        return self.oracle.report(
            "mf", trial.number, trial.attempt, epoch, {"loss": loss}
        ).should_stop

    def finish(self, job: Job, loss: float, stopped: bool) -> None:
        trial = job.handle
        if stopped:
            self.oracle.stop_trial("mf", trial.number, trial.attempt, value=loss)
        else:
            self.oracle.complete("mf", trial.number, trial.attempt, value=loss)


class KerasTunerHyperband(Method):
    def __init__(self, problem: Problem, seed: int) -> None:
        import keras_tuner as kt

        hp = kt.HyperParameters()
        for param in problem.space:
            if isinstance(param, DoubleParam):
                hp.Float(param.name, param.min, param.max,
                         sampling="log" if param.scale is Scale.LOG else "linear")  # fmt: skip
            elif isinstance(param, IntegerParam):
                hp.Int(param.name, param.min, param.max,
                       sampling="log" if param.scale is Scale.LOG else "linear")  # fmt: skip
            elif isinstance(param, CategoricalParam):
                hp.Choice(param.name, list(param.values))
        self.oracle = kt.oracles.HyperbandOracle(
            objective=kt.Objective("loss", "min"), max_epochs=MAX_EPOCHS, factor=FACTOR,
            hyperband_iterations=100, hyperparameters=hp, seed=seed,
        )  # fmt: skip
        self.directory = tempfile.mkdtemp(prefix="kt-mf-")
        self.oracle._set_project_dir(self.directory, "mf")
        self.names = problem.space.names

    def ask(self, worker: int) -> Job | str | None:
        with contextlib.redirect_stdout(io.StringIO()):  # its console display
            trial = self.oracle.create_trial(f"tuner{worker}")
        if trial.status == "STOPPED":
            return "done"
        if trial.status != "RUNNING":
            return None
        values = trial.hyperparameters.values
        params = {name: values[name] for name in self.names}
        return Job(params, values["tuner/initial_epoch"], values["tuner/epochs"], trial)

    def finish(self, job: Job, loss: float, stopped: bool) -> None:
        trial = job.handle
        self.oracle.update_trial(trial.trial_id, {"loss": loss})
        trial.status = "COMPLETED"
        with contextlib.redirect_stdout(io.StringIO()):
            self.oracle.end_trial(trial)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class OptunaTpeHyperband(Method):
    def __init__(self, problem: Problem, seed: int) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self.optuna = optuna
        self.study = optuna.create_study(
            direction="minimize",
            sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True),
            pruner=optuna.pruners.HyperbandPruner(
                min_resource=1, max_resource=MAX_EPOCHS, reduction_factor=FACTOR),
        )  # fmt: skip
        self.space = problem.space

    def ask(self, worker: int) -> Job:
        trial = self.study.ask()
        params: Params = {}
        for p in self.space:
            if isinstance(p, DoubleParam):
                params[p.name] = trial.suggest_float(
                    p.name, p.min, p.max, log=p.scale is Scale.LOG
                )
            elif isinstance(p, IntegerParam):
                params[p.name] = trial.suggest_int(p.name, int(p.min), int(p.max),
                                                   log=p.scale is Scale.LOG)  # fmt: skip
            elif isinstance(p, CategoricalParam):
                params[p.name] = trial.suggest_categorical(p.name, list(p.values))
        return Job(params, 0, MAX_EPOCHS, trial)

    def report(self, job: Job, epoch: int, loss: float) -> bool:
        job.handle.report(loss, epoch)
        return bool(job.handle.should_prune())

    def finish(self, job: Job, loss: float, stopped: bool) -> None:
        state = self.optuna.trial.TrialState.PRUNED if stopped else None
        if stopped:
            self.study.tell(job.handle, state=state)
        else:
            self.study.tell(job.handle, loss)


def run(method_name: str, problem: Problem, seed: int, workers: int) -> list[tuple[int, float]]:
    if method_name == "hpsearch-hyperband":
        method: Method = HpsearchMethod(problem, seed, "hyperband")
    elif method_name == "hpsearch-asha":
        method = HpsearchMethod(problem, seed, "asha")
    elif method_name == "hpsearch-gp-median":
        method = HpsearchMethod(problem, seed, "bayesian")
    elif method_name == "kt-hyperband":
        method = KerasTunerHyperband(problem, seed)
    elif method_name == "optuna-tpe-hb":
        method = OptunaTpeHyperband(problem, seed)
    else:
        raise SystemExit(f"unknown method {method_name!r}; choose from {', '.join(METHODS)}")
    try:
        return simulate(method, problem, workers, problem.cap)
    finally:
        close = getattr(method, "close", None)
        if close is not None:
            close()


# -- report ----------------------------------------------------------------------------------
def _best_at(curve: list[tuple[int, float]], epochs: int) -> float:
    best = math.inf
    for spent, value in curve:
        if spent > epochs:
            break
        best = value
    return best


def _epochs_to_reach(curve: list[tuple[int, float]], target: float) -> float:
    for spent, value in curve:
        if value <= target:
            return spent
    return math.inf


def _q(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    n = len(ordered)

    def at(f: float) -> float:
        return ordered[min(n - 1, max(0, round(f * (n - 1))))]

    return at(0.5), at(0.25), at(0.75)


def report(records: list[dict[str, Any]], out: Path, plot: Path | None) -> str:
    lines = [
        "# Multi-fidelity search: best loss against epochs spent",
        "",
        f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
        "`benchmarks/multi_fidelity.py` (see its docstring for the methods and problems). "
        f"max_epochs {MAX_EPOCHS}, factor {FACTOR}; a run stops at its problem's resource "
        f"cap. Medians over seeds, interquartile range in brackets.",
        "",
    ]
    cells = sorted({(r["problem"], r["in_flight"]) for r in records})
    curves_for_plot: dict[tuple[str, int], dict[str, list[tuple[int, float]]]] = {}
    for problem, in_flight in cells:
        rows = [r for r in records if r["problem"] == problem and r["in_flight"] == in_flight]
        cap = max(r["curve"][-1][0] for r in rows)
        seeds = len({r["seed"] for r in rows})
        lines += [f"## {problem}, {in_flight} in flight ({seeds} seeds, cap {cap} epochs)", ""]
        marks = [cap // 4, cap // 2, cap]
        lines.append("| method | " + " | ".join(f"best at {m} epochs" for m in marks)
                     + " | epochs to reach Keras Tuner Hyperband's final median |")  # fmt: skip
        lines.append("|---" * (len(marks) + 2) + "|")
        kt_final = [_best_at(r["curve"], cap) for r in rows if r["method"] == "kt-hyperband"]
        target = _q(kt_final)[0] if kt_final else math.nan
        for method in METHODS:
            mine = [r for r in rows if r["method"] == method]
            if not mine:
                continue
            cols = []
            for m in marks:
                med, lo, hi = _q([_best_at(r["curve"], m) for r in mine])
                cols.append(f"{med:.4g} [{lo:.3g} - {hi:.3g}]")
            reach = _q([_epochs_to_reach(r["curve"], target) for r in mine])[0]
            reach_text = "never" if math.isinf(reach) else f"{reach:.0f}"
            lines.append(f"| {method} | " + " | ".join(cols) + f" | {reach_text} |")
            grid = list(range(1, cap + 1, max(1, cap // 100)))
            curves_for_plot.setdefault((problem, in_flight), {})[method] = [
                (g, _q([_best_at(r["curve"], g) for r in mine])[0]) for g in grid
            ]
        lines.append("")
    text = "\n".join(lines) + "\n"
    out.write_text(text)
    if plot is not None and curves_for_plot:
        _plot(curves_for_plot, plot)
    return text


def _plot(curves: dict[tuple[str, int], dict[str, list[tuple[int, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = sorted(curves)
    cols = min(4, len(cells))
    rows = math.ceil(len(cells) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.4 * rows), squeeze=False)
    for ax, cell in zip(axes.flat, cells, strict=False):
        for method, points in curves[cell].items():
            xs = [p[0] for p in points if math.isfinite(p[1])]
            ys = [p[1] for p in points if math.isfinite(p[1])]
            ax.plot(xs, ys, label=method)
        ax.set_title(f"{cell[0]}, {cell[1]} in flight", fontsize=9)
        ax.set_xlabel("epochs spent")
        ax.set_ylabel("best loss (median)")
        ax.set_yscale("log")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--problems", nargs="+", default=None)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--tabulate-digits",
        action="store_true",
        help="train the digits-mlp grid's missing configurations with Keras first",
    )
    args = parser.parse_args(argv)
    if args.tabulate_digits:
        tabulate_digits()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore")
    suite = problems()
    names = args.problems or list(suite)
    done: set[tuple[str, str, int, int]] = set()
    records: list[dict[str, Any]] = []
    if args.results.exists():
        for line in args.results.read_text().splitlines():
            record = json.loads(line)
            records.append(record)
            done.add((record["problem"], record["method"], record["seed"], record["in_flight"]))
    if not args.report_only:
        for name in names:
            for in_flight in args.in_flight:
                for seed in range(args.seeds):
                    for method in args.methods:
                        key = (name, method, seed, in_flight)
                        if key in done:
                            continue
                        started = time.perf_counter()
                        curve = run(method, suite[name], seed, in_flight)
                        record = {"problem": name, "method": method, "seed": seed,
                                  "in_flight": in_flight, "curve": curve,
                                  "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
                        records.append(record)
                        with args.results.open("a") as handle:
                            handle.write(json.dumps(record) + "\n")
                        print(f"{name} in_flight={in_flight} seed={seed} {method}: "
                              f"best {curve[-1][1]:.4g} after {curve[-1][0]} epochs "
                              f"({record['seconds']} s)", file=sys.stderr, flush=True)  # fmt: skip
    print(report(records, args.report, args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
