"""Log expected improvement and its optimiser over a mixed, conditional space.

``log_ei`` is computed without underflow (Ament et al., 2023, "Unexpected improvements to
expected improvement"): far below the incumbent EI is ~1e-300 and its logarithm is still
finite with a useful gradient, so the optimiser never sees a flat zero landscape.

The optimiser (all steps vectorised over candidates):

1. score a pool of random candidates (uniform on each parameter's scale, snapped onto
   the space) plus local perturbations of the best observed points;
2. from the best few distinct ones, run one L-BFGS-B over the continuous columns of all
   starts at once (the starts are independent, so the sum's gradient separates);
3. run a coordinate search over the discrete parameters (every category; the nearest
   levels of integers and other ordinals), scoring only snapped points;
4. polish the continuous columns once more with the discrete choices fixed.

Every point returned is a valid encoding (ordinals on a level, one category hot,
inactive parameters at their constants) together with its acquisition value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special

from hpsearch.search.encoding import CATEGORICAL, ORDINAL, Block, Encoder
from hpsearch.search.gp import GaussianProcess

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
SQRT_HALF_PI = math.sqrt(0.5 * math.pi)

N_RANDOM = 2048  # random candidates in the pool
POOL_FULL_UNTIL = 100
N_LOCAL = 256  # local perturbations of the best observed points in the pool
N_STARTS = 10  # gradient starts
LBFGS_ITER = 40
ORDINAL_NEIGHBOURS = 2  # levels tried on each side of an ordinal's current level
ORDINAL_EXHAUSTIVE = 16  # ordinals with at most this many levels are tried exhaustively


def log_h(z: np.ndarray) -> np.ndarray:
    """log(z * Phi(z) + phi(z)), stable for all z (the log of EI / sigma)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    upper = z > -1.0
    zu = z[upper]
    out[upper] = np.log(zu * special.ndtr(zu) + np.exp(-0.5 * zu**2 - LOG_SQRT_2PI))
    t = -z[~upper]  # t >= 1
    # h(z) = phi(z) * (1 - t * m(t)), with m the Mills ratio sqrt(pi/2) * erfcx(t / sqrt2).
    tm = t * SQRT_HALF_PI * special.erfcx(t / math.sqrt(2.0))
    small = np.log1p(-np.minimum(tm, 1.0 - 1e-16))
    asymptotic = -2.0 * np.log(t) + np.log1p(-3.0 / t**2 + 15.0 / t**4)
    tail = np.where(t > 40.0, asymptotic, small)
    out[~upper] = -0.5 * t**2 - LOG_SQRT_2PI + tail
    return out


def log_ei(
    mean: np.ndarray, var: np.ndarray, best: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log EI for maximisation and its partial derivatives in mean and variance."""
    sigma = np.sqrt(var)
    z = (mean - best) / sigma
    lh = log_h(z)
    value = np.log(sigma) + lh
    # d log h / dz = Phi(z) / h(z)
    ratio = np.exp(special.log_ndtr(z) - lh)
    d_mean = ratio / sigma
    # d/dvar: d log sigma/dvar = 1/(2 var); dz/dvar = -z / (2 var)
    d_var = (1.0 - ratio * z) / (2.0 * var)
    return value, d_mean, d_var


def log_pof(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log P(g > 0) for a GP posterior of a feasibility margin ``g``, and its partial
    derivatives in mean and variance."""
    sigma = np.sqrt(var)
    z = mean / sigma
    value = special.log_ndtr(z)
    # d log Phi(z) / dz = phi(z) / Phi(z)
    ratio = np.exp(-0.5 * z**2 - LOG_SQRT_2PI - value)
    return value, ratio / sigma, -ratio * z / (2.0 * var)


class Acquisition:
    """log EI of one GP posterior, scored on rows of an encoder's matrix; with feasibility
    GPs, constrained EI (Gardner et al., 2014): log EI plus the log probability that each
    feasibility margin is positive (independent constraints).  With ``best`` None (no
    feasible trial yet) it is the probability of feasibility alone."""

    def __init__(
        self,
        gp: GaussianProcess | None,
        best: float | None,
        feasibility: Sequence[GaussianProcess] = (),
    ) -> None:
        self.gp = gp
        self.best = best
        self.feasibility = tuple(feasibility)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        value = np.zeros(len(X))
        if self.best is not None and self.gp is not None:
            mean, var = self.gp.predict(X)
            value += log_ei(mean, var, self.best)[0]
        for model in self.feasibility:
            value += log_pof(*model.predict(X))[0]
        return value

    def with_grad(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        value = np.zeros(len(X))
        grad = np.zeros(X.shape)
        if self.best is not None and self.gp is not None:
            mean, var, d_mean, d_var = self.gp.predict_with_grad(X)
            ei, dv_dm, dv_dvar = log_ei(mean, var, self.best)
            value += ei
            grad += dv_dm[:, None] * d_mean + dv_dvar[:, None] * d_var
        for model in self.feasibility:
            mean, var, d_mean, d_var = model.predict_with_grad(X)
            pof, dp_dm, dp_dvar = log_pof(mean, var)
            value += pof
            grad += dp_dm[:, None] * d_mean + dp_dvar[:, None] * d_var
        return value, grad


def maximize(
    acquisition: Acquisition,
    encoder: Encoder,
    incumbents: np.ndarray,
    rng: np.random.Generator,
    *,
    n_random: int | None = None,
    n_local: int | None = None,
    n_starts: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidates sorted by acquisition value (best first), and their values.

    ``incumbents`` are the best observed rows (best first), the centres of the local
    candidates.  The caller takes the first candidate it has not seen before.
    """
    if n_random is None:
        # The pool's cost grows with (candidates x training points): past
        # POOL_FULL_UNTIL training points the pool shrinks (to at least a quarter), and
        # local candidates and gradient starts carry more of the search.
        modelled = acquisition.gp or next(iter(acquisition.feasibility), None)
        n_train = len(modelled.y) if modelled is not None else 0
        n_random = max(N_RANDOM // 4, min(N_RANDOM, N_RANDOM * POOL_FULL_UNTIL // max(n_train, 1)))
    n_local = N_LOCAL if n_local is None else n_local
    n_starts = N_STARTS if n_starts is None else n_starts
    pool = [encoder.random(n_random, rng)]
    if len(incumbents) and n_local:
        pool.append(_local(encoder, incumbents, n_local, rng))
    X = np.unique(np.vstack(pool), axis=0)
    values = acquisition(X)
    order = np.argsort(-values, kind="stable")
    starts = X[order[:n_starts]]
    refined = _continuous_polish(acquisition, encoder, starts, relax_ordinals=True)
    refined = _discrete_search(acquisition, encoder, refined)
    refined = _continuous_polish(acquisition, encoder, refined)
    X_all = np.vstack([refined, X[order]])
    values_all = np.concatenate([acquisition(refined), values[order]])
    values_all = np.where(np.isfinite(values_all), values_all, -np.inf)
    final = np.argsort(-values_all, kind="stable")
    return X_all[final], values_all[final]


def _local(
    encoder: Encoder, incumbents: np.ndarray, m: int, rng: np.random.Generator
) -> np.ndarray:
    """Perturb the incumbents: Gaussian steps of several widths, occasional category flips."""
    centres = incumbents[np.arange(m) % len(incumbents)]
    widths = np.array([0.02, 0.05, 0.1, 0.2])[rng.integers(0, 4, size=m)]
    X = centres + rng.normal(size=centres.shape) * widths[:, None]
    X = np.clip(X, 0.0, 1.0)
    for block in encoder.blocks:
        if block.kind == CATEGORICAL:
            flip = rng.random(m) < 0.2
            if flip.any():
                choice = rng.integers(0, block.width, size=int(flip.sum()))
                X[flip, block.start : block.stop] = np.eye(block.width)[choice]
    return encoder.snap(X)


def _continuous_polish(
    acquisition: Acquisition, encoder: Encoder, starts: np.ndarray, relax_ordinals: bool = False
) -> np.ndarray:
    """One batched L-BFGS-B over the continuous, active columns of every start.

    With ``relax_ordinals`` the ordinal columns move too (relaxed), and the result is
    snapped to the nearest levels; a start only changes when the snapped point scores
    better, so rounding never makes a candidate worse.
    """
    free = encoder.continuous | (encoder.ordinal if relax_ordinals else False)
    if not free.any():
        return starts
    m = len(starts)
    active = encoder.active_mask(starts)
    free_rows = np.zeros((m, encoder.dim), dtype=bool)
    for i, block in enumerate(encoder.blocks):
        if free[block.start]:
            free_rows[:, block.start] = active[:, i]
    if not free_rows.any():
        return starts
    base = starts.copy()
    cols = np.where(free)[0]
    z0 = base[:, cols].ravel()
    lo = np.where(free_rows[:, cols].ravel(), 0.0, z0)
    hi = np.where(free_rows[:, cols].ravel(), 1.0, z0)

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        X = base.copy()
        X[:, cols] = z.reshape(m, len(cols))
        value, grad = acquisition.with_grad(X)
        value = np.where(np.isfinite(value), value, -1e6)
        grad = np.nan_to_num(grad[:, cols], nan=0.0, posinf=0.0, neginf=0.0)
        return -float(value.sum()), -grad.ravel()

    result = optimize.minimize(
        objective,
        z0,
        jac=True,
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=True)),
        options={"maxiter": LBFGS_ITER},
    )
    X = base.copy()
    z = result.x if np.all(np.isfinite(result.x)) else z0
    X[:, cols] = np.clip(z.reshape(m, len(cols)), 0.0, 1.0)
    X = encoder.snap(X)
    # Keep a start where the polish made things worse (a failed line search).
    better = acquisition(X) >= acquisition(starts)
    return np.where(better[:, None], X, starts)


def _discrete_search(
    acquisition: Acquisition, encoder: Encoder, starts: np.ndarray, sweeps: int = 2
) -> np.ndarray:
    """Coordinate search over the discrete parameters, one parameter at a time."""
    if not encoder.discrete_blocks:
        return starts
    X = starts.copy()
    current = acquisition(X)
    for _ in range(sweeps):
        improved = False
        for block in encoder.discrete_blocks:
            options = _options(encoder, block, X)
            if not options:
                continue
            trials = np.vstack([encoder.snap(opt) for opt in options])
            values = acquisition(trials).reshape(len(options), len(X))
            best = np.argmax(values, axis=0)
            gain = values[best, np.arange(len(X))] > current + 1e-12
            if gain.any():
                improved = True
                for i in np.where(gain)[0]:
                    X[i] = trials[best[i] * len(X) + i]
                    current[i] = values[best[i], i]
        if not improved:
            break
    return X


def _options(encoder: Encoder, block: Block, X: np.ndarray) -> list[np.ndarray]:
    options: list[np.ndarray] = []
    if block.kind == CATEGORICAL:
        for k in range(block.width):
            Y = X.copy()
            Y[:, block.start : block.stop] = 0.0
            Y[:, block.start + k] = 1.0
            options.append(Y)
        return options
    assert block.kind == ORDINAL
    levels = block.levels
    if levels is not None and len(levels) <= ORDINAL_EXHAUSTIVE:
        for level in levels:
            Y = X.copy()
            Y[:, block.start] = level
            options.append(Y)
        return options
    if levels is not None:
        pos = np.searchsorted(levels, X[:, block.start] - 1e-12)
        for step in range(-ORDINAL_NEIGHBOURS, ORDINAL_NEIGHBOURS + 1):
            if step == 0:
                continue
            Y = X.copy()
            Y[:, block.start] = levels[np.clip(pos + step, 0, len(levels) - 1)]
            options.append(Y)
        return options
    # Too many levels for a table: step in unit space and let snap find the level.
    for delta in (-0.02, -0.005, 0.005, 0.02):
        Y = X.copy()
        Y[:, block.start] = np.clip(Y[:, block.start] + delta, 0.0, 1.0)
        options.append(Y)
    return options
