r"""Random-walk Metropolis on the box [-L, L]^p, every chain in parallel with Numba.

Target: π(θ) ∝ exp(-U(θ)/T) on [-L, L]^p. Proposal θ' = θ + s_c ε with ε ~ N(0, I); a θ' outside the box has
π(θ') = 0 and is rejected; otherwise it is accepted with probability min(1, exp(-(U(θ') - U(θ))/T)) (Metropolis et
al. 1953). A proposal whose energy is not finite is a rejection, counted per chain.

During warm-up each chain's step size s_c is tuned by dual averaging (Nesterov 2009; Hoffman and Gelman 2014, §3.2)
toward a target acceptance probability (0.234 by default, Roberts, Gelman and Gilks 1997), with γ = 0.05, t0 = 10,
κ = 0.75 and μ = log(10 s_0). As in Stan, the averaging restarts halfway through warm-up (μ = log(10 s) of the step
reached), so the final step reflects where the chain is, not where it started. At the end of warm-up s_c is set to
the averaged iterate and frozen, so the kept draws form a time-homogeneous Markov chain.

Each chain owns one SplitMix64 stream (:mod:`mcmc_landscape.samplers.rng`) and a fixed number of random numbers per step's
accept decision; chains are split across threads with ``prange``, so the draws do not depend on the thread count,
and a saved state resumes bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
from numba import types

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.energy import ENERGY_FN_TYPE, EnergyModel
from mcmc_landscape.samplers.adaptation import adapt_step, restart_at
from mcmc_landscape.samplers.bound import BoundKernel
from mcmc_landscape.samplers.region import all_inside, region_array, start_in_region
from mcmc_landscape.samplers.region import inside as in_region
from mcmc_landscape.samplers.rng import chain_seeds, fill_normal, uniform
from mcmc_landscape.samplers.start import uniform_start


class RWState(NamedTuple):
    """Everything needed to continue: arrays over chains plus the step counter shared by all chains."""

    position: np.ndarray  # (C, p)
    energy: np.ndarray  # (C,)
    log_step: np.ndarray  # (C,) current log step size
    log_step_bar: np.ndarray  # (C,) dual-averaging iterate; becomes log_step at the end of warm-up
    h_bar: np.ndarray  # (C,) dual-averaging running mean of (target - acceptance)
    mu: np.ndarray  # (C,) dual-averaging shrinkage point log(10 s), reset when the averaging restarts
    rng: np.ndarray  # (C,) uint64
    n_accepted: np.ndarray  # (C,) since the start of sampling (after warm-up)
    n_nonfinite: np.ndarray  # (C,) non-finite proposals, warm-up included
    iteration: int  # steps taken by every chain, warm-up included


class RWInfo(NamedTuple):
    """Per kept draw: whether the step that produced it was accepted."""

    accepted: np.ndarray  # (C, draws) bool


class RWSettings(NamedTuple):
    temperature: float = 1.0
    box: float = 10.0
    target_accept: float = 0.234
    warmup: int = 1000
    thin: int = 1
    initial_step: float = 0.1
    region: np.ndarray | None = None  # a parallelepiped {θ : |M θ|_∞ ≤ box} in place of the box (samplers/region.py)


def validate_settings(s: RWSettings) -> None:
    if not s.temperature > 0:
        raise SpecError(f"temperature must be positive, got {s.temperature}.")
    if not s.box > 0:
        raise SpecError(f"box half-width L must be positive, got {s.box}.")
    if not 0 < s.target_accept < 1:
        raise SpecError(f"target acceptance must lie in (0, 1), got {s.target_accept}.")
    if s.warmup < 0:
        raise SpecError(f"warm-up length must be 0 or more, got {s.warmup}.")
    if s.thin < 1:
        raise SpecError(f"thinning must be 1 or more, got {s.thin}.")
    if not s.initial_step > 0:
        raise SpecError(f"initial step size must be positive, got {s.initial_step}.")


def init(model: EnergyModel, n_chains: int, seed: int, settings: RWSettings,
         positions: np.ndarray | None = None) -> RWState:
    """Start ``n_chains`` chains: uniform in the box unless ``positions`` (C, p) are given."""
    validate_settings(settings)
    if n_chains < 1:
        raise SpecError(f"the number of chains must be at least 1, got {n_chains}.")
    rng = chain_seeds(seed, n_chains, purpose=1)
    region = region_array(settings.region)
    if positions is None:
        positions = start_in_region(uniform_start(seed, (n_chains, model.p), settings.box), region)
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    if positions.shape != (n_chains, model.p):
        raise SpecError(f"initial positions must have shape ({n_chains}, {model.p}), got {positions.shape}.")
    if not all_inside(positions, settings.box, region):
        raise SpecError(f"initial positions must lie inside the box [-{settings.box}, {settings.box}] (or the region "
                        "given in its place).")
    energy = model.energy(positions)
    if not np.all(np.isfinite(energy)):
        raise SpecError("the energy is not finite at some initial positions; start the chains elsewhere.")
    return RWState(
        positions, energy, np.full(n_chains, np.log(settings.initial_step)), np.zeros(n_chains),
        np.zeros(n_chains), np.full(n_chains, np.log(10.0 * settings.initial_step)), rng,
        np.zeros(n_chains, np.int64), np.zeros(n_chains, np.int64), 0,
    )


def run_block(model: EnergyModel, state: RWState, n_draws: int, settings: RWSettings,
              max_warmup_steps: int | None = None) -> tuple[RWState, np.ndarray, np.ndarray, RWInfo]:
    """Advance every chain; returns (state, theta (C, k, p), energy (C, k), info).

    Steps taken while ``state.iteration < settings.warmup`` adapt the step size and record nothing (at most
    ``max_warmup_steps`` of them in this call); after that, every ``thin``-th step is kept until ``n_draws`` draws are
    kept. Splitting a run into blocks does not change its draws.
    """
    warm_left = max(settings.warmup - state.iteration, 0)
    warm_steps = warm_left if max_warmup_steps is None else min(warm_left, max_warmup_steps)
    if warm_steps < warm_left:
        n_draws = 0
    n_steps = warm_steps + n_draws * settings.thin
    C, p = state.position.shape
    pos = state.position.copy()
    energy = state.energy.copy()
    log_step = state.log_step.copy()
    log_step_bar = state.log_step_bar.copy()
    h_bar = state.h_bar.copy()
    mu = state.mu.copy()
    rng = state.rng.copy()
    n_acc = state.n_accepted.copy()
    n_bad = state.n_nonfinite.copy()
    out_theta = np.empty((C, n_draws, p))
    out_energy = np.empty((C, n_draws))
    out_acc = np.empty((C, n_draws), dtype=np.bool_)
    with nb.parallel_chunksize(1):  # chains take unequal time (box rejections skip the energy): hand them out singly
        _rw_steps(model.fn, model.fdata, model.idata, model.scratch_shape[0], model.scratch_shape[1],
                  pos, energy, log_step, log_step_bar, h_bar, mu, rng, n_acc, n_bad, state.iteration, n_steps,
                  settings.warmup, settings.thin, settings.target_accept,
                  1.0 / settings.temperature, settings.box, region_array(settings.region), out_theta, out_energy,
                  out_acc)
    new = RWState(pos, energy, log_step, log_step_bar, h_bar, mu, rng, n_acc, n_bad, state.iteration + n_steps)
    return new, out_theta, out_energy, RWInfo(out_acc)


_F1 = types.float64[::1]
_F2 = types.float64[:, ::1]
_I1 = types.int64[::1]
_U1 = types.uint64[::1]


@nb.njit(types.void(ENERGY_FN_TYPE, _F2, _I1, types.int64, types.int64, _F2, _F1, _F1, _F1, _F1, _F1, _U1, _I1,
                    _I1, types.int64, types.int64, types.int64, types.int64, types.float64, types.float64,
                    types.float64, _F2,
                    types.float64[:, :, ::1], _F2, types.boolean[:, ::1]), parallel=True, cache=True)
def _rw_steps(fn, fdata, idata, rows, cols, pos, energy, log_step, log_step_bar, h_bar, mu_arr, rng, n_acc, n_bad,
              t0, n_steps, warmup, thin, target, inv_t, box, region, out_theta, out_energy, out_acc):
    C, p = pos.shape
    kept_before = max(t0 - warmup, 0) // thin
    restart = restart_at(warmup)
    for c in nb.prange(C):
        scratch = np.empty((rows, cols))
        eps = np.empty(p)
        prop = np.empty(p)
        cur = pos[c].copy()
        e_cur = energy[c]
        ls = log_step[c]
        ls_bar = log_step_bar[c]
        hb = h_bar[c]
        mu = mu_arr[c]
        step = np.exp(ls)
        acc_count = n_acc[c]
        bad = n_bad[c]
        for s in range(n_steps):
            t = t0 + s
            fill_normal(rng, c, eps)
            u = uniform(rng, c)
            for j in range(p):
                prop[j] = cur[j] + step * eps[j]
            inside = in_region(prop, box, region)
            a = 0.0
            e_new = e_cur
            if inside:
                e_new = fn(prop, fdata, idata, scratch)
                if np.isfinite(e_new):
                    d = (e_new - e_cur) * inv_t
                    a = 1.0 if d <= 0.0 else np.exp(-d)
                else:
                    bad += 1
            accepted = u <= a and a > 0.0
            if accepted:
                for j in range(p):
                    cur[j] = prop[j]
                e_cur = e_new
            if t < warmup:
                ls, hb, ls_bar, mu = adapt_step(t, restart, warmup, a, target, ls, hb, ls_bar, mu)
                step = np.exp(ls)
            else:
                k = t - warmup + 1
                if accepted:
                    acc_count += 1
                if k % thin == 0:
                    d_idx = k // thin - 1 - kept_before
                    for j in range(p):
                        out_theta[c, d_idx, j] = cur[j]
                    out_energy[c, d_idx] = e_cur
                    out_acc[c, d_idx] = accepted
        pos[c] = cur
        energy[c] = e_cur
        log_step[c] = ls
        log_step_bar[c] = ls_bar
        h_bar[c] = hb
        mu_arr[c] = mu
        n_acc[c] = acc_count
        n_bad[c] = bad


class RWKernel(BoundKernel):
    """The random walk bound to an energy and settings, in the shape the runner drives."""

    name = "rw"
    state_type = RWState
    _validate = staticmethod(validate_settings)

    def _init(self, n_chains: int, seed: int) -> RWState:
        return init(self.model, n_chains, seed, self.settings)

    def step_cost(self) -> int:
        """Energy evaluations per kept draw and chain (for sizing blocks)."""
        return self.settings.thin

    def run_block(self, state: RWState, n_draws: int, max_warmup_steps: int | None = None):
        state, theta, energy, info = run_block(self.model, state, n_draws, self.settings, max_warmup_steps)
        return state, theta, energy, info.accepted
