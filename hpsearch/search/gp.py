"""Gaussian-process regression on NumPy/SciPy: Matérn-5/2 with per-parameter length scales.

Inputs are rows of :class:`hpsearch.search.encoding.Encoder` (the unit cube); outputs are
standardised by the caller.  Hyperparameters (one length scale per parameter, a signal
variance and a noise variance) are fitted by maximum a posteriori with L-BFGS-B on
analytic gradients, under these priors (all in log space):

* length scale ``l`` (inputs in the unit cube): LogNormal(0, 1), i.e. a median of one
  side of the cube, within [0.14, 7.4] at two standard deviations (close to Optuna's
  GPSampler prior), not the dimension-scaled prior of Hvarfner et al. (2024),
  LogNormal(sqrt(2) + log(d)/2, sqrt(3)): on short searches over a few parameters its
  long length scales stall in Hartmann-6's second-best mode (measured:
  benchmarks/results/design_figures.md, "Length-scale prior LogNormal(0, 1)");
* signal variance: LogNormal(0, 1) (outputs are standardised), at least 1: the prior
  is never surer than the spread of the observed values.  With the pessimistic prior
  mean of :mod:`hpsearch.search.bayesian` a smaller fitted variance made every untried
  region hopeless under EI, so some runs on a mixed space never left the first
  optimiser that worked (measured: benchmarks/results/design_figures.md, "A
  pessimistic GP prior mean, with the signal variance at least 1");
* noise variance: LogNormal(log 1e-4, 2), floor 1e-6: near-deterministic objectives
  are interpolated, noisy ones raise it.

The fit starts from moderate length scales and, on data sets of at most
``MULTI_START_MAX_POINTS`` points, also from 4.5x longer ones (the likelihood is often
bimodal: a wiggly and a smooth explanation); the better posterior wins.  All posterior
quantities come from one Cholesky factor; a small jitter keeps duplicated inputs well
posed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

SQRT5 = math.sqrt(5.0)
LOG_2PI = math.log(2.0 * math.pi)
JITTER = 1e-8
MULTI_START_MAX_POINTS = 80
FANTASY_NOISE = 1e-6  # relative to the signal variance

LOG_AMP_BOUNDS = (math.log(1.0), math.log(20.0))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
LOG_LS_BOUNDS = (math.log(0.01), math.log(100.0))
AMP_PRIOR = (0.0, 1.0)
NOISE_PRIOR = (math.log(1e-4), 2.0)
LS_PRIOR_MEAN = 0.0
LS_PRIOR_SD = 1.0


@dataclass(frozen=True)
class Hyperparameters:
    """Log length scales (one per parameter group), log signal and log noise variance."""

    log_ls: np.ndarray
    log_amp: float
    log_noise: float

    def vector(self) -> np.ndarray:
        return np.concatenate([self.log_ls, [self.log_amp, self.log_noise]])

    @classmethod
    def from_vector(cls, theta: np.ndarray) -> Hyperparameters:
        return cls(np.array(theta[:-2]), float(theta[-2]), float(theta[-1]))


def default_hyperparameters(n_groups: int) -> Hyperparameters:
    """The starting point of every fit (deterministic): moderate length scales."""
    mu, sd = _ls_prior(n_groups)
    start = float(np.clip(mu - sd**2 / 2, *LOG_LS_BOUNDS))
    return Hyperparameters(np.full(n_groups, start), 0.0, NOISE_PRIOR[0])


def fit_hyperparameters(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    *,
    start: Hyperparameters | None = None,
    maxiter: int = 60,
    min_length_scale: float | None = None,
) -> Hyperparameters:
    """MAP estimate of the hyperparameters for data ``(X, y)`` (y standardised);
    ``min_length_scale`` raises the floor of the length scales (default 0.01)."""
    start = start or default_hyperparameters(n_groups)
    mu, sd = _ls_prior(n_groups)
    ls_bounds = LOG_LS_BOUNDS
    if min_length_scale is not None:
        ls_bounds = (max(LOG_LS_BOUNDS[0], math.log(min_length_scale)), LOG_LS_BOUNDS[1])
    bounds = [ls_bounds] * n_groups + [LOG_AMP_BOUNDS, LOG_NOISE_BOUNDS]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _neg_log_posterior(theta, X, y, groups, n_groups, mu, sd)
        return value, grad

    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])
    starts = [np.clip(start.vector(), lower, upper)]
    if len(y) <= MULTI_START_MAX_POINTS:
        # The likelihood is multimodal in the length scales (a wiggly fit with short ones,
        # a smooth one with long ones); small data sets can afford a second start.
        longer = starts[0].copy()
        longer[:n_groups] += 1.5
        starts.append(np.clip(longer, lower, upper))
    best_theta, best_value = starts[0], math.inf
    for theta0 in starts:
        result = optimize.minimize(
            objective,
            theta0,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": maxiter},
        )
        if np.all(np.isfinite(result.x)) and float(result.fun) < best_value:
            best_theta, best_value = result.x, float(result.fun)
    return Hyperparameters.from_vector(best_theta)


class GaussianProcess:
    """A GP posterior for fixed hyperparameters, with predictions and their gradients."""

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        hyper: Hyperparameters,
        groups: np.ndarray,
        noise: np.ndarray | None = None,
    ) -> None:
        self.X = X
        self.y = y
        self.hyper = hyper
        self.groups = groups
        self.inv_ls = np.exp(-hyper.log_ls)[groups]
        self.amp = math.exp(hyper.log_amp)
        # Per-point noise variance: the fitted one for observations, (almost) none for
        # fantasies, whose latent value is what we pretend to know.
        self.noise = np.full(len(y), math.exp(hyper.log_noise)) if noise is None else noise
        self.Xs = X * self.inv_ls
        K = self.amp * _matern(_sqdist(self.Xs, self.Xs))
        K[np.diag_indices_from(K)] += self.noise + JITTER * self.amp
        L = _cholesky(K)
        self.alpha = linalg.cho_solve((L, True), y, check_finite=False)
        self.K_inv = _inverse_from_cholesky(L)
        self._Xs_sq = np.sum(self.Xs**2, axis=1)

    def condition(self, X_new: np.ndarray, y_new: np.ndarray) -> GaussianProcess:
        """The posterior with extra noise-free (fantasised) observations, same hyperparameters."""
        return GaussianProcess(
            np.vstack([self.X, X_new]),
            np.concatenate([self.y, y_new]),
            self.hyper,
            self.groups,
            np.concatenate([self.noise, np.full(len(y_new), FANTASY_NOISE * self.amp)]),
        )

    def predict(self, Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance of the latent function at rows ``Xq``."""
        Xqs = Xq * self.inv_ls
        k = self.amp * _matern(self._sqdist_to_train(Xqs))
        mean = k @ self.alpha
        var = self.amp - np.einsum("ij,ij->i", k @ self.K_inv, k)
        return mean, np.maximum(var, 1e-12 * self.amp)

    def predict_with_grad(
        self, Xq: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance and their gradients (m, dim) with respect to the rows of ``Xq``."""
        Xqs = Xq * self.inv_ls
        r2 = self._sqdist_to_train(Xqs)
        r = np.sqrt(r2)
        e = np.exp(-SQRT5 * r)
        k = self.amp * (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * e
        # dk/dxq_c = G * (xq_c - x_c) * inv_ls_c^2 in raw units; G below absorbs signs.
        G = -self.amp * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e
        mean = k @ self.alpha
        kK = k @ self.K_inv
        var = self.amp - np.einsum("ij,ij->i", kK, k)
        Ga = G * self.alpha[None, :]
        d_mean = (Xqs * Ga.sum(axis=1)[:, None] - Ga @ self.Xs) * self.inv_ls
        GkK = G * kK
        d_var = -2.0 * (Xqs * GkK.sum(axis=1)[:, None] - GkK @ self.Xs) * self.inv_ls
        floor = 1e-12 * self.amp
        low = var < floor
        var = np.maximum(var, floor)
        d_var[low] = 0.0
        return mean, var, d_mean, d_var

    def _sqdist_to_train(self, Xqs: np.ndarray) -> np.ndarray:
        r2 = np.sum(Xqs**2, axis=1)[:, None] + self._Xs_sq[None, :] - 2.0 * Xqs @ self.Xs.T
        return np.maximum(r2, 0.0)


# -- internals ---------------------------------------------------------------------------------
def _ls_prior(n_groups: int) -> tuple[float, float]:
    """Mean and sd of the normal prior on each log length scale."""
    return LS_PRIOR_MEAN, LS_PRIOR_SD


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    r2 = np.sum(A**2, axis=1)[:, None] + np.sum(B**2, axis=1)[None, :] - 2.0 * A @ B.T
    return np.maximum(r2, 0.0)


def _matern(r2: np.ndarray) -> np.ndarray:
    r = np.sqrt(r2)
    return (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * np.exp(-SQRT5 * r)


def _cholesky(K: np.ndarray) -> np.ndarray:
    jitter = 0.0
    scale = float(np.mean(np.diag(K)))
    for _ in range(6):
        try:
            return linalg.cholesky(K + jitter * np.eye(len(K)), lower=True, check_finite=False)  # type: ignore[no-any-return]
        except linalg.LinAlgError:
            jitter = scale * (1e-8 if jitter == 0.0 else jitter / scale * 100.0)
    return linalg.cholesky(K + 1e-2 * scale * np.eye(len(K)), lower=True, check_finite=False)  # type: ignore[no-any-return]


def _inverse_from_cholesky(L: np.ndarray) -> np.ndarray:
    """K^-1 = L^-T L^-1 from the lower Cholesky factor (LAPACK trtri and one matmul)."""
    L_inv, info = linalg.lapack.dtrtri(L, lower=1)
    if info != 0:
        return linalg.cho_solve((L, True), np.eye(len(L)), check_finite=False)  # type: ignore[no-any-return]
    return L_inv.T @ L_inv  # type: ignore[no-any-return]


def _neg_log_posterior(
    theta: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_groups: int,
    mu: float,
    sd: float,
) -> tuple[float, np.ndarray]:
    n = len(y)
    log_ls = theta[:n_groups]
    amp = math.exp(theta[-2])
    noise = math.exp(theta[-1])
    inv_ls = np.exp(-log_ls)[groups]
    Xs = X * inv_ls
    r2 = _sqdist(Xs, Xs)
    r = np.sqrt(r2)
    e = np.exp(-SQRT5 * r)
    K0 = (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * e
    K = amp * K0
    K[np.diag_indices_from(K)] += noise + JITTER * amp
    try:
        L = linalg.cholesky(K, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = linalg.cho_solve((L, True), y, check_finite=False)
    K_inv = _inverse_from_cholesky(L)
    nll = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(L)))) + 0.5 * n * LOG_2PI
    # d nll / d theta = 0.5 * tr(W dK/dtheta) with W = K^-1 - alpha alpha^T.
    W = K_inv - np.outer(alpha, alpha)
    grad = np.empty_like(theta)
    grad[-2] = 0.5 * float(np.sum(W * K)) - 0.5 * noise * float(np.trace(W))
    grad[-1] = 0.5 * noise * float(np.trace(W))
    # dK_ij/dlog l_c = amp * 5/3 * (1 + sqrt5 r) e * (Xs_ic - Xs_jc)^2
    M = W * (amp * (5.0 / 3.0) * (1.0 + SQRT5 * r) * e)
    row = M.sum(axis=1)
    col_grad = 0.5 * (
        2.0 * (Xs**2 * row[:, None]).sum(axis=0) - 2.0 * np.sum(Xs * (M @ Xs), axis=0)
    )
    grad[:n_groups] = np.bincount(groups, weights=col_grad, minlength=n_groups)
    # Priors.
    nll += float(np.sum((log_ls - mu) ** 2)) / (2.0 * sd**2)
    grad[:n_groups] += (log_ls - mu) / sd**2
    nll += (theta[-2] - AMP_PRIOR[0]) ** 2 / (2.0 * AMP_PRIOR[1] ** 2)
    grad[-2] += (theta[-2] - AMP_PRIOR[0]) / AMP_PRIOR[1] ** 2
    nll += (theta[-1] - NOISE_PRIOR[0]) ** 2 / (2.0 * NOISE_PRIOR[1] ** 2)
    grad[-1] += (theta[-1] - NOISE_PRIOR[0]) / NOISE_PRIOR[1] ** 2
    if not math.isfinite(nll) or not np.all(np.isfinite(grad)):
        return 1e10, np.zeros_like(theta)
    return nll, grad
