"""Other ways to join the same two models, to compare with DSS on the same pairs.

* the straight line (the convex answer: found iff the interpolated loss never exceeds τ·L0);
* the quadratic Bézier curve of Garipov et al. (2018), φ(t) = (1−t)²θ_A + 2t(1−t)θ_C + t²θ_B, its control point θ_C
  trained by Adam on the training loss at random t (``n_t`` per step, each one gradient evaluation of the model),
  checked every ``check_every`` steps by the held-out loss on a dense grid of t; found when that maximum is ≤ τ·L0.

AutoNEB (Draxler et al., 2018) is not implemented.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from .interpolation import scan_links


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


def straight_line(task, a: np.ndarray, b: np.ndarray, limit: float) -> PathResult:
    t0 = time.perf_counter()
    dtype = getattr(task, "dtype", torch.float64)
    ta, tb = (torch.as_tensor(x, dtype=dtype).unsqueeze(0) for x in (a, b))
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
    ta, tb = (torch.as_tensor(x, dtype=dtype) for x in (a, b))
    c = (0.5 * (ta + tb)).clone().requires_grad_(True)
    opt = torch.optim.Adam([c], lr=lr)
    gen = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0, 1, n_check, dtype=dtype)
    evals, step = 0, 0

    def curve_max() -> float:
        with torch.no_grad():
            vals = task.loss_eval(_bezier(ta, c, tb, grid))
        return float(torch.nan_to_num(vals, nan=float("inf")).max())

    worst = curve_max()
    while worst > limit and evals < max_grad_evals:
        t = torch.rand(n_t, generator=gen, dtype=dtype)
        opt.zero_grad()
        task.loss_train(_bezier(ta, c, tb, t)).mean().backward()
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
