"""The one home of Hessian numerics: exact Hessians, Lanczos on Hessian-vector products, and the spectrum at a point.

An energy is any ``energy(theta) -> U`` mapping a (rows, p) tensor to (rows,) that torch can differentiate; rows must
not interact (U of a row depends on that row only).

* :func:`hessian_spectrum`: the Hessian on the free (inactive) coordinates of each row: exact through
  ``torch.func.hessian`` for small p, the lowest eigenvalues by Lanczos (``scipy.sparse.linalg.eigsh`` on
  Hessian-vector products) for large p. :func:`mcmc_landscape.optimize.classify` reads it at quench end points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .devices import resolve_device
from .errors import SpecError

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Spectrum:
    """Eigenvalues of the Hessian on the free coordinates of one point (all of them, or the lowest few)."""

    eigenvalues: np.ndarray
    n_free: int
    complete: bool               # every eigenvalue (exact) or only the lowest (Lanczos)
    method: str


def _single(energy: EnergyFn) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: energy(t.unsqueeze(0))[0]


def exact_hessians(energy: EnergyFn, theta: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """The full Hessians (n, p, p) by ``torch.func.hessian`` under ``vmap``, ``chunk`` rows at a time."""
    from torch.func import hessian, vmap

    fn = vmap(hessian(_single(energy)))
    return torch.cat([fn(theta[i : i + chunk]) for i in range(0, len(theta), chunk)]) if len(theta) else \
        theta.new_zeros((0, theta.shape[1], theta.shape[1]))


def lanczos_lowest(energy: EnergyFn, theta: torch.Tensor, free: np.ndarray, k: int = 6, tol: float = 1e-8) \
        -> np.ndarray:
    """The ``k`` lowest Hessian eigenvalues at one θ on the coordinates ``free``, by Lanczos on Hessian-vector
    products (``torch.func.jvp`` of the gradient): the Hessian is never formed."""
    from scipy.sparse.linalg import LinearOperator, eigsh
    from torch.func import grad, jvp

    idx = torch.as_tensor(np.flatnonzero(free), device=theta.device)
    m = len(idx)
    gfn = grad(_single(energy))

    def hvp(v: np.ndarray) -> np.ndarray:
        full = torch.zeros_like(theta)
        full[idx] = torch.as_tensor(np.ravel(v), dtype=theta.dtype, device=theta.device)
        _, hv = jvp(gfn, (theta,), (full,))
        return hv[idx].detach().cpu().numpy()

    op = LinearOperator((m, m), matvec=hvp, dtype=np.float64)
    k = max(1, min(k, m - 1))
    vals = eigsh(op, k=k, which="SA", tol=tol, return_eigenvectors=False, maxiter=max(1000, 20 * m))
    return np.sort(vals)


def hessian_spectrum(energy: EnergyFn, theta: np.ndarray, active: np.ndarray | None = None, method: str = "auto",
                     exact_max_p: int = 400, k: int = 6, device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float64) -> list[Spectrum]:
    """Spectrum of the Hessian on the free coordinates of every row of ``theta`` (exact up to ``exact_max_p``)."""
    theta = np.atleast_2d(theta)
    n, p = theta.shape
    active = np.zeros((n, p), bool) if active is None else np.asarray(active, bool)
    if method == "auto":
        method = "exact" if p <= exact_max_p else "lanczos"
    if method not in ("exact", "lanczos"):
        raise SpecError(f"Hessian method must be auto, exact or lanczos, got {method!r}.")
    dev = resolve_device(device)
    t = torch.as_tensor(theta, dtype=dtype, device=dev)
    out: list[Spectrum] = []
    if method == "exact":
        H = exact_hessians(energy, t).cpu().numpy()
        for i in range(n):
            free = ~active[i]
            sub = H[i][np.ix_(free, free)]
            sub = 0.5 * (sub + sub.T)
            out.append(Spectrum(np.linalg.eigvalsh(sub) if free.any() else np.zeros(0), int(free.sum()), True, "exact"))
        return out
    for i in range(n):
        free = ~active[i]
        vals = lanczos_lowest(energy, t[i], free, k) if free.sum() > 1 else np.zeros(0)
        out.append(Spectrum(vals, int(free.sum()), False, "lanczos"))
    return out
