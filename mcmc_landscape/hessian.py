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

from mcmc_landscape.devices import resolve_device
from mcmc_landscape.errors import SpecError

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


# -- Hessian-vector products, batched over points ---------------------------------------------------------------------

Block = tuple[str, int, int]          # (name, start, stop) of one slice of the flat layout
HVP = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def batched_hvp(energy: EnergyFn, chunk: int | None = None) -> HVP:
    """``hvp(theta, v)``: H(θ_i) v_i for every row i of ``theta`` and ``v`` (rows, p), by ``torch.func.vjp`` of the
    gradient of ΣU (H is symmetric, so vᵀH = Hv). Rows do not interact, so the gradient of the sum is each row's
    gradient and its derivative along ``v`` is each row's Hessian-vector product: many points (or many vectors at one
    point, rows repeated) are one call. ``chunk`` rows at a time bounds memory. Reverse-over-reverse: on the MLP it
    measured 6× faster than ``jvp`` of the gradient (forward mode through ``baddbmm``/``gather`` is slow in torch)."""
    from torch.func import grad, vjp

    gfn = grad(lambda t: energy(t).sum())

    def one(theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return vjp(gfn, theta)[1](v)[0]

    def hvp(theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        step = chunk or len(theta)
        parts = [one(theta[i : i + step], v[i : i + step]) for i in range(0, len(theta), max(step, 1))]
        return torch.cat(parts) if parts else torch.zeros_like(v)

    return hvp


def block_operator(hvp: HVP, theta: torch.Tensor, block: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``op(V)`` for V (n, m, q): the Hessian block H[s:e, s:e] at each of the n points applied to m vectors each
    (q = e − s), as one batched HVP over n·m rows (each point repeated m times)."""
    s, e = block
    n, p = theta.shape

    def op(vs: torch.Tensor) -> torch.Tensor:
        m = vs.shape[1]
        full = vs.new_zeros(n * m, p)
        full[:, s:e] = vs.reshape(n * m, e - s)
        rows = theta.repeat_interleave(m, dim=0)
        return hvp(rows, full)[:, s:e].reshape(n, m, e - s)

    return op


# -- Lanczos with full reorthogonalization, batched over points --------------------------------------------------------

@dataclass
class LanczosRun:
    """Tridiagonal T = Q^T H Q of ``steps`` Lanczos steps per (point, start vector): ``alpha`` (…, steps) on the
    diagonal, ``beta`` (…, steps − 1) off it, and the last β (the residual norm) for error bounds."""

    alpha: torch.Tensor
    beta: torch.Tensor
    beta_last: torch.Tensor

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(Ritz values ascending, their quadrature weights τ_j = (e_1ᵀ y_j)², residual bounds |β_last e_mᵀ y_j|)."""
        T = torch.diag_embed(self.alpha) + torch.diag_embed(self.beta, 1) + torch.diag_embed(self.beta, -1)
        vals, vecs = torch.linalg.eigh(T)
        return vals, vecs[..., 0, :] ** 2, (self.beta_last[..., None] * vecs[..., -1, :]).abs()


def lanczos(op: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int) -> LanczosRun:
    """Lanczos on the symmetric operator ``op`` (V (n, m, q) -> (n, m, q)) from the start vectors ``v0`` (n, m, q),
    every (point, vector) pair at once, with full reorthogonalization (twice, classical Gram-Schmidt) against all
    earlier vectors so Ritz values do not repeat. Stops at ``steps`` ≤ q; an invariant subspace found early (β ≈ 0)
    continues from a fresh orthogonal vector, which keeps T exact."""
    n, m, q = v0.shape
    steps = max(1, min(int(steps), q))
    Q = v0.new_zeros(n, m, steps, q)
    alpha = v0.new_zeros(n, m, steps)
    beta = v0.new_zeros(n, m, steps)
    v = v0 / v0.norm(dim=-1, keepdim=True)
    gen = torch.Generator(device="cpu").manual_seed(12345)
    for j in range(steps):
        Q[:, :, j] = v
        w = op(v)
        alpha[:, :, j] = (w * v).sum(-1)
        basis = Q[:, :, : j + 1]
        for _ in range(2):
            w = w - torch.einsum("nmjq,nmj->nmq", basis, torch.einsum("nmjq,nmq->nmj", basis, w))
        b = w.norm(dim=-1)
        beta[:, :, j] = b
        if j + 1 == steps:
            break
        scale = b.abs().amax().clamp_min(1e-300)
        tiny = b <= 1e-10 * torch.maximum(scale, alpha[:, :, : j + 1].abs().amax())
        fresh = torch.randn(n, m, q, generator=gen, dtype=v0.dtype).to(v0.device)
        for _ in range(2):
            fresh = fresh - torch.einsum("nmjq,nmj->nmq", basis, torch.einsum("nmjq,nmq->nmj", basis, fresh))
        fresh = fresh / fresh.norm(dim=-1, keepdim=True)
        v = torch.where(tiny[..., None], fresh, w / b.clamp_min(1e-300)[..., None])
        beta[:, :, j] = torch.where(tiny, torch.zeros_like(b), b)
    return LanczosRun(alpha, beta[..., :-1], beta[..., -1])


def extreme_eigenvalues(op: Callable[[torch.Tensor], torch.Tensor], n: int, q: int, k: int, steps: int,
                        dtype: torch.dtype, device: torch.device, seed: int = 0) -> dict[str, np.ndarray]:
    """The ``k`` largest and ``k`` smallest eigenvalues of the operator at each of ``n`` points by one Lanczos run
    of ``steps`` steps from a random start: ``top`` (n, k) descending, ``bottom`` (n, k) ascending, and their residual
    bounds (each Ritz value is within its bound of an eigenvalue)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v0 = torch.randn(n, 1, q, generator=gen, dtype=dtype).to(device)
    vals, _, res = lanczos(op, v0, steps).ritz()
    vals, res = vals[:, 0].cpu().numpy(), res[:, 0].cpu().numpy()
    k = min(k, vals.shape[1])
    return {"top": vals[:, ::-1][:, :k].copy(), "top_residual": res[:, ::-1][:, :k].copy(),
            "bottom": vals[:, :k].copy(), "bottom_residual": res[:, :k].copy()}


# -- trace ------------------------------------------------------------------------------------------------------------

def _rademacher(shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return (torch.randint(0, 2, shape, generator=gen).to(dtype) * 2 - 1).to(device)


def hutchinson_trace(op: Callable[[torch.Tensor], torch.Tensor], n: int, q: int, samples: int, dtype: torch.dtype,
                     device: torch.device, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """tr(H) at each of ``n`` points as the mean of zᵀHz over ``samples`` Rademacher vectors z (Hutchinson 1989), and
    the standard error of that mean."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z = _rademacher((n, samples, q), gen, dtype, device)
    quad = (z * op(z)).sum(-1).cpu().numpy()
    se = quad.std(axis=1, ddof=1) / np.sqrt(samples) if samples > 1 else np.full(n, np.nan)
    return quad.mean(axis=1), se


def hutchpp_trace(op: Callable[[torch.Tensor], torch.Tensor], n: int, q: int, matvecs: int, dtype: torch.dtype,
                  device: torch.device, seed: int = 0) -> np.ndarray:
    """tr(H) at each of ``n`` points by Hutch++ (Meyer, Musco, Musco & Woodruff 2021) with about ``matvecs``
    Hessian-vector products: the trace of the top range found from HS exactly, Hutchinson on the rest. Its error
    falls as 1/matvecs rather than 1/√matvecs, and it is exact once the sketch holds the whole range."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    s = max(1, min(q, matvecs // 3))
    g = max(1, matvecs - 2 * s)
    S = _rademacher((n, s, q), gen, dtype, device)
    G = _rademacher((n, g, q), gen, dtype, device)
    Qm, _ = torch.linalg.qr(op(S).transpose(1, 2))            # (n, q, s): orthonormal basis of the range of HS
    Qt = Qm.transpose(1, 2)
    top = (Qt * op(Qt)).sum((-1, -2))
    Gp = G - torch.einsum("ngs,nsq->ngq", torch.einsum("nsq,ngq->ngs", Qt, G), Qt)   # (I − QQᵀ) G
    rest = (Gp * op(Gp)).sum((-1, -2)) / g
    return (top + rest).cpu().numpy()


# -- spectral density by stochastic Lanczos quadrature ----------------------------------------------------------------

@dataclass
class Density:
    """A spectral density on a grid (integrates to 1 over it) and the Ritz nodes and weights it was built from."""

    grid: np.ndarray             # (g,)
    density: np.ndarray          # (n, g)
    nodes: np.ndarray            # (n, vectors, steps)
    weights: np.ndarray          # (n, vectors, steps), each vector's weights sum to 1
    sigma: float

    def moment(self, k: int) -> np.ndarray:
        """The k-th moment of the quadrature, Σ τ θ^k averaged over vectors: an estimate of tr(H^k)/q."""
        return (self.weights * self.nodes**k).sum(-1).mean(-1)


def slq_density(op: Callable[[torch.Tensor], torch.Tensor], n: int, q: int, vectors: int, steps: int,
                dtype: torch.dtype, device: torch.device, grid_points: int = 512, sigma: float | None = None,
                seed: int = 0) -> Density:
    """The eigenvalue density of H at each of ``n`` points by stochastic Lanczos quadrature (Ghorbani, Krishnan &
    Xiao 2019): Lanczos from ``vectors`` random unit vectors; each gives Ritz values θ_j with Gauss-quadrature weights
    τ_j, and the density is Σ τ_j N(λ; θ_j, σ²) averaged over vectors. σ defaults to 1% of the spectrum's range; the
    grid reaches 5σ past the extreme nodes so the Gaussians integrate to 1 on it."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    v0 = torch.randn(n, vectors, q, generator=gen, dtype=dtype).to(device)
    vals, w, _ = lanczos(op, v0, steps).ritz()
    nodes, weights = vals.cpu().numpy(), w.cpu().numpy()
    lo, hi = float(nodes.min()), float(nodes.max())
    width = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    sig = float(sigma) if sigma else 0.01 * width
    grid = np.linspace(lo - 5 * sig, hi + 5 * sig, grid_points)
    dens = np.empty((n, grid_points))
    for i in range(n):
        z = (grid[None, :] - nodes[i].reshape(-1, 1)) / sig
        dens[i] = (weights[i].reshape(-1, 1) * np.exp(-0.5 * z**2)).sum(0) / (vectors * sig * np.sqrt(2 * np.pi))
    return Density(grid, dens, nodes, weights, sig)


def slq_logdet(op: Callable[[torch.Tensor], torch.Tensor], n: int, q: int, vectors: int, steps: int, cutoff: float,
               dtype: torch.dtype, device: torch.device, mask: torch.Tensor | None = None, seed: int = 0) \
        -> dict[str, np.ndarray]:
    """log det of H's non-null part, Σ log λ over eigenvalues λ > ``cutoff``, at each of ``n`` points by stochastic
    Lanczos quadrature (Ubaru, Chen & Saad 2017): from a random unit vector v (on the coordinates ``mask`` keeps, q of
    them), q·Σ_j τ_j f(θ_j) estimates tr f(H) for f(λ) = log λ·[λ > cutoff]; averaged over ``vectors`` starts.

    Two errors, reported apart: ``stderr``, the spread over start vectors (sampling); and ``quadrature_change``, the
    estimate at ``steps`` minus the one at ``steps // 2`` from the same runs (the leading block of T is the shorter
    run's), a gauge of the quadrature's own error, which the standard error does not hold. Exact in expectation once
    ``steps`` reaches the number of distinct eigenvalues; with fewer, the few Ritz nodes blur the cut at ``cutoff``
    (a network's cluster near zero) and the change is large. ``n_nonnull``: q·Σ_j τ_j [θ_j > cutoff]."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    p_full = mask.numel() if mask is not None else q
    v0 = torch.randn(n, vectors, p_full, generator=gen, dtype=dtype).to(device)
    if mask is not None:
        v0 = v0 * mask
    run = lanczos(op, v0, steps)

    def estimate(r: LanczosRun) -> tuple[np.ndarray, np.ndarray]:
        vals, w, _ = r.ritz()
        nodes, weights = vals.cpu().numpy(), w.cpu().numpy()
        above = nodes > cutoff
        logs = np.where(above, np.log(np.where(above, nodes, 1.0)), 0.0)
        return q * (weights * logs).sum(-1), q * (weights * above).sum(-1)       # (n, vectors) each

    per_vector, count = estimate(run)
    h = run.alpha.shape[-1] // 2
    half = estimate(LanczosRun(run.alpha[..., :h], run.beta[..., : h - 1], run.beta[..., h - 1]))[0] if h else \
        np.full_like(per_vector, np.nan)                                          # one step: no shorter run
    se = per_vector.std(axis=1, ddof=1) / np.sqrt(vectors) if vectors > 1 else np.full(n, np.nan)
    return {"logdet": per_vector.mean(axis=1), "stderr": se, "n_nonnull": count.mean(axis=1),
            "quadrature_change": per_vector.mean(axis=1) - half.mean(axis=1)}


# -- dense, below a size limit ----------------------------------------------------------------------------------------

def dense_block_hessians(hvp: HVP, theta: torch.Tensor, block: tuple[int, int], chunk: int = 64) -> torch.Tensor:
    """H[s:e, s:e] (n, q, q) at each point from q Hessian-vector products with the unit vectors, ``chunk`` at a time."""
    s, e = block
    q = e - s
    op = block_operator(hvp, theta, block)
    eye = torch.eye(q, dtype=theta.dtype, device=theta.device)
    cols = [op(eye[i : i + chunk].unsqueeze(0).expand(len(theta), -1, -1)) for i in range(0, q, chunk)]
    H = torch.cat(cols, dim=1)
    return 0.5 * (H + H.transpose(1, 2))


# -- everything at once: per block, batched over points ---------------------------------------------------------------

@dataclass
class HessianSettings:
    """How much work each estimate gets. Blocks of at most ``dense_max`` coordinates are decomposed densely (every
    number then exact); larger ones use ``lanczos_steps`` Lanczos steps for the extremes, Hutch++ with
    ``trace_matvecs`` products for the trace, and ``slq_vectors`` × ``slq_steps`` for the density."""

    k: int = 5
    dense_max: int = 1500
    lanczos_steps: int = 60
    trace: str = "hutch++"                # or "hutchinson"
    trace_matvecs: int = 90
    slq_vectors: int = 4
    slq_steps: int = 60
    grid_points: int = 400
    seed: int = 0
    chunk: int | None = None              # rows per HVP call (memory)

    def __post_init__(self) -> None:
        if self.trace not in ("hutch++", "hutchinson"):
            raise SpecError(f"trace estimator {self.trace!r} is not known; choose hutch++ or hutchinson.")
        for name in ("k", "lanczos_steps", "trace_matvecs", "slq_vectors", "slq_steps", "grid_points"):
            if int(getattr(self, name)) < 1:
                raise SpecError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}.")


def block_spectra(energy: EnergyFn, theta: torch.Tensor, blocks: list[Block],
                  settings: HessianSettings | None = None) -> list[dict[str, object]]:
    """For each block of the flat layout (the whole network is the block (0, p)): at every row of ``theta``, the top-k
    and bottom-k eigenvalues, the trace and the spectral density, exact (dense) below ``settings.dense_max``
    coordinates and by Lanczos / Hutch++ / SLQ above it. Returns one dict per block with arrays over the points."""
    st = settings or HessianSettings()
    hvp = batched_hvp(energy, st.chunk)
    n = len(theta)
    out: list[dict[str, object]] = []
    for name, s, e in blocks:
        q = e - s
        k = min(st.k, q)
        row: dict[str, object] = {"block": name, "start": s, "stop": e, "size": q}
        if q <= st.dense_max:
            H = dense_block_hessians(hvp, theta, (s, e))
            ev = torch.linalg.eigvalsh(H).cpu().numpy()                    # ascending, (n, q)
            sig = 0.01 * max(float(ev.max() - ev.min()), 1e-12)
            grid = np.linspace(ev.min() - 5 * sig, ev.max() + 5 * sig, st.grid_points)
            dens = np.exp(-0.5 * ((grid[None, None, :] - ev[:, :, None]) / sig) ** 2).sum(1) / (
                q * sig * np.sqrt(2 * np.pi))
            row.update(method="dense", top=ev[:, ::-1][:, :k], bottom=ev[:, :k], trace=ev.sum(1),
                       trace_error=np.zeros(n), grid=grid, density=dens, sigma=sig, eigenvalues=ev)
        else:
            op = block_operator(hvp, theta, (s, e))
            ext = extreme_eigenvalues(op, n, q, k, st.lanczos_steps, theta.dtype, theta.device, st.seed)
            if st.trace == "hutch++":
                tr, err = hutchpp_trace(op, n, q, st.trace_matvecs, theta.dtype, theta.device, st.seed + 1), None
            else:
                tr, err = hutchinson_trace(op, n, q, st.trace_matvecs, theta.dtype, theta.device, st.seed + 1)
            dens = slq_density(op, n, q, st.slq_vectors, st.slq_steps, theta.dtype, theta.device, st.grid_points,
                               seed=st.seed + 2)
            row.update(method="lanczos", top=ext["top"], bottom=ext["bottom"], top_residual=ext["top_residual"],
                       bottom_residual=ext["bottom_residual"], trace=tr, trace_method=st.trace,
                       trace_error=np.full(n, np.nan) if err is None else err, grid=dens.grid,
                       density=dens.density, sigma=dens.sigma)
        out.append(row)
    return out
