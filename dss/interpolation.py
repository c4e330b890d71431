"""The loss along straight segments between beads: many ``t`` and many links in one batched pass.

The interpolated model is θ(t) = (1 − t)·θ_a + t·θ_b; its interpolated loss curve γ(t) = F_e(θ(t)). DSS needs, for
each link, the location t* of the maximum (where to insert a bead) and the maximum itself (does the link pass?).
The maximum is found on a grid, then every local maximum of the grid that matters is refined by zooming: each round
evaluates a finer grid on the bracket around the current best point, all brackets of all links in one call. A link
passes only after this refinement (the *certificate*), not on the coarse grid alone; it is a dense search, not a
Lipschitz bound, and the curve that was evaluated is kept with the string.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def segment_points(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """θ(t) for links ``a``, ``b`` (m, p) at parameters ``t`` (m, n): shape (m, n, p)."""
    return a.unsqueeze(1) + t.unsqueeze(2) * (b - a).unsqueeze(1)


def _rows_per_call(task) -> int:
    return getattr(task, "eval_batch", None) or 65536


@torch.no_grad()
def eval_in_batches(task, theta: torch.Tensor) -> torch.Tensor:
    """``task.loss_eval`` over many rows, ``task.eval_batch`` rows at a time (tasks whose models are large, such as
    the convnets, set it so that memory stays bounded however many links are scanned at once)."""
    size = _rows_per_call(task)
    return torch.cat([task.loss_eval(theta[i : i + size]) for i in range(0, theta.shape[0], size)])


@torch.no_grad()
def link_losses(task, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Held-out measure at θ(t) for every link and every t: ``a``, ``b`` (m, p), ``t`` (m, n) → (m, n).

    The points θ(t) are made ``task.eval_batch`` at a time on the beads' device, never all (m·n, p) at once, so a
    scan of a 3M-parameter model holds a chunk of models, not the whole grid."""
    m, n = t.shape
    size = _rows_per_call(task)
    link = torch.arange(m, device=a.device).repeat_interleave(n)
    tt = t.reshape(-1)
    out = []
    for i in range(0, m * n, size):
        rows, ti = link[i : i + size], tt[i : i + size].unsqueeze(1)
        out.append(task.loss_eval(a[rows] + ti * (b[rows] - a[rows])))
    return torch.cat(out).reshape(m, n)


@dataclass
class LinkCurve:
    """What was learned about one link: the evaluated curve (sorted by t), its maximum and where."""

    t: np.ndarray
    loss: np.ndarray
    t_max: float
    max_loss: float


def _local_maxima(loss: np.ndarray) -> np.ndarray:
    """Indices of the local maxima of a sampled curve, endpoints included when they are higher than their neighbour."""
    n = len(loss)
    left = np.r_[-np.inf, loss[:-1]]
    right = np.r_[loss[1:], -np.inf]
    idx = np.nonzero((loss >= left) & (loss >= right))[0]
    return idx if len(idx) else np.array([int(np.argmax(loss))]) if n else idx


@torch.no_grad()
def scan_links(task, a: torch.Tensor, b: torch.Tensor, n_grid: int = 65, n_peaks: int = 4, rounds: int = 6,
               zoom: int = 16, floor: float | None = None) -> list[LinkCurve]:
    """Maximum of the interpolated loss on each link ``a[i] → b[i]``, refined around its highest local maxima.

    A grid of ``n_grid`` points on [0, 1]; then up to ``n_peaks`` local maxima per link (those above ``floor`` when
    given, else the highest) are refined for ``rounds`` rounds, each evaluating ``zoom`` + 1 points on a bracket
    ``zoom / 2`` times narrower, all links and brackets together. Six rounds from a 65-point grid resolve t to ~1e-9.
    """
    m = a.shape[0]
    grid = torch.linspace(0, 1, n_grid, dtype=a.dtype, device=a.device).expand(m, -1)
    losses = link_losses(task, a, b, grid).cpu().numpy()
    ts = [grid[i].cpu().numpy().copy() for i in range(m)]
    ls = [losses[i].copy() for i in range(m)]
    # brackets to refine: (link, centre, half-width)
    brackets: list[tuple[int, float, float]] = []
    half = 1.0 / (n_grid - 1)
    for i in range(m):
        peaks = _local_maxima(ls[i])
        peaks = peaks[np.argsort(-ls[i][peaks])]
        if floor is not None:
            above = peaks[ls[i][peaks] > floor]
            peaks = above if len(above) else peaks[:1]
        brackets += [(i, float(ts[i][j]), half) for j in peaks[:n_peaks]]
    offsets = torch.linspace(-1, 1, zoom + 1, dtype=a.dtype, device=a.device)
    for _ in range(rounds):
        if not brackets:
            break
        idx = torch.as_tensor([br[0] for br in brackets], device=a.device)
        centre = torch.as_tensor([br[1] for br in brackets], dtype=a.dtype, device=a.device)
        width = torch.as_tensor([br[2] for br in brackets], dtype=a.dtype, device=a.device)
        t = (centre.unsqueeze(1) + width.unsqueeze(1) * offsets).clamp(0, 1)
        vals = link_losses(task, a[idx], b[idx], t).cpu().numpy()
        tn = t.cpu().numpy()
        new = []
        for k, (i, _, w) in enumerate(brackets):
            ts[i] = np.r_[ts[i], tn[k]]
            ls[i] = np.r_[ls[i], vals[k]]
            j = int(np.argmax(vals[k]))
            new.append((i, float(tn[k, j]), 2 * w / zoom))
        brackets = new
    out = []
    for i in range(m):
        order = np.argsort(ts[i], kind="stable")
        t_sorted, l_sorted = ts[i][order], ls[i][order]
        l_clean = np.where(np.isfinite(l_sorted), l_sorted, np.inf)
        j = int(np.argmax(l_clean))
        out.append(LinkCurve(t_sorted, l_sorted, float(t_sorted[j]), float(l_clean[j])))
    return out
