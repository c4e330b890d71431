r"""Hamiltonian Monte Carlo over a batch of chains in PyTorch, on any device: all chains advance as one tensor.

Target π(θ) ∝ exp(-U(θ)/T) on the box [-L, L]^p. Each iteration draws a momentum r ~ N(0, M) per chain (M diagonal,
per chain), runs ``n_leapfrog`` leapfrog steps of size ε_c on H(θ, r) = U(θ)/T + ½ rᵀM⁻¹r, and accepts the end point
with probability min(1, exp(H_0 - H_1)) (Duane et al. 1987; Neal 2011).

The box is handled exactly: inside the leapfrog's position update a coordinate that leaves [-L, L] is reflected at
the wall and its momentum negated (Neal 2011, §5.1). Reflection keeps the map reversible and volume-preserving, so
the Metropolis correction keeps π exact. A trajectory whose energy or gradient becomes non-finite is rejected and
counted, never a crash.

Warm-up follows Stan: the step size of each chain is tuned by dual averaging toward a target acceptance (0.8 by
default; Hoffman and Gelman 2014), and a diagonal inverse mass matrix per chain is estimated from the draws of slow
windows of doubling length (75 / 25, 50, 100, ... / 50 iterations for a long warm-up), regularized toward 1e-3 as Stan
does; dual averaging restarts after each window. After warm-up ε and M are frozen. Trajectories have a fixed number of
steps so a batch stays in lockstep on a GPU; with ``jitter`` the count is drawn afresh each iteration (the same for
every chain) uniformly from [⌈n/2⌉, ⌊3n/2⌋].

One ``torch.Generator`` drives the whole batch; its state is part of the saved state, so on the CPU a resumed run
continues bit for bit.

The trajectory is :func:`leapfrog`, a torch loop with one batched gradient call per step, unless the caller passes a
``trajectory_fn`` with the same signature: the classifier energy supplies a Numba one on the CPU
(:func:`mcmc_landscape.energy.mlp_torch_trajectory_fn`, every step of a chain in one call, tested equal to the loop),
which removes the per-step overhead of small tensors, and on a CUDA device one numba-cuda kernel for all steps of all
chains (:mod:`mcmc_landscape.samplers.hmc_gpu`, one thread per chain with θ in registers, no host synchronisation
inside a trajectory; tested equal to the loop in numba-cuda's simulator). Momenta, the accept step and adaptation
stay here in torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from ..devices import resolve_device  # noqa: F401  (re-exported: hmc.resolve_device)
from ..errors import SpecError

EnergyFn = Callable[[torch.Tensor], torch.Tensor]  # (C, p) -> (C,)
#: Optional (C, p) -> (U (C,), ∇U (C, p)); without one, autograd differentiates the energy.
EnergyGradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: Optional fused trajectory with the signature of :func:`leapfrog` after its first argument; without one, the torch
#: loop of :func:`leapfrog` runs (a CPU energy can supply a compiled one: every step of a chain in one call).
TrajectoryFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


class HMCSettings(NamedTuple):
    temperature: float = 1.0
    box: float = 10.0
    target_accept: float = 0.8
    warmup: int = 1000
    thin: int = 1
    n_leapfrog: int = 16
    jitter: bool = False
    initial_step: float = 0.05
    adapt_mass: bool = True


class HMCState(NamedTuple):
    position: torch.Tensor  # (C, p)
    energy: torch.Tensor  # (C,) U
    grad: torch.Tensor  # (C, p) ∇U
    log_step: torch.Tensor  # (C,)
    log_step_bar: torch.Tensor
    h_bar: torch.Tensor
    mu: torch.Tensor
    inv_mass: torch.Tensor  # (C, p) diagonal of M⁻¹
    welford_n: int
    welford_mean: torch.Tensor  # (C, p)
    welford_m2: torch.Tensor  # (C, p)
    da_count: int  # iterations since dual averaging (re)started
    n_accepted: torch.Tensor  # (C,) int64, after warm-up
    n_nonfinite: torch.Tensor  # (C,) int64
    rng_state: torch.Tensor  # generator state (uint8)
    iteration: int


def validate_settings(s: HMCSettings) -> None:
    if not s.temperature > 0 or not s.box > 0:
        raise SpecError("temperature and box half-width must be positive.")
    if not 0 < s.target_accept < 1:
        raise SpecError(f"target acceptance must lie in (0, 1), got {s.target_accept}.")
    if s.warmup < 0 or s.thin < 1 or s.n_leapfrog < 1:
        raise SpecError("warm-up must be ≥ 0, thinning ≥ 1 and the number of leapfrog steps ≥ 1.")
    if not s.initial_step > 0:
        raise SpecError(f"initial step size must be positive, got {s.initial_step}.")




def window_ends(warmup: int) -> tuple[int, int, list[int]]:
    """Stan's adaptation schedule: (start of slow windows, end of slow windows, iterations closing each window)."""
    if warmup < 20:
        return warmup, warmup, []
    init, term, base = 75, 50, 25
    if init + term + base > warmup:
        init, term = int(0.15 * warmup), int(0.1 * warmup)
        base = warmup - init - term
    start, stop = init, warmup - term
    ends, size, t = [], base, init
    while t < stop:
        nxt = t + size
        if nxt + 2 * size > stop:  # the last window absorbs what would be too short to stand alone
            nxt = stop
        ends.append(nxt)
        t, size = nxt, size * 2
    return start, stop, ends


def energy_and_grad(energy_fn: EnergyFn, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U and ∇U for a batch: chains are independent, so the gradient of ΣU is every chain's own gradient."""
    with torch.enable_grad():
        x = theta.detach().requires_grad_(True)
        u = energy_fn(x)
        (g,) = torch.autograd.grad(u.sum(), x)
    return u.detach(), g.detach()


def reflect(x: torch.Tensor, r: torch.Tensor, box: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold positions back into [-L, L] by reflection at the walls, negating momentum once per wall crossed.

    A leapfrog step crosses at most one wall unless it is longer than the box, so that case is done with two
    comparisons; the general fold handles whatever is still outside after it.
    """
    inside = torch.clamp(x, -box, box)
    r = torch.where(inside != x, -r, r)
    x = torch.add(-x, inside, alpha=2.0)  # 2·wall - x outside, x itself inside
    if bool(x.abs().amax() > box):
        x, r = _fold(x, r, box)
    return x, r


def _fold(x: torch.Tensor, r: torch.Tensor, box: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflection for any number of wall crossings: unfold the coordinate on a circle of length 4L; the far half of
    the circle is the mirrored box (an odd number of crossings). ``remainder`` keeps even a huge step inside the box."""
    width = 2.0 * box
    y = torch.remainder(x + box, 2.0 * width)
    odd = y > width
    return torch.where(odd, 2.0 * width - y, y) - box, torch.where(odd, -r, r)


def leapfrog(eg: EnergyGradFn, pos: torch.Tensor, r: torch.Tensor, g: torch.Tensor, drift: torch.Tensor,
             kick: torch.Tensor, n_lf: int, box: float) -> tuple[torch.Tensor, ...]:
    """``n_lf`` ≥ 1 leapfrog steps from (pos, r) with ∇U = g there: position steps ``drift``·r (drift = εM⁻¹, (C, p)),
    momentum kicks ``kick``·∇U (kick = ε/T, (C, 1)), walls reflected inside each position step. Returns the end point,
    its momentum, U and ∇U."""
    x, rr = pos, torch.addcmul(r, kick, g, value=-0.5)
    for j in range(n_lf):
        x, rr = reflect(torch.addcmul(x, drift, rr), rr, box)
        uu, gg = eg(x)
        rr = torch.addcmul(rr, kick, gg, value=-1.0 if j < n_lf - 1 else -0.5)
    return x, rr, uu, gg


def init(energy_fn: EnergyFn, n_chains: int, p: int, seed: int, settings: HMCSettings,
         device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
         positions: torch.Tensor | np.ndarray | None = None, grad_fn: EnergyGradFn | None = None) -> HMCState:
    validate_settings(settings)
    if n_chains < 1:
        raise SpecError(f"the number of chains must be at least 1, got {n_chains}.")
    device = torch.device(device)
    if positions is None:
        init_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
        positions = init_rng.uniform(-settings.box, settings.box, size=(n_chains, p))
    pos = torch.as_tensor(np.asarray(positions) if not torch.is_tensor(positions) else positions,
                          dtype=dtype).to(device).contiguous()
    if tuple(pos.shape) != (n_chains, p):
        raise SpecError(f"initial positions must have shape ({n_chains}, {p}), got {tuple(pos.shape)}.")
    if bool((pos.abs() > settings.box).any()):
        raise SpecError(f"initial positions must lie inside the box [-{settings.box}, {settings.box}].")
    u, g = grad_fn(pos) if grad_fn is not None else energy_and_grad(energy_fn, pos)
    if not bool(torch.isfinite(u).all()):
        raise SpecError("the energy is not finite at some initial positions; start the chains elsewhere.")
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.SeedSequence([int(seed), 2]).generate_state(1, np.uint64)[0] >> np.uint64(1)))
    zeros = torch.zeros(n_chains, dtype=dtype, device=device)
    zc = torch.zeros(n_chains, dtype=torch.int64, device=device)
    return HMCState(
        pos, u, g, zeros + math.log(settings.initial_step), zeros.clone(), zeros.clone(),
        zeros + math.log(10 * settings.initial_step), torch.ones_like(pos), 0, torch.zeros_like(pos),
        torch.zeros_like(pos), 0, zc, zc.clone(), gen.get_state(), 0,
    )


def run_block(energy_fn: EnergyFn, state: HMCState, n_draws: int, settings: HMCSettings,
              max_warmup_steps: int | None = None, grad_fn: EnergyGradFn | None = None,
              trajectory_fn: TrajectoryFn | None = None):
    """Advance all chains: warm-up iterations first (at most ``max_warmup_steps``), then ``n_draws`` kept draws.

    Returns (state, theta (C, k, p), energy (C, k), accepted (C, k)) with draws as CPU numpy arrays, so device memory
    does not grow with the run.
    """
    s = settings
    eg = grad_fn if grad_fn is not None else (lambda t: energy_and_grad(energy_fn, t))
    traj = trajectory_fn if trajectory_fn is not None else (lambda *args: leapfrog(eg, *args))
    warm_left = max(s.warmup - state.iteration, 0)
    warm_steps = warm_left if max_warmup_steps is None else min(warm_left, max_warmup_steps)
    if warm_steps < warm_left:
        n_draws = 0
    n_iter = warm_steps + n_draws * s.thin
    start, stop, ends = window_ends(s.warmup)
    ends_set = set(ends)
    device = state.position.device
    gen = torch.Generator(device=device)
    gen.set_state(state.rng_state)
    pos, u, g = state.position, state.energy, state.grad
    log_step, ls_bar, h_bar, mu = (t.clone() for t in (state.log_step, state.log_step_bar, state.h_bar, state.mu))
    inv_mass = state.inv_mass
    w_n, w_mean, w_m2 = state.welford_n, state.welford_mean.clone(), state.welford_m2.clone()
    da = state.da_count
    n_acc, n_bad = state.n_accepted.clone(), state.n_nonfinite.clone()
    inv_t = 1.0 / s.temperature
    C, p = pos.shape
    # Draws of the block gather on the device and leave it once at the end: one transfer per block, and device
    # memory bounded by the block, not the run.
    out_theta = torch.empty((C, n_draws, p), dtype=pos.dtype, device=device)
    out_energy = torch.empty((C, n_draws), dtype=pos.dtype, device=device)
    out_acc = torch.empty((C, n_draws), dtype=torch.bool, device=device)
    k_out = 0
    it = state.iteration
    for _ in range(n_iter):
        warm = it < s.warmup
        n_lf = s.n_leapfrog
        if s.jitter:
            lo, hi = max(1, (s.n_leapfrog + 1) // 2), max(1, (3 * s.n_leapfrog) // 2)
            n_lf = int(torch.randint(lo, hi + 1, (1,), generator=gen, device=device).item())
        r = torch.randn(pos.shape, generator=gen, device=device, dtype=pos.dtype) / inv_mass.sqrt()
        h0 = u * inv_t + 0.5 * (r * r * inv_mass).sum(dim=1)
        eps = log_step.exp().unsqueeze(1)
        # the position step's scale and the momentum kick, fixed over the trajectory
        x, rr, uu, gg = traj(pos, r, g, eps * inv_mass, eps * inv_t, n_lf, s.box)
        h1 = uu * inv_t + 0.5 * (rr * rr * inv_mass).sum(dim=1)
        finite = torch.isfinite(h1) & torch.isfinite(gg).all(dim=1)
        log_a = torch.where(finite, torch.clamp(h0 - h1, max=0.0), torch.full_like(h1, -math.inf))
        a = log_a.exp()
        unif = torch.rand(C, generator=gen, device=device, dtype=pos.dtype)
        accept = (unif < a) & finite
        n_bad += (~finite).to(torch.int64)
        pos = torch.where(accept.unsqueeze(1), x, pos)
        u = torch.where(accept, uu, u)
        g = torch.where(accept.unsqueeze(1), gg, g)
        if warm:
            da += 1
            m = float(da)
            w = 1.0 / (m + 10.0)
            h_bar = (1.0 - w) * h_bar + w * (s.target_accept - a)
            log_step = mu - math.sqrt(m) / 0.05 * h_bar
            eta = m**-0.75
            ls_bar = eta * log_step + (1.0 - eta) * ls_bar
            if s.adapt_mass and start <= it < stop:
                w_n += 1
                delta = pos - w_mean
                w_mean = w_mean + delta / w_n
                w_m2 = w_m2 + delta * (pos - w_mean)
            if s.adapt_mass and (it + 1) in ends_set and w_n > 1:
                var = w_m2 / (w_n - 1)
                inv_mass = (w_n / (w_n + 5.0)) * var + 1e-3 * (5.0 / (w_n + 5.0))
                w_n, w_mean, w_m2 = 0, torch.zeros_like(w_mean), torch.zeros_like(w_m2)
                mu = log_step + math.log(10.0)
                h_bar, ls_bar, da = torch.zeros_like(h_bar), torch.zeros_like(ls_bar), 0
            if it == s.warmup - 1:
                log_step = ls_bar.clone()
        else:
            n_acc += accept.to(torch.int64)
            if (it - s.warmup + 1) % s.thin == 0:
                out_theta[:, k_out] = pos
                out_energy[:, k_out] = u
                out_acc[:, k_out] = accept
                k_out += 1
        it += 1
    new = HMCState(pos, u, g, log_step, ls_bar, h_bar, mu, inv_mass, w_n, w_mean, w_m2, da, n_acc, n_bad,
                   gen.get_state(), it)
    return new, out_theta.cpu().numpy(), out_energy.cpu().numpy(), out_acc.cpu().numpy()


_SCALARS = ("welford_n", "da_count", "iteration")


class HMCKernel:
    """HMC bound to a batched energy, settings, device and dtype, in the shape the runner drives."""

    name = "hmc"

    def __init__(self, energy_fn: EnergyFn, p: int, settings: HMCSettings, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float64, grad_fn: EnergyGradFn | None = None,
                 trajectory_fn: TrajectoryFn | None = None):
        validate_settings(settings)
        self.energy_fn, self.p, self.settings, self.grad_fn = energy_fn, p, settings, grad_fn
        self.trajectory_fn = trajectory_fn
        self.device, self.dtype = torch.device(device), dtype

    def init(self, n_chains: int, seed: int) -> HMCState:
        return init(self.energy_fn, n_chains, self.p, seed, self.settings, self.device, self.dtype,
                    grad_fn=self.grad_fn)

    def warmup_left(self, state: HMCState) -> int:
        return max(self.settings.warmup - state.iteration, 0)

    def step_cost(self) -> int:
        return self.settings.thin * self.settings.n_leapfrog

    def run_block(self, state: HMCState, n_draws: int, max_warmup_steps: int | None = None):
        return run_block(self.energy_fn, state, n_draws, self.settings, max_warmup_steps, self.grad_fn,
                         self.trajectory_fn)

    @staticmethod
    def state_arrays(state: HMCState) -> dict[str, np.ndarray]:
        out = {}
        for k, v in state._asdict().items():
            out[k] = np.int64(v) if k in _SCALARS else v.detach().cpu().numpy()
        return out

    def state_from_arrays(self, arrays: dict[str, np.ndarray]) -> HMCState:
        d = {}
        for k in HMCState._fields:
            v = arrays[k]
            if k in _SCALARS:
                d[k] = int(v)
            elif k == "rng_state":
                d[k] = torch.as_tensor(np.asarray(v, dtype=np.uint8))
            elif np.asarray(v).dtype.kind == "i":
                d[k] = torch.as_tensor(np.asarray(v)).to(self.device)
            else:
                d[k] = torch.as_tensor(np.asarray(v)).to(device=self.device, dtype=self.dtype)
        return HMCState(**d)

    def summary(self, state: HMCState) -> dict[str, float]:
        kept = max(state.iteration - self.settings.warmup, 0)
        acc = float(state.n_accepted.double().mean().item() / kept) if kept else float("nan")
        return {"acceptance": acc, "step": float(state.log_step.exp().median().item()),
                "nonfinite": int(state.n_nonfinite.sum().item())}
