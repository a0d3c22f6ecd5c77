"""Search quality and latency of hpsearch's Bayesian optimisation against its peers.

Runs, side by side in one harness and on the same problems, seeds and budgets:

* ``hpsearch``   -- hpsearch.search.suggest, algorithm ``bayesian`` (the default);
* ``optuna-gp``  -- Optuna's GPSampler, default settings but ``deterministic_objective``
  (needs torch: ``pip install torch``; a CPU wheel is enough);
* ``optuna-tpe`` -- Optuna's TPESampler (constant liar when trials are in flight);
* ``kt-bo``      -- Keras Tuner's BayesianOptimizationOracle, driven directly
  (create_trial / update_trial / end_trial) in a temporary directory;
* ``random``     -- hpsearch's random search;
* ``hpsearch-full`` (not run by default) -- hpsearch with its GP conditioned on every
  finished trial instead of at most ``bayesian.MAX_TRAIN``: the reference for
  ``--budgets 1000`` (does the capped model stall where a full-history one improves?).

The suite (:func:`problems`) has smooth and multimodal continuous problems from 2 to 20
dimensions, spaces with log-scaled and integer parameters and categoricals, a
conditional space and two real machine-learning tasks (scikit-learn models on its
bundled data, validation loss).  Every method gets the same number of evaluations; with
``--batch 8`` it asks 8 trials before any of their results come back (synchronous
batches), with ``--batch 1`` it runs sequentially.

One *run* is (problem, trials in flight, method, seed) at the largest budget asked for;
it records the best value found after each budget of ``--budgets`` (none of the methods
reads its budget, so the best after 60 evaluations of a 200-evaluation run is what a
60-evaluation run finds).  Each finished run is appended as one JSON line to
``--results`` and skipped when the command is run again, so a long run can be stopped and
resumed, or spread over several invocations; ``--report-only`` writes the report from
what the file holds.  The report (``--report``) has, per budget and trials in flight, the
median simple regret and its interquartile range per problem and method, the mean rank
of each method over the problems, hpsearch's win rate against each peer (over every
problem and seed; a tie counts half), and the cells where hpsearch is behind Optuna's
GPSampler by more than GPSampler's interquartile range.

``--latency 500 2000`` measures one suggestion with that many finished trials and 8
pending (10 doubles) for hpsearch and GPSampler.

Usage::

    nice -n 19 python benchmarks/search_quality.py --seeds 10 --budgets 60 200 --jobs 2
    python benchmarks/search_quality.py --report-only
    python benchmarks/search_quality.py --problems branin --methods hpsearch random --seeds 2
"""

from __future__ import annotations

import os

# Single-threaded BLAS/torch everywhere: fair timings on a shared machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from hpsearch.search import Observation, suggest  # noqa: E402
from hpsearch.space import (  # noqa: E402
    Budget,
    CategoricalParam,
    Condition,
    DoubleParam,
    Goal,
    IntegerParam,
    Metric,
    Params,
    Scale,
    Space,
    StudyConfig,
)

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "search_quality.jsonl"
REPORT = HERE / "results" / "search_quality.md"
METHODS = ("hpsearch", "optuna-gp", "optuna-tpe", "kt-bo", "random")
PEERS = ("optuna-gp", "optuna-tpe", "kt-bo", "random")

logger = logging.getLogger("search_quality")


# -- problems ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    name: str
    kind: str  # what class of problem it stands for, for the report
    space: Space
    f: Callable[[Params], float]
    optimum: float  # minimum value (0 for the ML tasks: their regret is the loss itself)


def _box(d: int, lo: float, hi: float) -> Space:
    return Space(tuple(DoubleParam(f"x{i}", min=lo, max=hi) for i in range(d)))


def _vector(p: Params, d: int) -> np.ndarray:
    return np.array([float(p[f"x{i}"]) for i in range(d)])  # type: ignore[arg-type]


def branin(p: Params) -> float:
    x1, x2 = float(p["x1"]), float(p["x2"])  # type: ignore[arg-type]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
     [17, 8, 0.05, 10, 0.1, 14]]
)  # fmt: skip
_H_P = 1e-4 * np.array(
    [[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]]
)  # fmt: skip
_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(p: Params) -> float:
    x = _vector(p, 6)
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def ackley(x: np.ndarray) -> float:
    """Multimodal, a funnel to 0 at the origin (on [-5, 10]^d, as in TuRBO's paper, and on
    its usual domain [-32.768, 32.768]^d)."""
    d = len(x)
    return float(
        -20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d))
        - np.exp(np.sum(np.cos(2 * np.pi * x)) / d)
        + 20.0
        + math.e
    )


def rosenbrock(x: np.ndarray) -> float:
    """Smooth, a curved valley; 0 at (1, ..., 1)."""
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


def styblinski_tang(x: np.ndarray) -> float:
    """2^d local minima; the global one at x_i = -2.9035 (value -39.166 d)."""
    return float(0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x))


def michalewicz(x: np.ndarray) -> float:
    """Steep narrow valleys (m = 10) on [0, pi]^d; -9.66015 at d = 10."""
    i = np.arange(1, len(x) + 1)
    return float(-np.sum(np.sin(x) * np.sin(i * x**2 / np.pi) ** 20))


def griewank(x: np.ndarray) -> float:
    """A bowl with a ripple; 0 at the origin (domain [-50, 100]^d: off-centre)."""
    i = np.arange(1, len(x) + 1)
    return float(1.0 + np.sum(x**2) / 4000.0 - np.prod(np.cos(x / np.sqrt(i))))


def levy(x: np.ndarray) -> float:
    """Multimodal; 0 at (1, ..., 1) on [-10, 10]^d."""
    w = 1.0 + (x - 1.0) / 4.0
    head = math.sin(math.pi * w[0]) ** 2
    body = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(np.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + math.sin(2.0 * math.pi * w[-1]) ** 2)
    return float(head + body + tail)


def _continuous(
    name: str, kind: str, fn: Callable[[np.ndarray], float], d: int, lo: float, hi: float,
    optimum: float,
) -> Problem:  # fmt: skip
    return Problem(name, kind, _box(d, lo, hi), lambda p: fn(_vector(p, d)), optimum)


_OPT = {"adam": (-3.0, 0.0), "rmsprop": (-3.5, 0.05), "sgd": (-1.0, 0.15)}


def mixed(p: Params) -> float:
    """A training-loss-like surface: each optimiser has its own best learning rate.

    Minimum 0 at optimizer=adam, lr=1e-3, weight_decay=1e-4, units=256, layers=3.
    """
    log_lr_star, base = _OPT[str(p["optimizer"])]
    d_lr = math.log10(float(p["lr"])) - log_lr_star  # type: ignore[arg-type]
    d_wd = math.log10(float(p["weight_decay"])) + 4.0  # type: ignore[arg-type]
    d_units = math.log2(int(p["units"])) - 8.0  # type: ignore[call-overload]
    d_layers = int(p["layers"]) - 3  # type: ignore[call-overload]
    return (
        base
        + 0.5 * d_lr**2
        + 0.15 * d_wd**2
        + 0.1 * d_lr * d_wd
        + 0.08 * d_units**2
        + 0.05 * d_layers**2
        + 0.04 * d_layers * d_units
    )


_MIXED_SHIFT = np.array([1.3, -0.7, 2.1, 0.4, -1.6, 0.9])
_MIXED_CHOICE = {"a": 0.0, "b": 0.6, "c": 1.1, "d": 0.3}


def mixed_ackley(p: Params) -> float:
    """Ackley over 6 doubles (two log-scaled) and 4 integers, plus two categoricals
    that shift it: 12 parameters, minimum 0 at the shift, ``c1 = a`` and ``c2 = on``."""
    x = np.array(
        [float(p[f"x{i}"]) for i in range(4)]  # type: ignore[arg-type]
        + [math.log2(float(p["s0"])), math.log2(float(p["s1"]))]  # type: ignore[arg-type]
    )
    k = np.array([int(p[f"k{i}"]) for i in range(4)], dtype=float)  # type: ignore[call-overload]
    z = np.concatenate([x - _MIXED_SHIFT, (k - 3.0) / 2.0])
    return ackley(z) + _MIXED_CHOICE[str(p["c1"])] + (0.0 if p["c2"] == "on" else 0.8)


def conditional(p: Params) -> float:
    """A network-shaped conditional space: the optimiser's own parameters exist only for
    it, and a layer's width only when the network has that layer.  Minimum 0: adam with
    lr 10^-2.5, beta1 0.9, 3 layers of widths 128, 64, 32 (a 4th layer costs 0.1)."""
    opt = str(p["optimizer"])
    log_lr = math.log10(float(p["lr"]))  # type: ignore[arg-type]
    if opt == "sgd":
        m = float(p["momentum"])  # type: ignore[arg-type]
        loss = 0.3 + 0.4 * (log_lr + 1.5) ** 2 + 2.0 * (m - 0.9) ** 2
    elif opt == "adam":
        b1 = float(p["beta1"])  # type: ignore[arg-type]
        loss = 0.4 * (log_lr + 2.5) ** 2 + 3.0 * (b1 - 0.9) ** 2
    else:
        rho = float(p["rho"])  # type: ignore[arg-type]
        loss = 0.15 + 0.4 * (log_lr + 3.0) ** 2 + 1.0 * (rho - 0.95) ** 2
    layers = int(p["layers"])  # type: ignore[call-overload]
    targets = (7.0, 6.0, 5.0, 5.0)
    for i in range(layers):
        loss += 0.05 * (math.log2(int(p[f"units{i}"])) - targets[i]) ** 2  # type: ignore[call-overload]
    loss += 0.1 * abs(layers - 3) + (0.1 if layers == 4 else 0.0)
    return loss


def _when(parent: str, *values: object) -> tuple[Condition, ...]:
    return (Condition(parent, values),)  # type: ignore[arg-type]


def _conditional_space() -> Space:
    layer_params = [
        IntegerParam(
            f"units{i}",
            min=8,
            max=512,
            scale=Scale.LOG,
            conditions=_when("layers", *range(i + 1, 5)),
        )
        for i in range(4)
    ]
    return Space(
        (
            CategoricalParam("optimizer", values=("sgd", "adam", "rmsprop")),
            DoubleParam("lr", min=1e-5, max=1.0, scale=Scale.LOG),
            DoubleParam("momentum", min=0.0, max=0.99, conditions=_when("optimizer", "sgd")),
            DoubleParam("beta1", min=0.5, max=0.999, conditions=_when("optimizer", "adam")),
            DoubleParam("rho", min=0.5, max=0.999, conditions=_when("optimizer", "rmsprop")),
            IntegerParam("layers", min=1, max=4),
            *layer_params,
        )
    )  # fmt: skip


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    split = train_test_split(
        X / 16.0, y, train_size=500, test_size=500, random_state=0, stratify=y
    )
    return split[0], split[1], split[2], split[3]


def mlp_digits(p: Params) -> float:
    """Validation log loss of a scikit-learn MLP on 500 digits (12 epochs of Adam: a
    small, cheap network, so that the suite runs in hours on two cores)."""
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    X_train, X_valid, y_train, y_valid = _digits()
    width = int(p["units"])  # type: ignore[call-overload]
    layers = (width,) * int(p["layers"])  # type: ignore[call-overload]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MLPClassifier(
            hidden_layer_sizes=layers,
            activation=str(p["activation"]),  # type: ignore[arg-type]
            alpha=float(p["alpha"]),  # type: ignore[arg-type]
            learning_rate_init=float(p["lr"]),  # type: ignore[arg-type]
            batch_size=int(p["batch_size"]),  # type: ignore[call-overload]
            max_iter=12,
            random_state=0,
        ).fit(X_train, y_train)
    return float(log_loss(y_valid, model.predict_proba(X_valid), labels=np.arange(10)))


@functools.cache
def _diabetes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    split = train_test_split(X, (y - y.mean()) / y.std(), test_size=0.4, random_state=0)
    return split[0], split[1], split[2], split[3]


def kernel_ridge_diabetes(p: Params) -> float:
    """Validation mean squared error (standardised target) of kernel ridge regression
    on scikit-learn's diabetes data; the polynomial kernel's degree and offset exist only
    for it."""
    from sklearn.kernel_ridge import KernelRidge

    X_train, X_valid, y_train, y_valid = _diabetes()
    kernel = str(p["kernel"])
    options: dict[str, Any] = {"alpha": float(p["alpha"])}  # type: ignore[arg-type]
    if kernel == "poly":
        options.update(degree=int(p["degree"]), coef0=float(p["coef0"]))  # type: ignore[call-overload,arg-type]
    options["gamma"] = float(p["gamma"])  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KernelRidge(kernel=kernel, **options).fit(X_train, y_train)
        error = float(np.mean((model.predict(X_valid) - y_valid) ** 2))
    return error if math.isfinite(error) else 1e3


def problems() -> dict[str, Problem]:
    """The suite, by name (see the module doc)."""
    mixed_ackley_space = Space(
        (
            *(DoubleParam(f"x{i}", min=-5.0, max=10.0) for i in range(4)),
            DoubleParam("s0", min=2.0**-5, max=2.0**10, scale=Scale.LOG),
            DoubleParam("s1", min=2.0**-5, max=2.0**10, scale=Scale.LOG),
            *(IntegerParam(f"k{i}", min=0, max=12) for i in range(4)),
            CategoricalParam("c1", values=("a", "b", "c", "d")),
            CategoricalParam("c2", values=("off", "on")),
        )
    )
    suite = [
        Problem(
            "branin",
            "smooth 2-d",
            Space((DoubleParam("x1", min=-5.0, max=10.0), DoubleParam("x2", min=0.0, max=15.0))),
            branin,
            0.397887357729739,
        ),
        Problem("hartmann6", "multimodal 6-d", _box(6, 0.0, 1.0), hartmann6, -3.322368011391339),
        _continuous("styblinski-tang-8", "multimodal 8-d", styblinski_tang, 8, -5.0, 5.0,
                    -39.16616570377142 * 8),
        _continuous("rosenbrock-10", "smooth 10-d", rosenbrock, 10, -5.0, 10.0, 0.0),
        _continuous("ackley-10", "multimodal 10-d", ackley, 10, -5.0, 10.0, 0.0),
        # Ackley's usual domain: the funnel is a small part of a rippled plateau.
        _continuous("ackley-10-wide", "multimodal 10-d, wide", ackley, 10, -32.768, 32.768, 0.0),
        _continuous("michalewicz-10", "multimodal 10-d", michalewicz, 10, 0.0, math.pi, -9.66015),
        _continuous("levy-12", "multimodal 12-d", levy, 12, -10.0, 10.0, 0.0),
        _continuous("griewank-16", "smooth+ripple 16-d", griewank, 16, -50.0, 100.0, 0.0),
        _continuous("ackley-20", "multimodal 20-d", ackley, 20, -5.0, 10.0, 0.0),
        Problem(
            "mixed",
            "log doubles, ints, categorical",
            Space(
                (
                    DoubleParam("lr", min=1e-5, max=1.0, scale=Scale.LOG),
                    DoubleParam("weight_decay", min=1e-7, max=1e-1, scale=Scale.LOG),
                    IntegerParam("units", min=8, max=1024, scale=Scale.LOG),
                    IntegerParam("layers", min=1, max=6),
                    CategoricalParam("optimizer", values=("sgd", "adam", "rmsprop")),
                )
            ),
            mixed,
            0.0,
        ),
        Problem("mixed-ackley-12", "12-d mixed", mixed_ackley_space, mixed_ackley, 0.0),
        Problem("conditional", "conditional", _conditional_space(), conditional, 0.0),
        Problem(
            "mlp-digits",
            "ML: MLP on digits (log loss)",
            Space(
                (
                    DoubleParam("lr", min=1e-4, max=1e-1, scale=Scale.LOG),
                    DoubleParam("alpha", min=1e-6, max=1.0, scale=Scale.LOG),
                    IntegerParam("units", min=4, max=64, scale=Scale.LOG),
                    IntegerParam("layers", min=1, max=2),
                    IntegerParam("batch_size", min=32, max=256, scale=Scale.LOG),
                    CategoricalParam("activation", values=("relu", "tanh", "logistic")),
                )
            ),
            mlp_digits,
            0.0,
        ),
        Problem(
            "kernel-ridge",
            "ML: kernel ridge, conditional (MSE)",
            Space(
                (
                    CategoricalParam("kernel", values=("rbf", "laplacian", "poly")),
                    DoubleParam("alpha", min=1e-4, max=10.0, scale=Scale.LOG),
                    DoubleParam("gamma", min=1e-4, max=1.0, scale=Scale.LOG),
                    IntegerParam("degree", min=2, max=4, conditions=_when("kernel", "poly")),
                    DoubleParam("coef0", min=0.0, max=5.0, conditions=_when("kernel", "poly")),
                )
            ),
            kernel_ridge_diabetes,
            0.0,
        ),
    ]  # fmt: skip
    return {p.name: p for p in suite}


# -- methods: each runs one optimisation and returns the value of every evaluation -----------
def run_hpsearch(
    problem: Problem, seed: int, budget: int, batch: int, algorithm: str
) -> list[float]:
    config = StudyConfig(
        name=f"bench-{problem.name}",
        metric=Metric("loss", Goal.MINIMIZE),
        space=problem.space,
        algorithm=algorithm,
        budget=Budget(max_trials=budget, parallel_trials=batch),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    history: list[Observation] = []
    while len(history) < budget:
        asked = suggest(config, history, [], min(batch, budget - len(history)), rng)
        if not asked:
            break
        history.extend(Observation(p, problem.f(p)) for p in asked)
    return [o.value for o in history]


def run_optuna(problem: Problem, seed: int, budget: int, batch: int, kind: str) -> list[float]:
    import optuna

    # Define-by-run, so conditional parameters are asked only when active (as a user's
    # objective would); the same helper hpsearch's own Optuna algorithms use.
    from hpsearch.search.optuna_samplers import _sample

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler: Any
    if kind == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=batch > 1)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    values: list[float] = []
    while len(values) < budget:
        asked = [study.ask() for _ in range(min(batch, budget - len(values)))]
        batch_params = [_sample(problem.space, trial) for trial in asked]
        for trial, params in zip(asked, batch_params, strict=True):
            value = problem.f(params)
            study.tell(trial, value)
            values.append(value)
    return values


def run_keras_tuner(problem: Problem, seed: int, budget: int, batch: int) -> list[float]:
    # Keras Tuner's oracle prints a table per trial: keep the benchmark's output readable.
    with contextlib.redirect_stdout(io.StringIO()):
        return _run_keras_tuner(problem, seed, budget, batch)


def _run_keras_tuner(problem: Problem, seed: int, budget: int, batch: int) -> list[float]:
    import keras_tuner as kt

    from hpsearch.space.keras_tuner import space_to_keras_tuner, values_from_keras_tuner

    hp = kt.HyperParameters.from_config(space_to_keras_tuner(problem.space))
    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective("loss", "min"), max_trials=budget, hyperparameters=hp, seed=seed
    )
    directory = tempfile.mkdtemp(prefix="kt-bench-")
    try:
        oracle._set_project_dir(directory, f"{problem.name}-{seed}-{batch}")
        values: list[float] = []
        while len(values) < budget:
            trials = []
            for worker in range(min(batch, budget - len(values))):
                trial = oracle.create_trial(f"tuner{worker}")
                if trial.status != "RUNNING":
                    break
                trials.append(trial)
            if not trials:
                break
            for trial in trials:
                params = values_from_keras_tuner(problem.space, trial.hyperparameters.values)
                value = problem.f(params)
                values.append(value)
                oracle.update_trial(trial.trial_id, {"loss": value})
                trial.status = "COMPLETED"
                oracle.end_trial(trial)
        return values
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_method(method: str, problem: Problem, seed: int, budget: int, batch: int) -> list[float]:
    if method == "hpsearch-full":
        # The reference for large budgets: the same GP conditioned on every finished trial
        # (no MAX_TRAIN subset), in this worker process only.
        from hpsearch.search import bayesian

        bayesian.MAX_TRAIN = 10**9
        return run_hpsearch(problem, seed, budget, batch, "bayesian")
    if method.startswith("hpsearch"):  # "hpsearch" or a labelled variant ("hpsearch-base")
        return run_hpsearch(problem, seed, budget, batch, "bayesian")
    if method == "random":
        return run_hpsearch(problem, seed, budget, batch, "random")
    if method == "optuna-gp":
        return run_optuna(problem, seed, budget, batch, "gp")
    if method == "optuna-tpe":
        return run_optuna(problem, seed, budget, batch, "tpe")
    if method == "kt-bo":
        return run_keras_tuner(problem, seed, budget, batch)
    raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def _run(
    name: str, batch: int, method: str, seed: int, budgets: tuple[int, ...]
) -> dict[str, Any]:
    """One run, in a worker process: its record for the results file."""
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    if method == "optuna-gp":
        import torch

        torch.set_num_threads(1)
    problem = problems()[name]
    started = time.perf_counter()
    values = run_method(method, problem, seed, max(budgets), batch)
    spent = time.perf_counter() - started
    best = np.minimum.accumulate(np.array(values, dtype=float))
    return {
        "problem": name,
        "batch": batch,
        "method": method,
        "seed": seed,
        "budget": max(budgets),
        "regret": {str(b): max(float(best[b - 1]) - problem.optimum, 0.0) for b in budgets},
        # The best-so-far regret every 10 evaluations, for convergence plots.
        "trace": [max(float(v) - problem.optimum, 0.0) for v in best[9::10]],
        "seconds": round(spent, 2),
    }


# -- latency ----------------------------------------------------------------------------------
def latency(
    sizes: Sequence[int], repeats: int, optuna_repeats: int, methods: Sequence[str]
) -> dict[tuple[str, int], list[float]]:
    """Seconds per suggestion with ``size`` finished trials and 8 pending (10 doubles)."""
    space = _box(10, 0.0, 1.0)
    out: dict[tuple[str, int], list[float]] = {}
    for size in sizes:
        rng = np.random.default_rng(size)
        history = []
        for _ in range(size):
            params = space.sample(rng)
            x = _vector(params, 10)
            history.append(
                Observation(params, float(np.sum((x - 0.3) ** 2) + 0.1 * np.sin(9 * x).sum()))
            )
        pending = [space.sample(rng) for _ in range(8)]
        config = StudyConfig(
            name="latency", metric=Metric("loss", Goal.MINIMIZE), space=space, seed=0
        )
        suggest(config, history, pending, 1, np.random.default_rng(0))  # warm imports
        times = []
        for r in range(repeats):
            started = time.perf_counter()
            suggest(config, history, pending, 1, np.random.default_rng(r))
            times.append(time.perf_counter() - started)
        out[("hpsearch", size)] = times
        logger.warning("latency hpsearch trials=%d median=%.3fs", size, np.median(times))
        if "optuna-gp" in methods:
            out[("optuna-gp", size)] = _optuna_latency(space, history, pending, optuna_repeats)
            logger.warning(
                "latency optuna-gp trials=%d median=%.3fs",
                size,
                np.median(out[("optuna-gp", size)]),
            )
    return out


def _optuna_latency(
    space: Space, history: list[Observation], pending: list[Params], repeats: int
) -> list[float]:
    import optuna
    import torch

    from hpsearch.search.optuna_samplers import _frozen

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    times = []
    for r in range(repeats):
        # A fresh sampler each repeat: Optuna gets no warm start from an earlier call.
        study = optuna.create_study(
            direction="minimize",
            sampler=optuna.samplers.GPSampler(seed=r, deterministic_objective=True),
        )
        study.add_trials([_frozen(optuna, space, o.params, o.value) for o in history])
        study.add_trials([_frozen(optuna, space, p, None) for p in pending])
        started = time.perf_counter()
        trial = study.ask()
        for param in space:
            trial.suggest_float(param.name, 0.0, 1.0)
        times.append(time.perf_counter() - started)
    return times


# -- results file -----------------------------------------------------------------------------
RunKey = tuple[str, int, str, int]  # problem, batch, method, seed


def load_runs(path: Path) -> dict[RunKey, dict[str, Any]]:
    """The runs recorded in ``path`` (the longest one where a run was recorded twice)."""
    runs: dict[RunKey, dict[str, Any]] = {}
    if not path.exists():
        return runs
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = (record["problem"], int(record["batch"]), record["method"], int(record["seed"]))
        except (ValueError, KeyError) as error:
            raise SystemExit(
                f"{path}:{number}: not a run record ({error}); fix or remove it"
            ) from None
        if key not in runs or record["budget"] > runs[key]["budget"]:
            runs[key] = record
    return runs


def _todo(
    runs: dict[RunKey, dict[str, Any]],
    names: Sequence[str],
    batches: Sequence[int],
    methods: Sequence[str],
    seeds: Sequence[int],
    budgets: tuple[int, ...],
) -> list[RunKey]:
    """Runs still to do, seed by seed (an interrupted invocation leaves whole seeds)."""
    return [
        (name, batch, method, seed)
        for seed in seeds
        for name in names
        for batch in batches
        for method in methods
        if (name, batch, method, seed) not in runs
        or not all(str(b) in runs[(name, batch, method, seed)]["regret"] for b in budgets)
    ]


# -- report -----------------------------------------------------------------------------------
def cell_regrets(
    runs: dict[RunKey, dict[str, Any]], name: str, batch: int, method: str, budget: int,
    seeds: Sequence[int],
) -> np.ndarray | None:  # fmt: skip
    """Regrets of every seed, or None when a seed is missing."""
    out = []
    for seed in seeds:
        record = runs.get((name, batch, method, seed))
        if record is None or str(budget) not in record["regret"]:
            return None
        out.append(record["regret"][str(budget)])
    return np.array(out)


def _fmt(x: float) -> str:
    return f"{x:.2g}" if x != 0 else "0"


def report(
    runs: dict[RunKey, dict[str, Any]],
    names: Sequence[str],
    batches: Sequence[int],
    methods: Sequence[str],
    seeds: Sequence[int],
    budgets: Sequence[int],
) -> str:
    suite = problems()
    ours = methods[0]
    lines = [
        "# Search quality: hpsearch vs Optuna GPSampler / TPE, Keras Tuner BO, random",
        "",
        f"Median simple regret over seeds {seeds[0]}..{seeds[-1]} (best value found minus "
        "the optimum; for the ML tasks the validation loss itself), lower is better; "
        "[first - third quartile]. *in flight 8* = 8 trials asked before any of their "
        "results come back. Bold: best median of the row. A cell is reported only when "
        "every seed of it has run.  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} logical CPUs shared with other jobs; BLAS single-threaded.",
        "",
    ]
    header = len(lines)
    summary: list[str] = []
    for budget in budgets:
        for batch in batches:
            cells: dict[tuple[str, str], np.ndarray] = {}
            for name in names:
                for method in methods:
                    r = cell_regrets(runs, name, batch, method, budget, seeds)
                    if r is not None:
                        cells[(name, method)] = r
            shown = [m for m in methods if any((n, m) in cells for n in names)]
            complete = [n for n in names if all((n, m) in cells for m in shown)]
            if not shown or not complete:
                continue
            lines += [f"## Budget {budget}, {batch} in flight", ""]
            lines.append("| problem | " + " | ".join(shown) + " |")
            lines.append("|---" * (1 + len(shown)) + "|")
            ranks: dict[str, list[float]] = {m: [] for m in shown}
            lead = 0
            behind: list[str] = []
            for name in complete:
                medians = {m: float(np.median(cells[(name, m)])) for m in shown}
                best = min(medians.values())
                row = []
                for m in shown:
                    q1, q3 = np.percentile(cells[(name, m)], [25, 75])
                    text = f"{_fmt(medians[m])} [{_fmt(q1)} - {_fmt(q3)}]"
                    row.append(f"**{text}**" if medians[m] == best else text)
                lines.append(f"| {name} ({suite[name].kind}) | " + " | ".join(row) + " |")
                order = sorted(medians.values())
                for m in shown:
                    # Average rank over ties.
                    first = order.index(medians[m])
                    ties = order.count(medians[m])
                    ranks[m].append(first + (ties + 1) / 2)
                lead += medians.get(ours, math.inf) == best
                if ours in medians and "optuna-gp" in medians:
                    q1, q3 = np.percentile(cells[(name, "optuna-gp")], [25, 75])
                    if medians[ours] > medians["optuna-gp"] + (q3 - q1):
                        behind.append(name)
            lines.append(
                "| **mean rank** | "
                + " | ".join(f"**{np.mean(ranks[m]):.2f}**" for m in shown)
                + " |"
            )
            lines.append("")
            if ours in shown:
                wins = []
                for peer in shown:
                    if peer == ours:
                        continue
                    won = total = 0.0
                    for name in complete:
                        a, b = cells[(name, ours)], cells[(name, peer)]
                        won += float(np.sum(a < b) + 0.5 * np.sum(a == b))
                        total += len(a)
                    wins.append(f"{peer} {won / total:.0%}")
                lines.append(
                    f"{ours} has the best median in {lead} of {len(complete)} problems; "
                    f"wins per (problem, seed) against: {', '.join(wins)}.  "
                )
                lines.append(
                    "Behind GPSampler's median by more than its interquartile range: "
                    + (", ".join(behind) if behind else "none")
                    + "."
                )
                lines.append("")
                summary.append(
                    f"| {budget} | {batch} | {lead} / {len(complete)} | "
                    + " / ".join(f"{np.mean(ranks[m]):.2f}" for m in shown)
                    + f" | {', '.join(behind) or 'none'} |"
                )
    if summary:
        lines[header:header] = [
            "## Summary",
            "",
            f"| budget | in flight | best median ({methods[0]}) | mean rank: "
            + " / ".join(methods)
            + " | behind GPSampler by more than its IQR |",
            "|---|---|---|---|---|",
            *summary,
            "",
        ]
    return "\n".join(lines)


def latency_report(lat: dict[tuple[str, int], list[float]]) -> str:
    lines = [
        "## Seconds per suggestion: 10 doubles, 8 pending, one thread",
        "",
        "| sampler | finished trials | median ms | p90 ms | repeats |",
        "|---|---|---|---|---|",
    ]
    for (method, size), times in lat.items():
        ms = np.array(times) * 1000.0
        lines.append(
            f"| {method} | {size} | {np.median(ms):.1f} | {np.percentile(ms, 90):.1f} "
            f"| {len(ms)} |"
        )
    return "\n".join(lines) + "\n"


# -- driver -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budgets", type=int, nargs="+", default=[60, 200])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="trials in flight")
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        help=f"from {', '.join(METHODS)}; 'hpsearch-LABEL' runs hpsearch under another name "
        "(to keep a variant of the method side by side in one results file)",
    )
    parser.add_argument(
        "--problems", nargs="+", default=list(problems()), choices=list(problems())
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON lines, one per run")
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--report-only", action="store_true", help="run nothing")
    parser.add_argument(
        "--latency", type=int, nargs="*", default=[], help="finished trials, e.g. 500 2000"
    )
    parser.add_argument("--latency-repeats", type=int, default=20)
    parser.add_argument("--optuna-latency-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore")
    for method in args.methods:
        if method not in METHODS and not method.startswith("hpsearch-"):
            parser.error(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    methods = list(args.methods)
    if "optuna-gp" in methods and importlib.util.find_spec("torch") is None:
        logger.warning("optuna-gp skipped: torch is not installed (pip install torch)")
        methods.remove("optuna-gp")
    budgets = tuple(sorted(set(args.budgets)))
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    runs = load_runs(args.results)
    started = time.perf_counter()
    if not args.report_only:
        todo = _todo(runs, args.problems, args.batch, methods, seeds, budgets)
        logger.warning("%d runs to do (%d already in %s)", len(todo), len(runs), args.results)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with (
            concurrent.futures.ProcessPoolExecutor(
                max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")
            ) as pool,
            args.results.open("a") as out,
        ):
            futures = [pool.submit(_run, n, b, m, s, budgets) for n, b, m, s in todo]
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                record = future.result()
                out.write(json.dumps(record) + "\n")
                out.flush()
                key = (record["problem"], record["batch"], record["method"], record["seed"])
                runs[key] = record
                logger.warning(
                    "[%d/%d] %s batch=%d %s seed=%d regret=%s seconds=%.1f elapsed=%.0fs",
                    done,
                    len(todo),
                    *key[:3],
                    key[3],
                    record["regret"],
                    record["seconds"],
                    time.perf_counter() - started,
                )
    text = report(runs, args.problems, args.batch, methods, seeds, budgets) if seeds else ""
    if args.latency:
        lat = latency(args.latency, args.latency_repeats, args.optuna_latency_repeats, methods)
        text += "\n" + latency_report(lat)
    command = "python benchmarks/search_quality.py " + " ".join(argv or sys.argv[1:])
    text += f"\nCommand: `{command.strip()}`\n"
    print(text)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
