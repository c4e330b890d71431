"""Kernel PCA (RBF) of sampled parameters down to 3-D, and linear PCA of good minima down to 2-D.

``KernelEmbedding`` and ``PlaneFit`` are scikit-learn estimators (``BaseEstimator``, ``TransformerMixin``: settings
in the constructor and checked in ``fit(X, y=None)``, ``transform`` refused before ``fit``, fitted attributes with a
trailing underscore that mean what they mean in scikit-learn). ``KernelEmbedding`` has three solvers behind one
meaning:

* ``"exact"``: scikit-learn's ``KernelPCA`` with the dense eigen-solver (n³; the reference);
* ``"randomized"``: the same with its randomized solver;
* ``"nystroem"`` (default): scikit-learn's ``Nystroem`` features from ``n_landmarks`` landmarks followed by ``PCA``.
  ΦΦᵀ ≈ K, so PCA of the centred features is kernel PCA of the approximated kernel; its scores have the scale of
  ``KernelPCA.transform``. Fitting costs O(n m²) and transforming is chunked, so files larger than memory stream.

Two readings of the report's "approximation error" are reported:

* ``left_out_share_``: the share of the centred kernel's variance (its trace) not captured by the components. For the
  RBF kernel K_ii = 1, so trace(K_c)/n = 1 - ‖mean feature‖², known exactly without the n × n matrix.
* ``reconstruction_error``: ‖X - X̂‖² / ‖X - X̄‖², with X̂ the learned pre-image of the embedding (scikit-learn's
  ``fit_inverse_transform``, a kernel ridge map fitted on at most ``max_fit`` draws).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.decomposition import PCA, IncrementalPCA, KernelPCA
from sklearn.kernel_approximation import Nystroem
from sklearn.utils.validation import check_array, check_is_fitted

SOLVERS = ("nystroem", "exact", "randomized")


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class KernelEmbedding(TransformerMixin, BaseEstimator):
    """RBF kernel PCA to ``n_components`` dimensions (see the module docstring for the solvers).

    Fitted: ``gamma_`` (the kernel width used), ``explained_variance_`` (the centred kernel's variance along each
    component, as PCA's), ``explained_variance_ratio_`` (those as shares of the whole kernel variance
    ``kernel_variance_``), ``explained_kernel_variance_`` and ``left_out_share_`` (their sum and its complement),
    ``n_features_in_``. ``eigenvalues_`` is ``explained_variance_`` under its older name."""

    def __init__(self, n_components: int = 3, gamma: float | None = None, solver: str = "nystroem",
                 n_landmarks: int = 500, random_state: int | None = 0):
        self.n_components = n_components
        self.gamma = gamma
        self.solver = solver
        self.n_landmarks = n_landmarks
        self.random_state = random_state

    def _gamma(self, X: np.ndarray) -> float:
        return float(self.gamma) if self.gamma is not None else median_gamma(X, self.random_state)

    def _check_params(self) -> None:
        _check_int("n_components", self.n_components, 1)
        _check_int("n_landmarks", self.n_landmarks, 1)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.gamma is not None and not float(self.gamma) > 0:
            raise ValueError(f"gamma must be positive or None (the median heuristic), got {self.gamma!r}")

    def fit(self, X: np.ndarray, y: None = None) -> KernelEmbedding:
        self._check_params()
        X = check_array(X, dtype=np.float64)
        if X.shape[0] <= self.n_components:
            raise ValueError(f"need more than {self.n_components} rows of shape (n, p), got {X.shape}")
        self.gamma_ = self._gamma(X)
        n = X.shape[0]
        if self.solver == "nystroem":
            m = min(self.n_landmarks, n)
            self.nystroem_ = Nystroem(kernel="rbf", gamma=self.gamma_, n_components=m,
                                      random_state=self.random_state).fit(X)
            feats = self.nystroem_.transform(X)
            # n ≫ m: the m × m covariance route is exact and costs one n·m² product
            self.pca_ = PCA(n_components=self.n_components, svd_solver="covariance_eigh").fit(feats)
            mean = self.pca_.mean_
            self.kernel_variance_ = 1.0 - float(mean @ mean)  # trace(K_c) / n with K_ii = 1
            self.explained_variance_ = self.pca_.explained_variance_ * (n - 1) / n
        else:
            self.kpca_ = KernelPCA(n_components=self.n_components, kernel="rbf", gamma=self.gamma_,
                                   eigen_solver="dense" if self.solver == "exact" else "randomized",
                                   random_state=self.random_state).fit(X)
            self.explained_variance_ = self.kpca_.eigenvalues_ / n
            k_mean = _rbf_mean(X, self.gamma_)
            self.kernel_variance_ = 1.0 - k_mean
        self.explained_variance_ratio_ = self.explained_variance_ / self.kernel_variance_
        self.explained_kernel_variance_ = float(self.explained_variance_ratio_.sum())
        self.left_out_share_ = 1.0 - self.explained_kernel_variance_
        self.n_features_in_ = X.shape[1]
        return self

    @property
    def eigenvalues_(self) -> np.ndarray:
        return self.explained_variance_

    def transform(self, X: np.ndarray, chunk: int = 20000) -> np.ndarray:
        check_is_fitted(self, "explained_variance_")
        X = check_array(X, dtype=np.float64, ensure_min_samples=0)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the embedding was fitted with {self.n_features_in_}")
        return np.concatenate([self._transform(X[i : i + chunk]) for i in range(0, len(X), chunk)]) \
            if len(X) else np.empty((0, self.n_components))

    def _transform(self, X: np.ndarray) -> np.ndarray:
        if self.solver == "nystroem":
            return self.pca_.transform(self.nystroem_.transform(X))
        return self.kpca_.transform(X)

    def fit_transform(self, X: np.ndarray, y: None = None) -> np.ndarray:
        return self.fit(X).transform(X)

    def transform_stream(self, chunks: Iterable[np.ndarray]) -> np.ndarray:
        """Embed chunk by chunk: memory is one chunk of X plus the (n, 3) output."""
        check_is_fitted(self, "explained_variance_")
        return np.concatenate([self._transform(np.asarray(c, dtype=np.float64)) for c in chunks])


def median_gamma(X: np.ndarray, random_state: int | None = 0, n_pairs: int = 20000) -> float:
    """The median heuristic, γ = 1 / median ‖x_i - x_j‖², from random pairs.

    scikit-learn's default γ = 1/p assumes unit-scale features; on draws from [-10, 10]^p it makes the kernel matrix
    nearly the identity (every draw its own cluster) and kernel PCA meaningless. The median heuristic adapts to the
    scale of the draws. With at most ``n_pairs`` distinct pairs, all of them are used.
    """
    X = np.asarray(X)
    n = len(X)
    if n * (n - 1) // 2 <= n_pairs:  # few draws: every pair once, exactly
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(random_state)
        i = rng.integers(0, n, n_pairs)
        j = rng.integers(0, n, n_pairs)
    # pairs in chunks of ~64 MB, so that wide draws (p ≥ 1e5) never build an (n_pairs, p) array
    step = max(1, 2**23 // max(1, X.shape[1]))
    d2 = np.concatenate([((X[i[a : a + step]].astype(np.float64) - X[j[a : a + step]]) ** 2).sum(axis=1)
                         for a in range(0, len(i), step)])
    d2 = d2[i != j]
    med = float(np.median(d2)) if len(d2) else 0.0
    return 1.0 / med if med > 0 else 1.0


def _rbf_mean(X: np.ndarray, gamma: float, chunk: int = 4096) -> float:
    """Mean of the RBF kernel matrix, (1/n²) Σ_ij K_ij, computed in blocks."""
    from sklearn.metrics.pairwise import rbf_kernel

    total = 0.0
    for i in range(0, len(X), chunk):
        total += float(rbf_kernel(X[i : i + chunk], X, gamma=gamma).sum())
    return total / (len(X) ** 2)


def reconstruction_error(X: np.ndarray, n_components: int = 3, gamma: float | None = None, max_fit: int = 1000,
                         random_state: int = 0) -> float:
    """Relative error of the kernel-PCA pre-image map, ‖X - X̂‖² / ‖X - X̄‖², on a subsample of at most ``max_fit``."""
    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(random_state)
    if len(X) > max_fit:
        X = X[rng.choice(len(X), max_fit, replace=False)]
    g = float(gamma) if gamma is not None else median_gamma(X, random_state)
    kp = KernelPCA(n_components=n_components, kernel="rbf", gamma=g, fit_inverse_transform=True,
                   eigen_solver="randomized", random_state=random_state)
    Xh = kp.inverse_transform(kp.fit_transform(X))
    denom = float(((X - X.mean(axis=0)) ** 2).sum())
    return float(((X - Xh) ** 2).sum() / denom) if denom > 0 else 0.0


class PlaneFit(TransformerMixin, BaseEstimator):
    """Linear PCA of points (good minima in the 3-D embedding) to ``n_components``: how planar they are.

    Fitted, as scikit-learn's PCA names them: ``components_``, ``mean_``, ``explained_variance_ratio_`` (per kept
    component); and ``spectrum_`` (the ratios of every component), ``plane_share_`` (the kept components' share of
    the variance: how planar the points are), ``n_features_in_``."""

    def __init__(self, n_components: int = 2, incremental: bool = False, batch_size: int | None = None):
        self.n_components = n_components
        self.incremental = incremental
        self.batch_size = batch_size

    def fit(self, Y: np.ndarray, y: None = None) -> PlaneFit:
        _check_int("n_components", self.n_components, 1)
        if self.batch_size is not None:
            _check_int("batch_size", self.batch_size, 1)
        Y = check_array(Y, dtype=np.float64, ensure_min_samples=0)
        if len(Y) <= self.n_components:
            raise ValueError(f"need more than {self.n_components} points to fit a plane, got {len(Y)}")
        full = (IncrementalPCA(batch_size=self.batch_size) if self.incremental else PCA()).fit(Y)
        self.spectrum_ = full.explained_variance_ratio_
        self.components_ = full.components_[: self.n_components]
        self.mean_ = full.mean_
        self.explained_variance_ratio_ = self.spectrum_[: self.n_components]
        self.plane_share_ = float(self.explained_variance_ratio_.sum())
        self.n_features_in_ = Y.shape[1]
        return self

    def transform(self, Y: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "components_")
        return (check_array(Y, dtype=np.float64, ensure_min_samples=0) - self.mean_) @ self.components_.T


def procrustes_disparity(A: np.ndarray, B: np.ndarray) -> float:
    """scipy's Procrustes disparity (1 - R² after the best translation, scaling, rotation and reflection)."""
    from scipy.spatial import procrustes

    return float(procrustes(np.asarray(A, float), np.asarray(B, float))[2])
