"""Local minimization of U from many starting points at once, and the Hessian test that says what was reached.

* :func:`quench`: limited-memory BFGS batched over starting points (rows), on any device: each row keeps its own
  curvature pairs (the two-loop recursion runs over all rows at once) and its own backtracking (Armijo) step, so a row
  never waits for, nor is steered by, another. The box [-L, L]^p is kept by projection: coordinates at a face whose
  gradient points outwards are *active* and held; a row has converged when the norm of its projected gradient is
  below ``tol``. A row that does not converge within ``max_iter`` iterations is reported as such, never dropped.
* the Hessian on the free (inactive) coordinates of each end point is :func:`mcmc_landscape.hessian.hessian_spectrum`
  (the one home of Hessian numerics); :func:`classify` reads its :class:`~mcmc_landscape.hessian.Spectrum`.
* :func:`classify`: minimum (no negative eigenvalue), saddle of index k (k negative eigenvalues), or not converged;
  eigenvalues within a relative tolerance of 0 are *flat* directions (a dead ReLU unit gives several) and are
  counted apart, not taken for a descent direction.

An energy is any ``energy(theta) -> U`` mapping a (rows, p) tensor to (rows,) that torch can differentiate; rows must
not interact (U of a row depends on that row only). :func:`mlp_objective` builds the classifier's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mcmc_landscape.devices import resolve_device
from mcmc_landscape.errors import SpecError
from mcmc_landscape.hessian import Spectrum

EnergyFn = Callable[[torch.Tensor], torch.Tensor]
GradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def autograd_energy_grad(energy: EnergyFn) -> GradFn:
    """(U, ∇U) of a row-wise energy by one backward pass (rows are independent, so ∇ΣU gives every row's ∇U)."""

    def fg(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            t = theta.detach().requires_grad_(True)
            u = energy(t)
            (g,) = torch.autograd.grad(u.sum(), t)
        return u.detach(), g

    return fg


def mlp_objective(spec: Any, x: np.ndarray, y: np.ndarray, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float64) -> tuple[EnergyFn, GradFn]:
    """The sampler's classifier energy U(θ) = Σ CE on (x, y) as (energy, energy-and-gradient) on ``device``; the
    gradient is the written-out backward pass of :func:`mcmc_landscape.models.energy.mlp_energy_and_grad_torch` (on small
    batches it beats both autograd and the Numba threads, whose wake-up costs more than the work)."""
    from mcmc_landscape.models.energy import mlp_energy_and_grad_torch, mlp_energy_torch

    dev = resolve_device(device)
    xt = torch.as_tensor(np.asarray(x), dtype=dtype, device=dev)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=dev)
    return (lambda theta: mlp_energy_torch(theta, spec, xt, yt)), \
        (lambda theta: mlp_energy_and_grad_torch(theta, spec, xt, yt))


@dataclass
class QuenchResult:
    """End points of a batched quench, one row per starting point."""

    theta: np.ndarray            # (n, p)
    energy: np.ndarray           # (n,)
    grad_norm: np.ndarray        # (n,) norm of the projected gradient
    converged: np.ndarray        # (n,) bool
    iterations: np.ndarray       # (n,) iterations used
    active: np.ndarray           # (n, p) bool: held at a face of the box
    stalled: np.ndarray          # (n,) bool: stopped because no step lowered U (see :func:`quench`)


def _active(x: torch.Tensor, g: torch.Tensor, box: float | None) -> torch.Tensor:
    if box is None:
        return torch.zeros_like(x, dtype=torch.bool)
    return ((x <= -box) & (g > 0)) | ((x >= box) & (g < 0))


def quench(energy_grad: GradFn, theta0: np.ndarray | torch.Tensor, box: float | None = None, tol: float = 1e-6,
           max_iter: int = 2000, history: int = 10, max_backtracks: int = 40, device: str | torch.device = "cpu",
           dtype: torch.dtype = torch.float64) -> QuenchResult:
    """Minimize U from every row of ``theta0`` (n, p) to ‖projected ∇U‖ < ``tol`` inside ``[-box, box]^p``.

    Rows that finish leave the batch, so the work follows the rows still running. A row whose energy cannot be
    lowered even by a step of 2^-max_backtracks along the steepest descent has *stalled* (a kink of a ReLU network,
    or the floating-point floor, where U stops decreasing for three steps): it stops and is reported unconverged
    unless its gradient is below ``tol``. On the CPU, small batches run on one thread (the tensors are tiny; waking
    more threads costs more than the work).
    """
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and np.size(theta0) < 1_000_000:
        torch.set_num_threads(1)
    try:
        return _quench(energy_grad, theta0, box, tol, max_iter, history, max_backtracks, dev, dtype)
    finally:
        torch.set_num_threads(threads)


def _quench(energy_grad: GradFn, theta0: np.ndarray | torch.Tensor, box: float | None, tol: float, max_iter: int,
            history: int, max_backtracks: int, dev: torch.device, dtype: torch.dtype) -> QuenchResult:
    x = torch.as_tensor(np.asarray(theta0) if not torch.is_tensor(theta0) else theta0, dtype=dtype, device=dev).clone()
    if x.ndim != 2:
        raise SpecError(f"starting points must be an array (n, p), got shape {tuple(x.shape)}.")
    if box is not None:
        x.clamp_(-box, box)
    n, p = x.shape
    out_x, out_f = x.clone(), torch.zeros(n, dtype=dtype, device=dev)
    out_stall = torch.zeros(n, dtype=torch.bool, device=dev)
    out_it = torch.zeros(n, dtype=torch.int64, device=dev)
    rows = torch.arange(n, device=dev)                        # original index of each live row
    f, g = energy_grad(x)
    S = torch.zeros(history, n, p, dtype=dtype, device=dev)
    Y = torch.zeros_like(S)
    rho = torch.zeros(history, n, dtype=dtype, device=dev)
    k = 0                                                     # valid curvature pairs, oldest first
    reset = torch.zeros(n, dtype=torch.bool, device=dev)      # rows to restart along the steepest descent
    flat_steps = torch.zeros(n, dtype=torch.int64, device=dev)  # consecutive steps that did not lower U
    c1 = 1e-4
    for it in range(max_iter + 1):
        act = _active(x, g, box)
        pg = torch.where(act, torch.zeros_like(g), g)
        gn = pg.norm(dim=1)
        finished = (gn < tol) | ~torch.isfinite(f)
        if it == max_iter:
            finished = torch.ones_like(finished)
        if bool(finished.any()):
            out_x[rows[finished]], out_f[rows[finished]] = x[finished], f[finished]
            out_it[rows[finished]] = it
            live = ~finished
            rows, x, f, g, pg, gn, act, reset, flat_steps = (t[live] for t in (rows, x, f, g, pg, gn, act, reset,
                                                                                flat_steps))
            S, Y, rho = S[:, live], Y[:, live], rho[:, live]
        if len(rows) == 0:
            break
        # two-loop recursion, all live rows at once
        q = pg.clone()
        alphas = []
        for i in range(k - 1, -1, -1):
            a = rho[i] * (S[i] * q).sum(1)
            q -= a[:, None] * Y[i]
            alphas.append(a)
        if k:
            sy = (S[k - 1] * Y[k - 1]).sum(1)
            yy = (Y[k - 1] * Y[k - 1]).sum(1)
            gamma = torch.where((sy > 0) & (yy > 0), sy / yy.clamp_min(1e-300), 1.0 / gn.clamp_min(1.0))
        else:
            gamma = 1.0 / gn.clamp_min(1.0)                   # first step: at most unit length
        r = q * gamma[:, None]
        for i, a in zip(range(k), reversed(alphas), strict=True):
            b = rho[i] * (Y[i] * r).sum(1)
            r += S[i] * (a - b)[:, None]
        d = torch.where(act, torch.zeros_like(r), -r)
        bad = ~((d * pg).sum(1) < 0) | reset
        d = torch.where(bad[:, None], -pg * (1.0 / gn.clamp_min(1.0))[:, None], d)
        # backtracking; only the rows still looking for a step are evaluated
        m = len(rows)
        step = torch.ones(m, dtype=dtype, device=dev)
        x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
        pending = torch.arange(m, device=dev)
        for _ in range(max_backtracks):
            xp = x[pending]
            trial = xp + step[pending, None] * d[pending]
            if box is not None:
                trial = trial.clamp(-box, box)
            ft, gt = energy_grad(trial)
            ok = (ft <= f[pending] + c1 * (g[pending] * (trial - xp)).sum(1)) & torch.isfinite(ft)
            acc = pending[ok]
            x_new[acc], f_new[acc], g_new[acc] = trial[ok], ft[ok], gt[ok]
            pending = pending[~ok]
            if len(pending) == 0:
                break
            step[pending] *= 0.5
        stuck = torch.zeros(m, dtype=torch.bool, device=dev)
        stuck[pending] = True
        s, yv = x_new - x, g_new - g
        sy = (s * yv).sum(1)
        keep = sy > 1e-12 * s.norm(dim=1) * yv.norm(dim=1)
        if k == history:                                      # drop the oldest pair
            S, Y, rho = S.roll(-1, 0), Y.roll(-1, 0), rho.roll(-1, 0)
            k -= 1
        S[k] = torch.where(keep[:, None], s, torch.zeros_like(s))
        Y[k] = torch.where(keep[:, None], yv, torch.zeros_like(yv))
        rho[k] = torch.where(keep, 1.0 / sy.where(keep, torch.ones_like(sy)), torch.zeros_like(sy))
        k += 1
        flat_steps = torch.where(f_new < f, torch.zeros_like(flat_steps), flat_steps + 1)
        x, f, g = x_new, f_new, g_new
        # no decrease even along the steepest descent, or U at its floating-point floor for 3 steps
        stall = (stuck & bad) | (flat_steps >= 3)
        reset = stuck & ~bad
        if bool(stall.any()):
            out_x[rows[stall]], out_f[rows[stall]] = x[stall], f[stall]
            out_it[rows[stall]] = it + 1
            out_stall[rows[stall]] = True
            live = ~stall
            rows, x, f, g, reset, flat_steps = (t[live] for t in (rows, x, f, g, reset, flat_steps))
            S, Y, rho = S[:, live], Y[:, live], rho[:, live]
    f, g = energy_grad(out_x)
    act = _active(out_x, g, box)
    gn = torch.where(act, torch.zeros_like(g), g).norm(dim=1)
    return QuenchResult(out_x.cpu().numpy(), f.cpu().numpy(), gn.cpu().numpy(), (gn < tol).cpu().numpy(),
                        out_it.cpu().numpy(), act.cpu().numpy(), out_stall.cpu().numpy())


@dataclass
class PointKind:
    """What a quench end point is."""

    kind: str                     # "minimum" | "saddle" | "not_converged"
    index: int                    # number of negative eigenvalues (a lower bound when the spectrum is partial)
    n_flat: int                   # eigenvalues within the flat tolerance of 0
    n_active: int                 # coordinates held at a face of the box
    lambda_min: float
    lambda_max: float
    lowest_positive: float
    method: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: (v if not isinstance(v, float) or np.isfinite(v) else None) for k, v in self.__dict__.items()}


def classify(spectrum: Spectrum, converged: bool, n_active: int = 0, flat_rtol: float = 1e-6,
             flat_atol: float = 1e-8) -> PointKind:
    """Minimum / saddle of index k / not converged, from the Hessian spectrum at a quench end point; eigenvalues
    with |λ| ≤ flat_atol + flat_rtol·max|λ| are flat (neither a descent nor a curvature direction)."""
    ev = np.asarray(spectrum.eigenvalues, dtype=np.float64)
    scale = float(np.abs(ev).max()) if ev.size else 0.0
    flat_tol = flat_atol + flat_rtol * scale
    neg = int((ev < -flat_tol).sum())
    flat = int((np.abs(ev) <= flat_tol).sum())
    pos = ev[ev > flat_tol]
    if not converged:
        kind = "not_converged"
    else:
        kind = "minimum" if neg == 0 else "saddle"
    return PointKind(kind, neg, flat, int(n_active), float(ev.min()) if ev.size else float("nan"),
                     float(ev.max()) if ev.size else float("nan"), float(pos.min()) if pos.size else float("nan"),
                     spectrum.method)
