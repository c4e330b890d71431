"""Comparing draws across runs: the energy-distance two-sample test and the isometry that undoes a data rotation.

Rotating the inputs by R (x → R x) is undone by mapping the first-layer weights W1 → Rᵀ W1 (rows are inputs):
U(θ; R x) = U(θ'; x). The map is an isometry of parameter space, so the landscape at angle α is an exact isometric
image of the one at angle 0, except where the box [-L, L]^p cuts it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import cdist

from mcmc_landscape.data.datasets import rotation_matrix
from mcmc_landscape.models.nets import MLPSpec


def unrotate(theta: np.ndarray, spec: MLPSpec, angle_deg: float) -> np.ndarray:
    """Map draws of the landscape at ``angle_deg`` to the landscape at angle 0: W1 → Rᵀ W1."""
    if spec.n_in != 2:
        raise ValueError("rotation applies to 2-D inputs only")
    theta = np.array(theta, dtype=np.float64, copy=True)
    w_off, b_off, fan_in, fan_out = spec.offsets()[0]
    W1 = theta[..., w_off:b_off].reshape(*theta.shape[:-1], fan_in, fan_out)
    theta[..., w_off:b_off] = (rotation_matrix(angle_deg).T @ W1).reshape(*theta.shape[:-1], fan_in * fan_out)
    return theta


def energy_distance(A: np.ndarray, B: np.ndarray) -> float:
    """Székely's energy distance 2E‖A-B‖ - E‖A-A'‖ - E‖B-B'‖ (zero iff the distributions are equal)."""
    ab = cdist(A, B).mean()
    aa = cdist(A, A).mean()
    bb = cdist(B, B).mean()
    return float(2 * ab - aa - bb)


def energy_test(A: np.ndarray, B: np.ndarray, n_perm: int = 200, random_state: int = 0,
                groups: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any] | None:
    """Permutation test of equal distributions with the energy distance; returns the statistic and p-value.

    ``groups`` (a label per row of A and per row of B, e.g. the chain each draw came from) makes the rows of one label
    move together in the permutations. Draws of one MCMC chain are dependent: permuting them one by one treats a chain
    that sat in one mode as hundreds of independent witnesses, and two samples of the same law (another seed) come out
    "different". With groups the exchangeable units are the chains, which are independent under the null. The test
    is :func:`analysis.invariance.unit_energy_test` on every row (without groups, each row its own unit)."""
    from .invariance import unit_energy_test

    A, B = np.asarray(A, float), np.asarray(B, float)
    ga, gb = (np.arange(len(A)), np.arange(len(B))) if groups is None else groups
    out = unit_energy_test(A, B, np.asarray(ga), np.asarray(gb), n_perm, random_state, max_rows=max(len(A), len(B)))
    if out is not None:
        out["unit"] = "draw" if groups is None else "group"
    return out


def plane_angle_degrees(U: np.ndarray, V: np.ndarray) -> float:
    """Largest principal angle between two planes given by orthonormal 2 × d bases (0 = the same plane)."""
    s = np.linalg.svd(np.asarray(U) @ np.asarray(V).T, compute_uv=False)
    return float(np.degrees(np.arccos(np.clip(s.min(), -1.0, 1.0))))


def matched_procrustes(A: np.ndarray, B: np.ndarray, n: int = 300, iters: int = 20, random_state: int = 0) -> float:
    """Procrustes disparity between two unpaired 2-D arrangements.

    The points of two runs do not correspond, so pairs are found as well: ``n`` random points of each, then, from each
    of the four sign choices of B's principal axes, alternate an optimal one-to-one assignment (Hungarian, on distances)
    with a Procrustes fit (rotation, reflection, scale, translation) until the pairing settles. Returns the smallest
    disparity (0: the same shape; 1: nothing in common). Two samples of one distribution score near 0 as n grows.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import procrustes

    rng = np.random.default_rng(random_state)
    k = min(n, len(A), len(B))
    if k < 3:
        return float("nan")
    A = np.asarray(A, float)[rng.choice(len(A), k, replace=False)]
    B = np.asarray(B, float)[rng.choice(len(B), k, replace=False)]

    def standard(X: np.ndarray) -> np.ndarray:
        X = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(X, full_matrices=False)
        X = X @ vt.T
        return X / np.linalg.norm(X)

    A, B = standard(A), standard(B)
    best = np.inf
    for signs in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        Bs = B * np.array(signs)  # B in A's frame, all points, its own order
        order = None
        for _ in range(iters):
            _, cols = linear_sum_assignment(cdist(A, Bs))
            if order is not None and np.array_equal(cols, order):
                break
            order = cols
            u, _, vt = np.linalg.svd(B[order].T @ A)  # orthogonal map of B onto A for this pairing
            Bs = B @ (u @ vt)
        best = min(best, float(procrustes(A, B[order])[2]))
    return best
