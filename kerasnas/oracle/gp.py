"""Gaussian process regression over architectures, with an edit-distance kernel.

numpy and scipy only: the oracle hands in edit distances, never graphs.

Glossary:
    n        observed architectures (trained trials)
    m        candidate architectures
    D_i      (n, n) distances between observed architectures, one matrix per
             kind of distance i (the oracle uses the edit distance and the
             differences in log2 FLOPs and in depth)
    D_*i     (m, n) the same distances from candidates to observed ones
    l_i      lengthscale of distance i
    y        (n,) observations; standardised inside the model
    k(a, b)  exp(-sum_i D_i(a, b) / l_i), a product of Laplace kernels
             (Auto-Keras used the edit distance alone, through a Bourgain
             embedding; here a diagonal jitter keeps K positive definite)
    noise    observation noise variance on the standardised scale
    mu, sd   posterior mean and standard deviation, on the scale of y
    beta     weight of sd in the upper confidence bound mu + beta * sd
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.stats import norm

LENGTHSCALES = (0.5, 1.0, 2.0, 4.0, 8.0, np.inf)
NOISES = (1e-4, 1e-3, 1e-2, 1e-1)


def _cholesky(K):
    """Cholesky factor of K, adding jitter until it succeeds."""
    jitter = 0.0
    for _ in range(8):
        try:
            return cho_factor(K + jitter * np.eye(len(K)), lower=True), jitter
        except np.linalg.LinAlgError:
            jitter = max(1e-8, jitter * 10)
    raise np.linalg.LinAlgError("The kernel matrix is not positive definite even with jitter.")


def _stack(distances):
    """One (n, m) array, or a list of them, as an array (kinds, n, m)."""
    distances = np.asarray(distances, dtype=float)
    return distances[None] if distances.ndim == 2 else distances


class GaussianProcess:
    """GP regression with a product of Laplace kernels on precomputed distances.

    `fit` picks one lengthscale per kind of distance (`inf` switches that
    distance off) and the noise that maximise the log marginal likelihood
    over a small grid (the Auto-Keras paper fixed them).

    Args:
        lengthscales: lengthscales to choose from, for every kind of
            distance. Defaults to `LENGTHSCALES`.
        noises: noise variances to choose from. Defaults to `NOISES`.

    Example:
        ```pycon
        >>> gp = GaussianProcess().fit([D_edit, D_size], y)   # each (n, n); y: (n,)
        >>> mu, sd = gp.predict([D_edit_star, D_size_star])   # each (m, n)
        ```
    """

    def __init__(self, lengthscales=LENGTHSCALES, noises=NOISES):
        self.lengthscales = tuple(lengthscales)
        self.noises = tuple(noises)
        self.lengthscale = None  # one per kind of distance, after `fit`
        self.noise = None

    def fit(self, distances, y):
        """Fits the GP to observations `y` (n,).

        Args:
            distances: an (n, n) array of pairwise distances, or a list of them.
            y: (n,) observed values.

        Returns:
            self.
        """
        distances = _stack(distances)  # (kinds, n, n)
        y = np.asarray(y, dtype=float)
        if distances.shape[1:] != (len(y), len(y)) or len(y) == 0:
            raise ValueError(
                f"Expected distances of shape (n, n) for n = len(y) >= 1 observations. "
                f"Received: distances.shape={distances.shape[1:]}, len(y)={len(y)}"
            )
        self._mean = float(y.mean())
        self._scale = float(y.std()) or 1.0
        z = (y - self._mean) / self._scale  # (n,)
        best = None
        for lengthscale in itertools.product(self.lengthscales, repeat=len(distances)):
            if all(np.isinf(lengthscale)):
                continue
            scaled = np.tensordot(1.0 / np.array(lengthscale), distances, axes=1)  # (n, n)
            for noise in self.noises:
                K = np.exp(-scaled) + noise * np.eye(len(z))  # (n, n)
                factor, _ = _cholesky(K)
                alpha = cho_solve(factor, z)  # (n,)
                log_det = 2 * np.log(np.diag(factor[0])).sum()
                likelihood = -0.5 * z @ alpha - 0.5 * log_det
                if best is None or likelihood > best[0] + 1e-9:
                    best = (likelihood, lengthscale, noise, factor, alpha)
        _, self.lengthscale, self.noise, self._factor, self._alpha = best
        return self

    def predict(self, cross_distances):
        """Posterior mean and standard deviation for candidates.

        Args:
            cross_distances: (m, n) distances from candidates to the
                observations, or a list of them (as given to `fit`).

        Returns:
            `(mu, sd)`, each of shape (m,), on the scale of `y`.
        """
        if self.lengthscale is None:
            raise RuntimeError("Call `fit` before `predict`.")
        cross = _stack(cross_distances)  # (kinds, m, n)
        k_star = np.exp(-np.tensordot(1.0 / np.array(self.lengthscale), cross, axes=1))  # (m, n)
        mu = k_star @ self._alpha  # (m,)
        v = cho_solve(self._factor, k_star.T)  # (n, m)
        var = np.maximum(1.0 - np.einsum("mn,nm->m", k_star, v), 1e-12)  # (m,)
        return mu * self._scale + self._mean, np.sqrt(var) * self._scale


def upper_confidence_bound(mu, sd, beta):
    """UCB acquisition `mu + beta * sd`; shapes (m,)."""
    return np.asarray(mu) + beta * np.asarray(sd)


def expected_improvement(mu, sd, best):
    """Expected improvement over `best`: E[max(f - best, 0)] for f ~ N(mu, sd^2); shapes (m,)."""
    mu, sd = np.asarray(mu, float), np.maximum(np.asarray(sd, float), 1e-12)
    u = (mu - best) / sd
    return (mu - best) * norm.cdf(u) + sd * norm.pdf(u)


def gain_per_cost(gain, cost_ratio):
    """Trades expected gain against relative cost.

    A positive gain is divided by the cost ratio (gain per second); a
    negative one is multiplied by it, so that among candidates not expected
    to improve, the cheaper still ranks higher.

    Args:
        gain: (m,) expected improvement over the best score so far (may be < 0).
        cost_ratio: (m,) each candidate's predicted cost over a typical cost (> 0).

    Returns:
        (m,) cost-aware acquisition values.
    """
    gain, cost_ratio = np.asarray(gain, float), np.asarray(cost_ratio, float)
    return np.where(gain > 0, gain / cost_ratio, gain * cost_ratio)
