"""What kind of minimum a point is: an isolated point, or a k-dimensional manifold of equal U beyond the symmetry
orbit, and the Hessian's spectrum summary (top eigenvalue, trace, log-determinant of the non-null part).

The continuous symmetries (ReLU rescaling, the logit shift) make U constant along their orbit, so each tangent vector
of the orbit is a null direction of the Hessian at a minimum; discrete symmetries (permutations, sign flips) give
none. The null directions *beyond* the orbit are counted on H + α·QQᵀ (Q an orthonormal basis of the orbit's tangent
on the free coordinates, α ≥ the top eigenvalue): the orbit's null directions are lifted to α and what stays at 0 is
the manifold (dead units, saturated units, flat valleys). The numerics are :mod:`mcmc_landscape.hessian`'s: the exact
Hessian for small p, Lanczos on Hessian-vector products for large p (the lowest of −H gives the top of H).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mcmc_landscape.hessian import EnergyFn, exact_hessians, lanczos_lowest


def orbit_basis(tangent: np.ndarray, free: np.ndarray, rtol: float = 1e-8) -> np.ndarray:
    """Orthonormal basis (m, r) of the tangent vectors (k, p) restricted to the free coordinates; r is the orbit's
    dimension there (vectors that vanish, e.g. the rescaling of an all-zero unit, add nothing)."""
    t = np.asarray(tangent, dtype=np.float64).reshape(-1, len(free))[:, free].T
    if t.size == 0:
        return np.zeros((int(free.sum()), 0))
    u, s, _ = np.linalg.svd(t, full_matrices=False)
    return u[:, s > rtol * max(1.0, float(s.max()) if s.size else 0.0)]


def _summary(ev: np.ndarray, flat_tol: float) -> dict[str, Any]:
    pos = ev[ev > flat_tol]
    return {"top": float(ev.max()) if ev.size else None, "trace": float(ev.sum()),
            "logdet_nonnull": float(np.log(pos).sum()) if pos.size else 0.0, "n_nonnull": int(pos.size)}


def minimum_kind(energy: EnergyFn, theta: np.ndarray, tangent: np.ndarray, active: np.ndarray | None = None,
                 method: str = "auto", exact_max_p: int = 400, k: int = 12, flat_rtol: float = 1e-6,
                 flat_atol: float = 1e-8, device: str | torch.device = "cpu", hutchinson: int = 8,
                 seed: int = 0, lanczos_tol: float = 1e-8, slq_vectors: int = 8, slq_steps: int = 48) \
        -> dict[str, Any]:
    """For one minimum θ (p,): the null dimension of the Hessian (free coordinates), the orbit's dimension, the
    manifold's dimension beyond it (0: a point), and the spectrum summary. ``tangent`` (k, p): the orbit's tangent
    vectors at θ (e.g. :func:`mcmc_landscape.models.symmetry.orbit_tangent`). With Lanczos only the ``k`` lowest
    eigenvalues beyond the orbit are seen (a manifold of ≥ k dimensions is reported as "at least k"), the trace is
    Hutchinson's estimate, and the log-determinant of the non-null part (eigenvalues above the flat tolerance) is
    stochastic Lanczos quadrature's (``slq_vectors`` starts of ``slq_steps`` steps), with its sampling standard error
    and its change from half the steps (the quadrature's error, which the standard error does not hold).
    Lanczos converges slowly on the cluster of near-zero eigenvalues a network has; ``lanczos_tol`` trades accuracy
    for time there."""
    theta = np.asarray(theta, dtype=np.float64)
    p = theta.shape[-1]
    free = np.ones(p, bool) if active is None else ~np.asarray(active, bool)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    t = torch.as_tensor(theta, dtype=torch.float64, device=dev)
    Q = orbit_basis(tangent, free)
    orbit_dim = Q.shape[1]
    if method == "auto":
        method = "exact" if p <= exact_max_p else "lanczos"
    if method == "exact":
        H = exact_hessians(energy, t[None])[0].cpu().numpy()
        H = 0.5 * (H + H.T)[np.ix_(free, free)]
        ev = np.linalg.eigvalsh(H) if H.size else np.zeros(0)
        scale = float(np.abs(ev).max()) if ev.size else 0.0
        flat_tol = flat_atol + flat_rtol * scale
        alpha = max(1.0, scale)
        lifted = np.linalg.eigvalsh(H + alpha * Q @ Q.T) if H.size else np.zeros(0)
        null_dim = int((np.abs(ev) <= flat_tol).sum())
        manifold = int((np.abs(lifted) <= flat_tol).sum())
        return {"method": "exact", "negative_beyond_orbit": int((lifted < -flat_tol).sum()), "flat_tol": flat_tol,
                "flat_to_working_precision": scale <= flat_tol,
                "n_free": int(free.sum()), "null_dim": null_dim, "orbit_dim": orbit_dim,
                "manifold_dim": manifold, "manifold_dim_is_lower_bound": False, **_summary(ev, flat_tol)}
    top = -float(lanczos_lowest(lambda u: -energy(u), t, free, k=1, tol=lanczos_tol)[0])
    alpha = top if top > 0 else 1.0       # the lifted directions at H's own scale, which Lanczos's accuracy follows
    idx = torch.as_tensor(np.flatnonzero(free), device=dev)
    Qt = torch.as_tensor(Q, dtype=torch.float64, device=dev)

    def lifted_energy(u: torch.Tensor) -> torch.Tensor:          # U + α/2 ‖Qᵀ(u − θ)‖² on the free coordinates
        d = (u - t)[..., idx] @ Qt
        return energy(u) + 0.5 * alpha * (d * d).sum(-1)

    low = lanczos_lowest(lifted_energy, t, free, k=k, tol=lanczos_tol)
    # the spectral radius sets the scale (a strong negative direction among tiny positive ones is a saddle); an
    # absolute floor below it: where every eigenvalue is under the floor (a zero-loss plateau, say) the curvature is
    # roundoff, so every direction counts as flat rather than some as "negative"
    scale = max(abs(top), float(np.abs(low).max()) if len(low) else 0.0)
    flat_tol = max(flat_atol, max(flat_rtol, 10 * lanczos_tol) * scale)
    manifold = int((np.abs(low) <= flat_tol).sum())
    negative = int((low < -flat_tol).sum())
    return {"method": "lanczos", "negative_beyond_orbit": negative, "flat_tol": flat_tol,
            "flat_to_working_precision": scale <= flat_tol, "n_free": int(free.sum()),
            "null_dim": manifold + orbit_dim, "orbit_dim": orbit_dim,
            "manifold_dim": manifold, "manifold_dim_is_lower_bound": manifold >= len(low), "top": top,
            "trace": _hutchinson_trace(energy, t, free, hutchinson, seed),
            **_slq_logdet(energy, t, free, flat_tol, slq_vectors, slq_steps, seed), "logdet_method": "slq",
            "lowest_beyond_orbit": [float(v) for v in low]}


def _masked_operator(energy: EnergyFn, theta: torch.Tensor, free: np.ndarray) \
        -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """(op, mask): op(Z) = P H P Z for Z (1, m, p), P the projection on the free coordinates, by batched
    Hessian-vector products (never H)."""
    from mcmc_landscape.hessian import batched_hvp

    hvp = batched_hvp(energy)
    mask = torch.as_tensor(free, device=theta.device, dtype=theta.dtype)

    def op(Z: torch.Tensor) -> torch.Tensor:
        V = Z[0] * mask
        return (hvp(theta.expand(len(V), -1), V) * mask)[None]

    return op, mask


def _hutchinson_trace(energy: EnergyFn, theta: torch.Tensor, free: np.ndarray, probes: int, seed: int) -> float:
    """tr H on the free coordinates ≈ mean of vᵀHv over Rademacher v, masked to the free coordinates
    (:func:`~mcmc_landscape.hessian.hutchinson_trace` on batched Hessian-vector products, never H)."""
    from mcmc_landscape.hessian import hutchinson_trace

    op, _ = _masked_operator(energy, theta, free)
    mean, _ = hutchinson_trace(op, 1, theta.numel(), max(probes, 1), theta.dtype, theta.device, seed)
    return float(mean[0])


def _slq_logdet(energy: EnergyFn, theta: torch.Tensor, free: np.ndarray, cutoff: float, vectors: int, steps: int,
                seed: int) -> dict[str, float]:
    """log det of the non-null part on the free coordinates by stochastic Lanczos quadrature, with its standard
    error and the estimated number of non-null eigenvalues (:func:`mcmc_landscape.hessian.slq_logdet`)."""
    from mcmc_landscape.hessian import slq_logdet

    op, mask = _masked_operator(energy, theta, free)
    r = slq_logdet(op, 1, int(free.sum()), vectors, steps, cutoff, theta.dtype, theta.device, mask=mask, seed=seed)
    return {"logdet_nonnull": float(r["logdet"][0]), "logdet_stderr": float(r["stderr"][0]),
            "logdet_quadrature_change": float(r["quadrature_change"][0]), "n_nonnull": float(r["n_nonnull"][0])}


def describe_kind(kind: dict[str, Any]) -> str:
    """"a point" or "a k-dimensional manifold" (beyond the symmetry orbit)."""
    m = int(kind["manifold_dim"])
    if kind.get("flat_to_working_precision"):
        return f"flat to working precision (every eigenvalue within {kind['flat_tol']:.1g} of 0)"
    if kind.get("negative_beyond_orbit"):
        return f"not a strict minimum ({kind['negative_beyond_orbit']} negative directions beyond the orbit)"
    if m == 0:
        return "a point"
    return f"a {'≥' if kind.get('manifold_dim_is_lower_bound') else ''}{m}-dimensional manifold"
