r"""Random-walk Metropolis over a batch of chains in PyTorch, for energies that are torch functions (the zoo's
convnets through ``torch.func``), on any device: all chains advance as one tensor.

The algorithm is that of :mod:`mcmc_landscape.samplers.rw` (the Numba kernel for MLPs), step for step: target
π(θ) ∝ exp(-U(θ)/T) on [-L, L]^p; proposal θ' = θ + s_c ε with ε ~ N(0, I); a θ' outside the box is rejected; otherwise
it is accepted with probability min(1, exp(-(U(θ') - U(θ))/T)); a non-finite U(θ') is a rejection, counted. During
warm-up each chain's step s_c follows dual averaging toward the target acceptance (γ = 0.05, t0 = 10, κ = 0.75,
μ = log(10 s_0)), restarted halfway through a warm-up of 200 steps or more, and frozen at the averaged iterate at the
end of warm-up. Only the random numbers differ: one ``torch.Generator`` per run (its state saved with every block),
so a resumed run is bit-identical to an uninterrupted one on the CPU.

The energy of a whole batch is evaluated at once, proposals outside the box included (their value is ignored): no
host synchronisation inside the loop, and the batch stays in lockstep on a GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from mcmc_landscape.errors import SpecError
from mcmc_landscape.samplers.adaptation import adapt_step, restart_at
from mcmc_landscape.samplers.bound import TorchKernel
from mcmc_landscape.samplers.rw import RWSettings, validate_settings

EnergyFn = Callable[[torch.Tensor], torch.Tensor]  # (C, p) -> (C,)


class TorchRWState(NamedTuple):
    position: torch.Tensor  # (C, p)
    energy: torch.Tensor  # (C,)
    log_step: torch.Tensor  # (C,)
    log_step_bar: torch.Tensor  # (C,)
    h_bar: torch.Tensor  # (C,)
    mu: torch.Tensor  # (C,)
    n_accepted: torch.Tensor  # (C,) int64, after warm-up
    n_nonfinite: torch.Tensor  # (C,) int64
    rng_state: torch.Tensor  # generator state (uint8)
    iteration: int


def init(energy_fn: EnergyFn, positions: torch.Tensor, seed: int, settings: RWSettings) -> TorchRWState:
    """Start the chains at ``positions`` (C, p), inside the box; the generator is seeded from ``seed``."""
    validate_settings(settings)
    pos = positions.contiguous()
    if pos.ndim != 2 or pos.shape[0] < 1:
        raise SpecError(f"initial positions must have shape (chains ≥ 1, p), got {tuple(pos.shape)}.")
    if bool((pos.abs() > settings.box).any()):
        raise SpecError(f"initial positions must lie inside the box [-{settings.box}, {settings.box}]; "
                        "give a larger --box.")
    with torch.no_grad():
        u = energy_fn(pos)
    if not bool(torch.isfinite(u).all()):
        raise SpecError("the energy is not finite at some initial positions; start the chains elsewhere.")
    gen = torch.Generator(device=pos.device)
    gen.manual_seed(int(np.random.SeedSequence([int(seed), 1]).generate_state(1, np.uint64)[0] >> np.uint64(1)))
    n = pos.shape[0]
    zeros = torch.zeros(n, dtype=pos.dtype, device=pos.device)
    zc = torch.zeros(n, dtype=torch.int64, device=pos.device)
    return TorchRWState(pos, u.detach(), zeros + math.log(settings.initial_step), zeros.clone(), zeros.clone(),
                        zeros + math.log(10.0 * settings.initial_step), zc, zc.clone(), gen.get_state(), 0)


def run_block(energy_fn: EnergyFn, state: TorchRWState, n_draws: int, settings: RWSettings,
              max_warmup_steps: int | None = None):
    """Advance every chain; returns (state, theta (C, k, p), energy (C, k), accepted (C, k)) as numpy arrays.

    Warm-up steps come first (at most ``max_warmup_steps`` in this call, and then no draws); after warm-up every
    ``thin``-th step is kept until ``n_draws`` are. Splitting a run into blocks does not change its draws.
    """
    s = settings
    warm_left = max(s.warmup - state.iteration, 0)
    warm_steps = warm_left if max_warmup_steps is None else min(warm_left, max_warmup_steps)
    if warm_steps < warm_left:
        n_draws = 0
    n_steps = warm_steps + n_draws * s.thin
    restart = restart_at(s.warmup)
    pos, e_cur = state.position, state.energy
    ls, ls_bar, hb, mu = (t.clone() for t in (state.log_step, state.log_step_bar, state.h_bar, state.mu))
    n_acc, n_bad = state.n_accepted.clone(), state.n_nonfinite.clone()
    C, p = pos.shape
    device, dtype = pos.device, pos.dtype
    gen = torch.Generator(device=device)
    gen.set_state(state.rng_state)
    inv_t = 1.0 / s.temperature
    step = ls.exp().unsqueeze(1)
    out_theta = torch.empty((C, n_draws, p), dtype=dtype, device=device)
    out_energy = torch.empty((C, n_draws), dtype=dtype, device=device)
    out_acc = torch.empty((C, n_draws), dtype=torch.bool, device=device)
    k_out = 0
    with torch.no_grad():
        for i in range(n_steps):
            t = state.iteration + i
            eps = torch.randn((C, p), generator=gen, device=device, dtype=dtype)
            unif = torch.rand(C, generator=gen, device=device, dtype=dtype)
            prop = torch.addcmul(pos, step, eps)
            inside = (prop.abs() <= s.box).all(dim=1)
            e_new = energy_fn(prop)
            finite = torch.isfinite(e_new)
            n_bad += (inside & ~finite).to(torch.int64)
            d = (e_new - e_cur) * inv_t
            ok = inside & finite
            a = torch.where(ok, torch.where(d <= 0, torch.ones_like(d), torch.exp(-d.clamp(min=0))),
                            torch.zeros_like(d))
            accepted = (unif <= a) & (a > 0)
            pos = torch.where(accepted.unsqueeze(1), prop, pos)
            e_cur = torch.where(accepted, e_new, e_cur)
            if t < s.warmup:
                ls, hb, ls_bar, mu = adapt_step(t, restart, s.warmup, a, s.target_accept, ls, hb, ls_bar, mu)
                step = ls.exp().unsqueeze(1)
            else:
                n_acc += accepted.to(torch.int64)
                if (t - s.warmup + 1) % s.thin == 0:
                    out_theta[:, k_out] = pos
                    out_energy[:, k_out] = e_cur
                    out_acc[:, k_out] = accepted
                    k_out += 1
    new = TorchRWState(pos, e_cur, ls, ls_bar, hb, mu, n_acc, n_bad, gen.get_state(), state.iteration + n_steps)
    return new, out_theta.cpu().numpy(), out_energy.cpu().numpy(), out_acc.cpu().numpy()


class TorchRWKernel(TorchKernel):
    """The torch random walk bound to a batched energy, settings and starting points, in the shape the runner
    drives. ``start(n_chains, seed)`` gives the initial positions (C, p) on the kernel's device and dtype."""

    name = "rw"
    state_type = TorchRWState

    def __init__(self, energy_fn: EnergyFn, settings: RWSettings, start: Callable[[int, int], torch.Tensor],
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64):
        validate_settings(settings)
        self.energy_fn, self.settings, self.start = energy_fn, settings, start
        self.device, self.dtype = torch.device(device), dtype

    def init(self, n_chains: int, seed: int) -> TorchRWState:
        if n_chains < 1:
            raise SpecError(f"the number of chains must be at least 1, got {n_chains}.")
        return init(self.energy_fn, self.start(n_chains, seed).to(self.device, self.dtype), seed, self.settings)

    def step_cost(self) -> int:
        return self.settings.thin

    def run_block(self, state: TorchRWState, n_draws: int, max_warmup_steps: int | None = None):
        return run_block(self.energy_fn, state, n_draws, self.settings, max_warmup_steps)
