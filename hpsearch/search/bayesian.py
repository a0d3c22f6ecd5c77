"""Gaussian-process Bayesian optimisation: the default algorithm.

One call to :func:`suggest_bayesian`:

1. While fewer than ``initial_design_size(space)`` trials were asked (or fewer than two
   have finished), the next points of one scrambled Sobol sequence seeded by the study
   (``config.seed``, else a hash of its name): trial *k* gets Sobol point *k*.
2. Otherwise: encode the history (:mod:`hpsearch.search.encoding`), standardise the
   objective (negated for ``minimize``) and warp it with a Yeo-Johnson power transform,
   fit the GP's hyperparameters by MAP
   (:mod:`hpsearch.search.gp`) and maximise log EI (:mod:`hpsearch.search.acquisition`).
   The GP's prior mean is pessimistic: ``PRIOR_MEAN`` = 1.5 standard deviations below
   the mean of the warped objective, so that far from every trial the model expects a
   poor value rather than an average one.  With a zero (average) prior mean, EI keeps
   paying for the variance of untried corners and edges, and the model extrapolates a
   slope past the last trials onto the boundary: some runs stall on an edge, and runs
   that find the global mode stop short of it.  A small offset still lets runs stall; a
   larger one stops the stalls and ends runs closer to their optima, but a pessimistic
   mean starves the less tried values of a categorical unless the GP's signal variance
   is kept at least 1 (see :mod:`hpsearch.search.gp`).  1.5 with that bound is the
   offset that neither stalled nor starved a run (measured:
   benchmarks/results/design_figures.md, "A pessimistic GP prior mean, with the signal
   variance at least 1").
3. Pending trials and the points already chosen in this call enter the GP as
   *kriging-believer* fantasies: observed, noise-free, at the posterior mean with the
   hyperparameters held fixed (a believed value above the incumbent becomes the
   incumbent).  The mean is unchanged while the variance collapses around each busy
   point, so the next pick moves to another promising region.  We chose
   it over constant liar (whose lie value shifts the mean everywhere and needs tuning),
   local penalisation (needs a Lipschitz estimate) and Monte-Carlo q-EI (tens of times
   slower): it keeps one suggestion at the cost of one Cholesky per busy point, and the
   benchmark (benchmarks/search_quality.py) measures what batches of 8 lose.  A batch
   member also keeps ``MIN_SEPARATION`` from pending trials and from the other members:
   once the GP is confident, EI right next to a believed point can still win, and two
   trials 1e-4 apart teach nothing.

Caps that bound the cost of one suggestion as a study grows, so that a long study still
meets the latency target on one core: the posterior conditions on at most ``MAX_TRAIN``
(256) finished trials -- the best quarter, the most recent quarter and an evenly spaced
half of the rest -- and the hyperparameters are fitted on at most ``MAX_FIT`` (100) of
those (the best half and an evenly spaced half) with at most ``FIT_ITERATIONS``
L-BFGS-B steps (a second start only below ``gp.MULTI_START_MAX_POINTS`` = 80 points);
the acquisition's random pool (``acquisition.N_RANDOM`` = 2048) shrinks in proportion
past 100 training points, to 512 at the least (target and measurement:
benchmarks/results/design_figures.md, "Caps on the cost of one Bayesian suggestion").
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import qmc

from hpsearch.search.acquisition import Acquisition, maximize
from hpsearch.search.algorithm import Algorithm, Observation
from hpsearch.search.encoding import Encoder, params_key
from hpsearch.search.gp import GaussianProcess, fit_hyperparameters
from hpsearch.space import FixedParam, Params, Space, StudyConfig
from hpsearch.space.pareto import minimised, non_dominated

logger = logging.getLogger(__name__)

MAX_TRAIN = 256
MAX_FIT = 100
FIT_ITERATIONS = 50
N_INCUMBENTS = 5
MAX_RETRIES = 64
YJ_LAMBDAS = np.linspace(-3.0, 3.0, 121)
# The GP's prior mean, in standard deviations of the (warped) objective around its mean:
# pessimistic.  See the module doc.
PRIOR_MEAN = -1.5
# Distance (in the encoded unit cube) a suggestion keeps from pending trials and from the
# other suggestions of its batch.  Once the GP is confident, EI next to a believed point
# can still beat EI elsewhere; spending two trials of one batch 1e-4 apart teaches nothing.
MIN_SEPARATION = 0.02
# ParEGO's augmentation weight (Knowles, 2006): the sum term that breaks the ties of the
# Chebyshev max between weakly dominated points.
PAREGO_RHO = 0.05
# The shortest length scale of the feasibility GP (unit cube).  The trials pile up along
# the boundary of the feasible region, where the margin flips sign over a short distance;
# fitted freely, the length scales collapse onto that step and, a little away from the
# trials, the model forgets that whole regions were infeasible (probability ~0.5 there).
FEASIBILITY_MIN_LENGTH_SCALE = 0.15


def initial_design_size(space: Space) -> int:
    """Trials drawn from the Sobol design before the GP takes over: max(5, d + 1)."""
    d = sum(1 for p in space if not isinstance(p, FixedParam))
    return max(5, d + 1)


def suggest_bayesian(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
) -> list[Params]:
    """``n`` new parameter sets by GP-based Bayesian optimisation (see the module doc)."""
    with _single_threaded_blas():
        return _suggest(config, completed, pending, n, rng)


class GaussianProcessSearch(Algorithm):
    """``bayesian`` (the default): GP-based Bayesian optimisation (see the module doc)."""

    name = "bayesian"

    def suggest(
        self,
        config: StudyConfig,
        completed: Sequence[Observation],
        pending: Sequence[Params],
        n: int,
        rng: np.random.Generator,
        state: Any,
    ) -> list[Params]:
        return suggest_bayesian(config, completed, pending, n, rng)


def _suggest(
    config: StudyConfig,
    completed: Sequence[Observation],
    pending: Sequence[Params],
    n: int,
    rng: np.random.Generator,
) -> list[Params]:
    started = time.perf_counter()
    space = config.space
    seen = {params_key(o.params) for o in completed} | {params_key(p) for p in pending}
    finished = [o for o in completed if _modelled(config, o)]
    asked = len(completed) + len(pending)
    n_init = initial_design_size(space)
    out: list[Params] = []
    model: _Model | None = None
    for i in range(n):
        if asked + i < n_init or len(finished) < 2:
            params = _sobol(config, asked + i, seen, rng)
        else:
            if model is None or config.multi_objective:
                # Several objectives: each member of a batch gets its own scalarisation
                # weights (a model each), the members chosen so far as pending points.
                model = _Model(config, finished, [*pending, *out], rng)
            params = model.next(seen, rng)
        if params is None:
            logger.info("search exhausted study=%s asked=%d", config.name, asked + i)
            break
        seen.add(params_key(params))
        out.append(params)
    logger.debug(
        "bayesian suggest study=%s completed=%d pending=%d n=%d seconds=%.3f",
        config.name,
        len(completed),
        len(pending),
        n,
        time.perf_counter() - started,
    )
    return out


class _Model:
    """The fitted GP of one call, conditioned on fantasies as points are chosen."""

    def __init__(
        self,
        config: StudyConfig,
        finished: Sequence[Observation],
        pending: Sequence[Params],
        rng: np.random.Generator,
    ) -> None:
        self.config = config
        self.encoder = Encoder(config.space)
        self.feasibility = _feasibility_models(config, finished, self.encoder)
        scored = [o for o in finished if math.isfinite(o.value)]
        if config.multi_objective:
            scored = [o for o in finished if config.objectives(o.metrics) is not None]
        values = _objective_values(config, scored, rng)
        feasible = np.array([o.feasible for o in scored], dtype=bool)
        self.best: float | None = None
        self.gp: GaussianProcess | None = None
        if len(scored) < 2:  # (almost) only infeasible trials so far: seek feasibility
            self.incumbents = np.empty((0, self.encoder.dim))
        else:
            train = _training_subset(np.where(feasible, values, -np.inf), MAX_TRAIN)
            X = self.encoder.encode_many([scored[i].params for i in train])
            y = _standardise(values[train])
            if len(y) >= 4:
                y = _yeo_johnson(y)
            # A zero-mean GP on (y - PRIOR_MEAN) is a GP with constant mean PRIOR_MEAN on y.
            y = y - PRIOR_MEAN
            fit = _training_subset(y, MAX_FIT, recent=False)
            hyper = fit_hyperparameters(
                X[fit], y[fit], self.encoder.groups, self.encoder.n_groups, maxiter=FIT_ITERATIONS
            )
            self.gp = GaussianProcess(X, y, hyper, self.encoder.groups)
            ranked = [i for i in np.argsort(-y, kind="stable") if feasible[train[i]]]
            if ranked:
                self.best = float(y[ranked[0]])
            self.incumbents = X[ranked[:N_INCUMBENTS]]
        self.busy = np.empty((0, self.encoder.dim))
        if pending:
            self._believe(self.encoder.encode_many(pending))

    def next(
        self, seen: set[frozenset[tuple[str, object]]], rng: np.random.Generator
    ) -> Params | None:
        if self.encoder.dim == 0:
            return _unseen(self.config.space.from_unit({}), seen)
        if self.best is None and not self.feasibility:  # nothing to model yet
            return self._random_unseen(seen, rng)
        acquisition = Acquisition(self.gp, self.best, self.feasibility)
        candidates, _ = maximize(acquisition, self.encoder, self.incumbents, rng)
        for row in candidates:
            if len(self.busy) and np.min(np.linalg.norm(self.busy - row, axis=1)) < MIN_SEPARATION:
                continue
            params = self.encoder.decode(row)
            if params_key(params) not in seen:
                self._believe(self.encoder.encode(params)[None, :])
                return params
        # Every scored candidate was seen before: fall back to fresh random points.
        return self._random_unseen(seen, rng)

    def _random_unseen(
        self, seen: set[frozenset[tuple[str, object]]], rng: np.random.Generator
    ) -> Params | None:
        for _ in range(MAX_RETRIES):
            params = self.config.space.sample(rng)
            if params_key(params) not in seen:
                self._believe(self.encoder.encode(params)[None, :])
                return params
        return None

    def _believe(self, X: np.ndarray) -> None:
        feasible = np.ones(len(X), dtype=bool)
        believed_models = []
        for model in self.feasibility:
            f_mean, _ = model.predict(X)
            believed_models.append(model.condition(X, f_mean))
            feasible &= f_mean > 0
        self.feasibility = believed_models
        if self.gp is not None:
            mean, _ = self.gp.predict(X)
            self.gp = self.gp.condition(X, mean)
            # A believed value above the incumbent becomes the incumbent: otherwise EI
            # next to the fantasy stays at (mean - best) and the batch piles onto one
            # point.  (With constraints, only a point believed feasible.)
            if self.best is not None:
                believed = mean[feasible]
                if len(believed):
                    self.best = max(self.best, float(np.max(believed)))
        self.busy = np.vstack([self.busy, X])


def _modelled(config: StudyConfig, observation: Observation) -> bool:
    """Whether an observation teaches the model: it has the objective value(s), or it is
    infeasible (which the feasibility model learns from)."""
    if not observation.feasible:
        return True
    if config.multi_objective:
        return config.objectives(observation.metrics) is not None
    return math.isfinite(observation.value)


def _objective_values(
    config: StudyConfig, scored: Sequence[Observation], rng: np.random.Generator
) -> np.ndarray:
    """The values the GP models, to be maximised: the objective (negated for
    ``minimize``), or with several objectives a ParEGO scalarisation (Knowles, 2006): the
    objectives as losses, 0 at the ideal point and 1 at the nadir of the current front
    (of the feasible trials, once two are), combined by the augmented Chebyshev function
    max_j(w_j l_j) + 0.05 sum_j(w_j l_j) under weights ``w`` drawn uniformly from the
    simplex for this call.  Every minimiser of it is on the Pareto front, and as the
    weights change from call to call the suggestions spread along the whole front, concave
    parts included.  Scaled over every trial instead, the poor early trials (and the
    infeasible ones) set the range, the front is squeezed into a corner, and most weights
    pull towards one end of it.  (Weights steered to the direction the front covers least
    were tried and not kept: ahead on ZDT1 and DTLZ2, far behind on the constrained
    problem, whose uncovered directions are infeasible; benchmarks/results/multi_objective.md.)"""
    if not config.multi_objective:
        return config.metric.goal.sign * np.array([o.value for o in scored], dtype=float)
    if not scored:
        return np.empty(0)
    vectors = [config.objectives(o.metrics) for o in scored]
    losses = minimised(config, vectors)  # type: ignore[arg-type]
    feasible = np.array([o.feasible for o in scored], dtype=bool)
    base = losses[feasible] if feasible.sum() >= 2 else losses
    front = base[non_dominated(base)]
    low, high = base.min(axis=0), front.max(axis=0)
    high = np.where(high - low > 1e-12, high, base.max(axis=0))
    scaled = (losses - low) / np.where(high - low > 1e-12, high - low, 1.0)
    weights = rng.dirichlet(np.ones(losses.shape[1]))
    weighted = scaled * weights
    return -(weighted.max(axis=1) + PAREGO_RHO * weighted.sum(axis=1))


def _feasibility_models(
    config: StudyConfig, finished: Sequence[Observation], encoder: Encoder
) -> list[GaussianProcess]:
    """GPs of the trials' feasibility margins (> 0: feasible): none when the study has no
    constraint and no trial was infeasible.

    One GP per declared constraint, on the trials that reported its metric: the slack in
    units of the spread of that metric's reported values, clipped to [-3, 3].  Each
    constraint is then a smooth function of its own (often near linear), where the smallest
    slack of all of them, modelled as one, has a kink wherever the binding constraint
    changes.  Trials infeasible with no declared constraint broken (the trial said so, or
    broke a constraint it did not report) add one GP more, of -1 for those and +1 for the
    others.  The product of the probabilities that every margin is positive multiplies EI
    (constrained EI, Gardner et al., 2014, with independent constraints as in Optuna's and
    BoTorch's constrained acquisitions)."""
    models = []
    rows: list[tuple[list[int], list[float]]] = []
    for constraint in config.constraints:
        reported = [i for i, o in enumerate(finished) if constraint.metric in o.metrics]
        if not reported:
            continue
        values = np.array([finished[i].metrics[constraint.metric] for i in reported])
        spread = float(np.std(values)) if len(values) > 1 else 0.0
        spread = spread if spread > 1e-12 else max(abs(constraint.bound), 1.0)
        slacks = [float(np.clip(constraint.slack(v) / spread, -3.0, 3.0)) for v in values]
        rows.append((reported, slacks))

    def unexplained(o: Observation) -> bool:  # infeasible, no reported constraint broken
        return not o.feasible and all(
            c.slack(o.metrics[c.metric]) >= 0 for c in config.constraints if c.metric in o.metrics
        )

    if any(unexplained(o) for o in finished):
        rows.append(
            (list(range(len(finished))), [-1.0 if unexplained(o) else 1.0 for o in finished])
        )
    for indices, margins in rows:
        X = encoder.encode_many([finished[i].params for i in indices])
        y = np.array(margins)
        hyper = fit_hyperparameters(
            X,
            y,
            encoder.groups,
            encoder.n_groups,
            maxiter=FIT_ITERATIONS,
            min_length_scale=FEASIBILITY_MIN_LENGTH_SCALE,
        )
        models.append(GaussianProcess(X, y, hyper, encoder.groups))
    return models


_controller: Any = None


def _single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread while suggesting.

    The matrices here are a few hundred rows: threads cannot speed them up, but on a busy
    machine OpenBLAS's thread hand-offs slow every small call (L-BFGS-B's among them) by
    an order of magnitude.  Uses threadpoolctl when installed.
    """
    global _controller
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")  # type: ignore[no-any-return]


def _standardise(values: np.ndarray) -> np.ndarray:
    std = float(np.std(values))
    return (values - float(np.mean(values))) / (std if std > 1e-12 else 1.0)  # type: ignore[no-any-return]


def _yeo_johnson(y: np.ndarray) -> np.ndarray:
    """Yeo-Johnson power transform (lambda by maximum likelihood), then standardised.

    Objectives are often skewed (a long tail of bad trials); the transform makes them
    closer to Gaussian, which the GP assumes, and spreads out the good end so the model
    can tell near-optimal trials apart (HEBO, Cowen-Rivers et al. 2022).  Lambda is the
    best of a vectorised grid over [-3, 3] (steps of 0.05): scipy's Brent search costs
    more than the rest of a suggestion's preprocessing put together.
    """
    if float(np.std(y)) < 1e-12:
        return y
    lambdas = YJ_LAMBDAS[:, None]
    pos = y >= 0
    with np.errstate(all="ignore"):
        a = np.log1p(np.abs(y))  # log(|y| + 1)
        # psi for y >= 0: ((y+1)^l - 1)/l ; for y < 0: -((1-y)^(2-l) - 1)/(2-l)
        l_pos = np.where(np.abs(lambdas) < 1e-8, 1.0, lambdas)
        l_neg = np.where(np.abs(2.0 - lambdas) < 1e-8, 1.0, 2.0 - lambdas)
        psi_pos = np.where(np.abs(lambdas) < 1e-8, a, np.expm1(l_pos * a) / l_pos)
        psi_neg = np.where(np.abs(2.0 - lambdas) < 1e-8, -a, -np.expm1(l_neg * a) / l_neg)
        psi = np.where(pos[None, :], psi_pos, psi_neg)
        var = np.var(psi, axis=1)
        llf = -0.5 * len(y) * np.log(var) + (lambdas[:, 0] - 1.0) * float(np.sum(np.sign(y) * a))
    llf = np.where(np.isfinite(llf) & (var > 1e-12), llf, -np.inf)
    if not np.isfinite(llf).any():
        return y
    warped = psi[int(np.argmax(llf))]
    if not np.all(np.isfinite(warped)):
        return y
    return _standardise(warped)


def _training_subset(values: np.ndarray, cap: int, *, recent: bool = True) -> np.ndarray:
    """Indices (sorted) of at most ``cap`` points: the best, the most recent, a spread."""
    count = len(values)
    if count <= cap:
        return np.arange(count)
    chosen: set[int] = set(np.argsort(-values, kind="stable")[: cap // (4 if recent else 2)])
    if recent:
        chosen.update(range(count - cap // 4, count))
    rest = np.array([i for i in range(count) if i not in chosen])
    room = cap - len(chosen)
    if room > 0 and len(rest):
        picks = np.linspace(0, len(rest) - 1, num=min(room, len(rest))).round().astype(int)
        chosen.update(rest[np.unique(picks)].tolist())
    return np.array(sorted(chosen))


def _sobol(
    config: StudyConfig,
    index: int,
    seen: set[frozenset[tuple[str, object]]],
    rng: np.random.Generator,
) -> Params | None:
    """Point ``index`` of the study's scrambled Sobol sequence, or the next unseen one."""
    space = config.space
    if len(space) == 0:
        return _unseen({}, seen)
    seed = config.seed if config.seed is not None else zlib.crc32(config.name.encode())
    sampler = qmc.Sobol(d=len(space), scramble=True, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if index:
            sampler.fast_forward(index)
        for _ in range(MAX_RETRIES):
            params = space.from_unit(sampler.random(1)[0].tolist())
            if params_key(params) not in seen:
                return params
    for _ in range(MAX_RETRIES):
        params = space.sample(rng)
        if params_key(params) not in seen:
            return params
    return None


def _unseen(params: Params, seen: set[frozenset[tuple[str, object]]]) -> Params | None:
    return None if params_key(params) in seen else params
