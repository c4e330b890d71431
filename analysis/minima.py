"""Good minima: selection by loss, how planar they are, and the numbers that let that be judged.

* :func:`good_mask`: draws whose loss (U/n, the mean cross-entropy) is below a threshold (the report's 0.1).
* :func:`bootstrap_ci`: percentile bootstrap interval of any statistic of a point set.
* :func:`null_sets`: point sets with the same count as the good minima that carry no structure of the landscape:
  uniform in the box, a Gaussian with the draws' mean and covariance, and high-loss draws.
* :func:`twonn_dimension`: the TwoNN intrinsic-dimension estimate (Facco et al., 2017).
* :func:`pca_spectrum`: explained-variance ratios of the good minima in parameter space R^p.

Two components of three always explain at least 2/3 of the variance, so a plane fit's explained variance means
something only next to its null baselines and with its interval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.neighbors import NearestNeighbors


def good_mask(energy: np.ndarray, n_data: int, threshold: float = 0.1) -> np.ndarray:
    """True where the loss U/n is below ``threshold``."""
    return np.asarray(energy) / float(n_data) < threshold


def bootstrap_ci(stat: Callable[[np.ndarray], float], X: np.ndarray, n_boot: int = 200, level: float = 0.95,
                 random_state: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over rows of ``X`` resampled with replacement."""
    rng = np.random.default_rng(random_state)
    n = len(X)
    return percentile_interval([stat(X[rng.integers(0, n, n)]) for _ in range(n_boot)], level)


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of ``values`` (NaN ignored; (nan, nan) when there are none)."""
    v = np.asarray(values, float)
    if not np.any(np.isfinite(v)):
        return float("nan"), float("nan")
    lo, hi = np.nanpercentile(v, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def plane_share(Y: np.ndarray, k: int = 2) -> float:
    """Share of variance of the points ``Y`` explained by their first ``k`` principal components."""
    Y = np.asarray(Y, dtype=np.float64)
    if len(Y) <= k:
        return float("nan")
    ev = np.linalg.eigvalsh(np.cov(Y, rowvar=False))[::-1]
    total = ev.sum()
    return float(ev[:k].sum() / total) if total > 0 else float("nan")


def null_sets(theta: np.ndarray, loss: np.ndarray, threshold: float, count: int, box: float,
              random_state: int = 0) -> dict[str, np.ndarray]:
    """Structure-free point sets of ``count`` rows in parameter space (see the module docstring)."""
    rng = np.random.default_rng(random_state)
    n, p = theta.shape
    out = {"uniform": rng.uniform(-box, box, size=(count, p))}
    if p < n:
        out["gaussian"] = rng.multivariate_normal(theta.mean(axis=0), np.cov(theta, rowvar=False), size=count,
                                                  method="eigh")
    else:  # wide draws: the same Gaussian through its n factors, mean + Xcᵀz/√(n-1), never a p × p covariance
        mean = theta.mean(axis=0)
        out["gaussian"] = mean + rng.standard_normal((count, n)) @ (theta - mean) / np.sqrt(max(n - 1, 1))
    high = np.flatnonzero(loss >= threshold)
    if len(high) >= max(count, 4):
        out["high_loss"] = theta[rng.choice(high, count, replace=False)]
    return out


def twonn_dimension(X: np.ndarray, discard_fraction: float = 0.1, max_points: int = 5000,
                    random_state: int = 0) -> float:
    """TwoNN intrinsic dimension: slope through the origin of -log(1 - F(μ)) against log μ, μ = r2/r1, with the
    largest ``discard_fraction`` of ratios left out (Facco et al. 2017)."""
    X = np.asarray(X, dtype=np.float64)
    if len(X) > max_points:
        X = X[np.random.default_rng(random_state).choice(len(X), max_points, replace=False)]
    X = np.unique(X, axis=0)  # repeated draws (rejections) have zero distances
    if len(X) < 3:
        return float("nan")
    dist, _ = NearestNeighbors(n_neighbors=3).fit(X).kneighbors(X)
    r1, r2 = dist[:, 1], dist[:, 2]
    ok = r1 > 0
    mu = np.sort(r2[ok] / r1[ok])
    n = len(mu)
    keep = max(2, int(n * (1 - discard_fraction)))
    x = np.log(mu[:keep])
    y = -np.log(1.0 - np.arange(keep) / n)  # empirical CDF: -log(1 - F(μ)) = d log μ
    denom = float(x @ x)
    return float(x @ y / denom) if denom > 0 else float("nan")


def pca_spectrum(X: np.ndarray, max_components: int = 20) -> np.ndarray:
    """Explained-variance ratios of the leading principal components of ``X`` (n, p)."""
    X = np.asarray(X, dtype=np.float64)
    k = min(max_components, X.shape[1], max(1, len(X) - 1))
    return PCA(n_components=k).fit(X).explained_variance_ratio_
