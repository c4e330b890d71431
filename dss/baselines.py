"""Other ways to join the same two models, to compare with DSS on the same pairs.

* the straight line (the convex answer: found iff the interpolated loss never exceeds τ·L0);
* the quadratic Bézier curve of Garipov et al. (2018), φ(t) = (1−t)²θ_A + 2t(1−t)θ_C + t²θ_B, its control point θ_C
  trained by Adam on the training loss at random t (``n_t`` per step, each one gradient evaluation of the model),
  checked every ``check_every`` steps by the held-out loss on a dense grid of t; found when that maximum is ≤ τ·L0;
* AutoNEB (Draxler et al., 2018): a nudged elastic band of pivots (each moved by the training-loss gradient with its
  component along the band projected out, plus a spring along the band that keeps pivots evenly spaced), run in cycles;
  after each cycle every linear segment is scanned as DSS scans its links, and a pivot is inserted at the peak of each
  segment above τ·L0. Found when every pivot and every segment is ≤ τ·L0. Pivots are moved by Adam on the NEB force
  (Draxler et al. use SGD with momentum) with the plain central-difference tangent. The spring constant is 0.01 by
  default: on the polynomial tasks (distances of tens of units) a spring of 1 drags pivots off the low-loss valley
  (one cubic pair: 4× longer and slower, or not found at a higher rate), while 0, 0.01 and 0.1 all succeed on three
  pairs each of cubic 0.05 and quadratic 0.01 and 0.025.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .device import as_beads
from .interpolation import eval_in_batches, scan_links


@dataclass
class PathResult:
    method: str
    found: bool
    max_loss: float
    grad_evals: int
    length: float
    normalized_length: float
    wall_s: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _minibatches(task, seed: int):
    """The task's minibatch stream (None for a full-batch task)."""
    return task.minibatches(seed) if hasattr(task, "minibatches") else None


def _train_loss(task, theta: torch.Tensor, batches) -> torch.Tensor:
    return task.loss_train(theta) if batches is None else task.loss_train(theta, next(batches))


def straight_line(task, a: np.ndarray, b: np.ndarray, limit: float) -> PathResult:
    t0 = time.perf_counter()
    ta, tb = (as_beads(task, x).unsqueeze(0) for x in (a, b))
    curve = scan_links(task, ta, tb, floor=limit)[0]
    d = float(np.linalg.norm(b - a))
    return PathResult("straight", curve.max_loss <= limit, curve.max_loss, 0, d, 1.0, time.perf_counter() - t0)


def _bezier(a: torch.Tensor, c: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = t.unsqueeze(1)
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t**2 * b


def bezier_curve(task, a: np.ndarray, b: np.ndarray, limit: float, max_grad_evals: int = 200_000, lr: float = 0.01,
                 n_t: int = 4, check_every: int = 50, n_check: int = 513, seed: int = 0) -> PathResult:
    """Fit the Bézier control point until the curve's held-out maximum is ≤ ``limit`` or the budget is spent."""
    t0 = time.perf_counter()
    dtype = getattr(task, "dtype", torch.float64)
    ta, tb = (as_beads(task, x) for x in (a, b))
    c = (0.5 * (ta + tb)).clone().requires_grad_(True)
    opt = torch.optim.Adam([c], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0, 1, n_check, dtype=dtype, device=ta.device)
    batches = _minibatches(task, seed)
    evals, step = 0, 0

    def curve_max() -> float:
        with torch.no_grad():
            vals = eval_in_batches(task, _bezier(ta, c, tb, grid))
        return float(torch.nan_to_num(vals, nan=float("inf")).max())

    worst = curve_max()
    while worst > limit and evals < max_grad_evals:
        t = torch.rand(n_t, generator=gen, dtype=dtype).to(ta.device)
        opt.zero_grad()
        _train_loss(task, _bezier(ta, c, tb, t), batches).mean().backward()
        opt.step()
        box = getattr(task, "box", None)
        if box is not None:
            with torch.no_grad():
                c.clamp_(-box, box)
        evals += n_t
        step += 1
        if step % check_every == 0:
            worst = curve_max()
    with torch.no_grad():
        pts = _bezier(ta, c, tb, grid).cpu().numpy()
    length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
    d = float(np.linalg.norm(b - a))
    return PathResult("bezier", worst <= limit, worst, evals, length, length / d if d > 0 else float("nan"),
                      time.perf_counter() - t0)


def auto_neb(task, a: np.ndarray, b: np.ndarray, limit: float, n_pivots: int = 3, cycles: int = 12,
             steps_per_cycle: int = 100, lr: float = 0.01, spring: float = 0.01, max_pivots: int = 64,
             max_grad_evals: int = 200_000) -> PathResult:
    """AutoNEB between ``a`` and ``b``: NEB cycles with pivots inserted at the peaks of segments above ``limit``."""
    t0 = time.perf_counter()
    dtype = getattr(task, "dtype", torch.float64)
    box = getattr(task, "box", None)
    ta, tb = (as_beads(task, x).unsqueeze(0) for x in (a, b))
    ts = torch.linspace(0, 1, n_pivots + 2, dtype=dtype, device=ta.device)[1:-1].unsqueeze(1)
    pivots = ta + ts * (tb - ta)
    evals, worst, found = 0, float("inf"), False
    for cycle in range(cycles):
        if pivots.shape[0] and evals < max_grad_evals:
            pivots, used = _neb(task, ta, tb, pivots, steps_per_cycle, lr, spring, box, max_grad_evals - evals)
            evals += used
        full = torch.cat([ta, pivots, tb])
        curves = scan_links(task, full[:-1], full[1:], floor=limit)
        worst = max(c.max_loss for c in curves)
        if worst <= limit:
            found = True
            break
        if evals >= max_grad_evals or cycle == cycles - 1:  # no pivots inserted that no cycle would train
            break
        new, rows = [], []
        for i, c in enumerate(curves):
            rows.append(full[i])
            if c.max_loss > limit and pivots.shape[0] + len(new) < max_pivots:
                new.append(full[i] + c.t_max * (full[i + 1] - full[i]))
                rows.append(new[-1])
        pivots = torch.stack(rows[1:]) if len(rows) > 1 else pivots
    pts = torch.cat([ta, pivots, tb]).cpu().numpy()
    length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
    d = float(np.linalg.norm(b - a))
    return PathResult("autoneb", found, worst, evals, length, length / d if d > 0 else float("nan"),
                      time.perf_counter() - t0)


def _neb(task, ta: torch.Tensor, tb: torch.Tensor, pivots: torch.Tensor, steps: int, lr: float, spring: float,
         box: float | None, budget: int) -> tuple[torch.Tensor, int]:
    """One NEB cycle: Adam on the nudged force of every pivot; returns the pivots and the gradients spent."""
    x = pivots.detach().clone()
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    used = 0
    batches = _minibatches(task, used + x.shape[0])
    for k in range(1, steps + 1):
        if used + x.shape[0] > budget:
            break
        x.requires_grad_(True)
        (g,) = torch.autograd.grad(_train_loss(task, x, batches).sum(), x)
        used += x.shape[0]
        with torch.no_grad():
            g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            x = x.detach()
            prev, nxt = torch.cat([ta, x[:-1]]), torch.cat([x[1:], tb])
            tau = nxt - prev
            tau = tau / tau.norm(dim=1, keepdim=True).clamp_min(1e-12)
            g_perp = g - (g * tau).sum(dim=1, keepdim=True) * tau
            stretch = (nxt - x).norm(dim=1) - (x - prev).norm(dim=1)  # > 0: the pivot sits too close to prev
            direction = g_perp - spring * stretch.unsqueeze(1) * tau  # descent direction, as a gradient
            m.mul_(0.9).add_(direction, alpha=0.1)
            v.mul_(0.999).addcmul_(direction, direction, value=0.001)
            x = x - lr * (m / (1 - 0.9**k)) / ((v / (1 - 0.999**k)).sqrt() + 1e-8)
            if box is not None:
                x = x.clamp(-box, box)
    return x.detach(), used
