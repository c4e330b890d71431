"""Barriers between minima: the lowest path found between two of them, its maximum, and the saddle beneath it.

Plain arrays in, plain numbers out (the census joins this with the clustering of minima in the front door):

1. **Path.** A string of images from θ_A to θ_B (the straight line to start), relaxed by the string method of E, Ren
   and Vanden-Eijnden (2007): every interior image steps down −∇U, then the images are redistributed at equal arc
   length along the string (which removes the component of the force along it, as the nudged elastic band does with
   its projection). All pairs are relaxed together in one batch on the device.
2. **Upper bound.** Every link of the final string is scanned on a fine grid; the largest U met is an upper bound on
   the barrier (the lowest maximum over all continuous paths from A to B), since the string is such a path.
3. **Saddle.** From the highest point, a climbing image (gentlest-ascent dynamics: −∇U with its component along v
   reversed, v following the lowest Hessian eigenvector by Hessian-vector products) walks to the transition state;
   where ‖∇U‖ falls below the tolerance (and its energy does not exceed the bound), the saddle's energy refines the
   barrier; otherwise the bound stands and the outcome says so.

The energy is any row-wise differentiable ``energy(theta) -> U`` over (rows, p) tensors, so a synthetic landscape and
a network's loss are treated alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

EnergyFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BarrierSettings:
    """Everything that decides a barrier; stored with the census."""

    n_images: int = 21
    steps: int = 1500
    step: float = 0.01
    max_move: float = 0.05
    path_tol: float = 1e-7
    n_scan: int = 17
    climb_steps: int = 3000
    climb_step: float = 0.01
    climb_tol: float = 1e-6
    box: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _grad(energy: EnergyFn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.enable_grad():
        t = x.detach().requires_grad_(True)
        u = energy(t)
        (g,) = torch.autograd.grad(u.sum(), t)
    return u.detach(), g


def _hvp(energy: EnergyFn, x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """U, ∇U and H·v for every row, by double backward."""
    with torch.enable_grad():
        t = x.detach().requires_grad_(True)
        u = energy(t)
        (g,) = torch.autograd.grad(u.sum(), t, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), t, allow_unused=True)
    return u.detach(), g.detach(), (torch.zeros_like(x) if hv is None else hv.detach())


def _reparametrize(path: torch.Tensor) -> torch.Tensor:
    """Images (P, M, p) moved along the piecewise-linear string to equal arc length, ends fixed."""
    P, M, _ = path.shape
    seg = (path[:, 1:] - path[:, :-1]).norm(dim=-1)                   # (P, M-1)
    s = torch.cat([torch.zeros(P, 1, dtype=path.dtype, device=path.device), seg.cumsum(1)], dim=1)
    total = s[:, -1:].clamp_min(1e-300)
    s = s / total
    target = torch.linspace(0, 1, M, dtype=path.dtype, device=path.device).expand(P, M).contiguous()
    idx = torch.searchsorted(s.contiguous(), target, right=True).clamp(1, M - 1)   # segment [idx-1, idx]
    s0, s1 = s.gather(1, idx - 1), s.gather(1, idx)
    w = ((target - s0) / (s1 - s0).clamp_min(1e-300)).clamp(0, 1)
    left = path.gather(1, (idx - 1)[..., None].expand_as(path))
    right = path.gather(1, idx[..., None].expand_as(path))
    out = left + w[..., None] * (right - left)
    out[:, 0], out[:, -1] = path[:, 0], path[:, -1]
    return out


def relax_paths(energy: EnergyFn, a: np.ndarray, b: np.ndarray, settings: BarrierSettings,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) -> np.ndarray:
    """The string method from the straight lines a→b, all pairs at once: images (P, n_images, p)."""
    dev = torch.device(device)
    A = torch.as_tensor(np.atleast_2d(a), dtype=dtype, device=dev)
    B = torch.as_tensor(np.atleast_2d(b), dtype=dtype, device=dev)
    P, p = A.shape
    M = settings.n_images
    t = torch.linspace(0, 1, M, dtype=dtype, device=dev)[None, :, None]
    path = A[:, None] + t * (B - A)[:, None]
    for _ in range(settings.steps):
        inner = path[:, 1:-1].reshape(-1, p)
        _, g = _grad(energy, inner)
        move = -settings.step * g
        norm = move.norm(dim=1, keepdim=True)
        move = move * (settings.max_move / norm.clamp_min(settings.max_move)).clamp(max=1.0)
        new = path.clone()
        new[:, 1:-1] = (inner + move).reshape(P, M - 2, p)
        if settings.box is not None:
            new.clamp_(-settings.box, settings.box)
        new = _reparametrize(new)
        shift = float((new - path).norm(dim=-1).max())
        path = new
        if shift < settings.path_tol:
            break
    return path.cpu().numpy()


def scan_path(energy: EnergyFn, path: np.ndarray, n_scan: int, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float64, zooms: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U on ``n_scan`` points of every link of each path (P, M, p), then ``zooms`` finer scans around the highest:
    (max U, the point where it is reached, the images' energies (P, M))."""
    dev = torch.device(device)
    X = torch.as_tensor(path, dtype=dtype, device=dev)
    P, M, p = X.shape
    s = torch.linspace(0, 1, n_scan, dtype=dtype, device=dev)[None, None, :, None]
    pts = X[:, :-1, None] + s * (X[:, 1:] - X[:, :-1])[:, :, None]       # (P, M-1, n_scan, p)
    with torch.no_grad():
        u = energy(pts.reshape(-1, p)).reshape(P, -1)
        u_img = energy(X.reshape(-1, p)).reshape(P, M)
        k = u.argmax(1)
        link, pos = k // n_scan, k % n_scan
        rows = torch.arange(P, device=dev)
        left, right = X[rows, link], X[rows, link + 1]
        h = 1.0 / (n_scan - 1)
        lo = ((pos - 1) * h).clamp(0, 1).to(dtype)
        hi = ((pos + 1) * h).clamp(0, 1).to(dtype)
        best_u, best_x = u.max(1).values, pts.reshape(P, -1, p)[rows, k]
        for _ in range(zooms):                                             # zoom in on the maximum of its link
            s = lo[:, None] + (hi - lo)[:, None] * torch.linspace(0, 1, n_scan, dtype=dtype, device=dev)[None]
            q = left[:, None] + s[..., None] * (right - left)[:, None]      # (P, n_scan, p)
            uq = energy(q.reshape(-1, p)).reshape(P, n_scan)
            j = uq.argmax(1)
            better = uq[rows, j] > best_u
            best_u = torch.where(better, uq[rows, j], best_u)
            best_x = torch.where(better[:, None], q[rows, j], best_x)
            step = (hi - lo) / (n_scan - 1)
            centre = s[rows, j]
            lo, hi = (centre - step).clamp(0, 1), (centre + step).clamp(0, 1)
    return best_u.cpu().numpy(), best_x.cpu().numpy(), u_img.cpu().numpy()


def climb(energy: EnergyFn, start: np.ndarray, direction: np.ndarray, settings: BarrierSettings,
          device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gentlest-ascent dynamics from each row of ``start`` with initial unstable direction ``direction`` (the path's
    tangent): (θ, U, ‖∇U‖, converged)."""
    dev = torch.device(device)
    x = torch.as_tensor(np.atleast_2d(start), dtype=dtype, device=dev).clone()
    v = torch.as_tensor(np.atleast_2d(direction), dtype=dtype, device=dev).clone()
    v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    done = torch.zeros(len(x), dtype=torch.bool, device=dev)
    u, g, _ = _hvp(energy, x, v)
    for _ in range(settings.climb_steps):
        u, g, hv = _hvp(energy, x, v)
        gn = g.norm(dim=1)
        done = gn < settings.climb_tol
        if bool(done.all()):
            break
        force = -g + 2 * (g * v).sum(1, keepdim=True) * v
        move = settings.climb_step * force
        norm = move.norm(dim=1, keepdim=True)
        move = move * (settings.max_move / norm.clamp_min(settings.max_move)).clamp(max=1.0)
        x = torch.where(done[:, None], x, x + move)
        if settings.box is not None:
            x = x.clamp(-settings.box, settings.box)
        # v follows the lowest eigenvector: v ← v − h (Hv − (v·Hv) v), renormalized
        vhv = (v * hv).sum(1, keepdim=True)
        scale = 1.0 / hv.norm(dim=1, keepdim=True).clamp_min(1e-12)
        v = v - 0.5 * scale * (hv - vhv * v)
        v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)
    u, g = _grad(energy, x)
    gn = g.norm(dim=1)
    return x.cpu().numpy(), u.cpu().numpy(), gn.cpu().numpy(), (gn < settings.climb_tol).cpu().numpy()


def barriers(energy: EnergyFn, minima: np.ndarray, energies: np.ndarray, pairs: list[tuple[int, int]],
             settings: BarrierSettings, ends: np.ndarray | None = None, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float64) -> list[dict[str, Any]]:
    """The barrier between minima i and j for every pair: the path's maximum (an upper bound) and, where the climb
    converges below it, the saddle energy. ``ends`` (P, p), optional, replaces θ_j by a symmetric copy of it aligned
    with θ_i. Each row: i, j, upper_bound, saddle_energy (or None), barrier (the best estimate), saddle_converged,
    distance, path_energies."""
    if not pairs:
        return []
    minima = np.asarray(minima, dtype=np.float64)
    A = minima[[i for i, _ in pairs]]
    B = minima[[j for _, j in pairs]] if ends is None else np.asarray(ends, dtype=np.float64)
    path = relax_paths(energy, A, B, settings, device, dtype)
    top_u, top_x, u_img = scan_path(energy, path, settings.n_scan, device, dtype)
    k = np.argmax(u_img[:, 1:-1], axis=1) + 1 if path.shape[1] > 2 else np.zeros(len(pairs), int)
    rows = np.arange(len(pairs))
    tangent = path[rows, np.minimum(k + 1, path.shape[1] - 1)] - path[rows, np.maximum(k - 1, 0)]
    sx, su, sg, sconv = climb(energy, top_x, tangent, settings, device, dtype)
    out = []
    for r, (i, j) in enumerate(pairs):
        floor = max(float(energies[i]), float(energies[j]))
        slack = 1e-6 * max(1.0, abs(float(top_u[r])))
        ok = bool(sconv[r]) and su[r] <= top_u[r] + slack and su[r] >= floor - slack
        out.append({"i": int(i), "j": int(j), "upper_bound": float(top_u[r]),
                    "saddle_energy": float(su[r]) if ok else None, "saddle_converged": ok,
                    "saddle_grad_norm": float(sg[r]), "barrier": float(su[r]) if ok else float(top_u[r]),
                    "distance": float(np.linalg.norm(B[r] - A[r])),
                    "path_energies": [float(e) for e in u_img[r]], "saddle": sx[r].tolist() if ok else None})
    return out
