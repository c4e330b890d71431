r"""Replica exchange (parallel tempering): random-walk Metropolis on a ladder of temperatures with swaps between rungs.

Target: π(θ) ∝ exp(-U(θ)/T) on [-L, L]^p, as for the other kernels. Each chain of the run is one *ladder* of K
replicas at temperatures T_0 = T < T_1 < ... < T_{K-1} = T · t_max (geometric by default). Every step, each replica
makes one random-walk Metropolis move at its own temperature (the proposal and step-size adaptation of
:mod:`mcmc_landscape.samplers.rw`, one step size per rung), then neighbouring rungs propose to exchange their states:
rungs (k, k+1) with k of the step's parity (the deterministic even-odd scheme, Okabe et al. 2001; Syed et al. 2022),
accepted with probability min(1, exp((1/T_k - 1/T_{k+1}) (U_k - U_{k+1}))) (Swendsen and Wang 1986; Geyer 1991;
Earl and Deem 2005). The joint target is the product of the rungs' targets, so the rung-0 replica's states are draws
from π: **they are the run** (``theta``, ``energy``, ``accepted`` = whether rung 0 moved). Hot rungs cross the barriers
between modes and hand the states down the ladder, which a single random walk at T cannot do.

The ladder, the per-rung step sizes and the swap counts (tried and accepted, per chain and neighbour pair, after
warm-up) are part of the state, so they are stored with the run. Each replica owns one SplitMix64 stream and each
ladder one more for its swaps (:mod:`mcmc_landscape.samplers.rng`); chains run in parallel with ``prange``, so the
draws depend
on neither the thread count nor the block sizes, and a saved state resumes bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np
from numba import types

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.energy import ENERGY_FN_TYPE, EnergyModel
from mcmc_landscape.samplers.adaptation import MU_SHIFT, adapt_step, restart_at
from mcmc_landscape.samplers.bound import BoundKernel
from mcmc_landscape.samplers.region import inside as in_region
from mcmc_landscape.samplers.region import region_array, start_in_region
from mcmc_landscape.samplers.rng import chain_seeds, fill_normal, uniform
from mcmc_landscape.samplers.start import uniform_start


class PTSettings(NamedTuple):
    temperature: float = 1.0  # T of rung 0, the run's temperature
    box: float = 10.0
    target_accept: float = 0.234  # of each rung's random walk, reached by dual averaging in warm-up
    warmup: int = 1000
    thin: int = 1
    initial_step: float = 0.1
    n_temps: int = 5  # K rungs
    t_max: float = 20.0  # hottest rung at T · t_max
    region: np.ndarray | None = None  # a parallelepiped {θ : |M θ|_∞ ≤ box} in place of the box (samplers/region.py)


class PTState(NamedTuple):
    """Arrays over chains (ladders) and rungs, plus the step counter shared by all."""

    position: np.ndarray  # (C, K, p) replica states, rung 0 first
    energy: np.ndarray  # (C,) U of rung 0 (the run's energy)
    ladder_energy: np.ndarray  # (C, K) U of every rung
    temperatures: np.ndarray  # (K,) the ladder
    log_step: np.ndarray  # (C, K)
    log_step_bar: np.ndarray  # (C, K)
    h_bar: np.ndarray  # (C, K)
    mu: np.ndarray  # (C, K)
    rng: np.ndarray  # (C, K + 1) uint64: one stream per replica, the last for the ladder's swaps
    n_accepted: np.ndarray  # (C, K) Metropolis moves accepted after warm-up
    n_nonfinite: np.ndarray  # (C,) non-finite proposals on any rung, warm-up included
    swap_tried: np.ndarray  # (C, K - 1) swaps proposed between rungs k and k+1 after warm-up
    swap_accepted: np.ndarray  # (C, K - 1)
    iteration: int


def geometric_ladder(temperature: float, n_temps: int, t_max: float) -> np.ndarray:
    """T · t_max^(k / (K-1)) for k = 0..K-1 (just [T] for K = 1)."""
    if n_temps == 1:
        return np.array([float(temperature)])
    return float(temperature) * float(t_max) ** (np.arange(n_temps) / (n_temps - 1))


def validate_settings(s: PTSettings) -> None:
    if not s.temperature > 0:
        raise SpecError(f"temperature must be positive, got {s.temperature}.")
    if not s.box > 0:
        raise SpecError(f"box half-width L must be positive, got {s.box}.")
    if not 0 < s.target_accept < 1:
        raise SpecError(f"target acceptance must lie in (0, 1), got {s.target_accept}.")
    if s.warmup < 0 or s.thin < 1:
        raise SpecError("warm-up must be 0 or more and thinning 1 or more.")
    if not s.initial_step > 0:
        raise SpecError(f"initial step size must be positive, got {s.initial_step}.")
    if s.n_temps < 1:
        raise SpecError(f"--temps must be at least 1 (rung 0 is the run), got {s.n_temps}.")
    if not s.t_max >= 1:
        raise SpecError(f"--t-max is the hottest rung's temperature in units of T and must be at least 1, "
                        f"got {s.t_max}.")


def init(model: EnergyModel, n_chains: int, seed: int, settings: PTSettings) -> PTState:
    """Start ``n_chains`` ladders, every replica uniform in the box."""
    validate_settings(settings)
    if n_chains < 1:
        raise SpecError(f"the number of chains must be at least 1, got {n_chains}.")
    C, K, p = n_chains, settings.n_temps, model.p
    rng = chain_seeds(seed, C * (K + 1), purpose=4).reshape(C, K + 1)
    position = start_in_region(uniform_start(seed, (C, K, p), settings.box), region_array(settings.region))
    ladder_energy = model.energy(position)
    if not np.all(np.isfinite(ladder_energy)):
        raise SpecError("the energy is not finite at some initial positions; start the chains elsewhere.")
    full = np.full((C, K), np.log(settings.initial_step))
    zeros = np.zeros((C, K))
    return PTState(position, ladder_energy[:, 0].copy(), ladder_energy,
                   geometric_ladder(settings.temperature, K, settings.t_max), full, zeros.copy(), zeros.copy(),
                   full + MU_SHIFT, rng, np.zeros((C, K), np.int64), np.zeros(C, np.int64),
                   np.zeros((C, max(K - 1, 0)), np.int64), np.zeros((C, max(K - 1, 0)), np.int64), 0)


def run_block(model: EnergyModel, state: PTState, n_draws: int, settings: PTSettings,
              max_warmup_steps: int | None = None) -> tuple[PTState, np.ndarray, np.ndarray, np.ndarray]:
    """Advance every ladder; returns (state, theta (C, k, p), energy (C, k), moved (C, k)) of rung 0.

    As in :func:`mcmc_landscape.samplers.rw.run_block`: warm-up steps (at most ``max_warmup_steps`` in this call)
    adapt the step sizes and keep nothing; after warm-up every ``thin``-th step is kept. Blocks of any size give the
    same draws.
    """
    warm_left = max(settings.warmup - state.iteration, 0)
    warm_steps = warm_left if max_warmup_steps is None else min(warm_left, max_warmup_steps)
    if warm_steps < warm_left:
        n_draws = 0
    n_steps = warm_steps + n_draws * settings.thin
    C, K, p = state.position.shape
    pos = state.position.copy()
    lad_e = state.ladder_energy.copy()
    log_step, log_step_bar = state.log_step.copy(), state.log_step_bar.copy()
    h_bar, mu = state.h_bar.copy(), state.mu.copy()
    rng = np.ascontiguousarray(state.rng.reshape(-1)).copy()
    n_acc, n_bad = state.n_accepted.copy(), state.n_nonfinite.copy()
    tried, swapped = state.swap_tried.copy(), state.swap_accepted.copy()
    out_theta = np.empty((C, n_draws, p))
    out_energy = np.empty((C, n_draws))
    out_moved = np.empty((C, n_draws), dtype=np.bool_)
    inv_t = np.ascontiguousarray(1.0 / state.temperatures, dtype=np.float64)
    with nb.parallel_chunksize(1):
        _pt_steps(model.fn, model.fdata, model.idata, model.scratch_shape[0], model.scratch_shape[1], pos, lad_e,
                  log_step, log_step_bar, h_bar, mu, rng, n_acc, n_bad, tried, swapped, inv_t, state.iteration,
                  n_steps, settings.warmup, settings.thin, settings.target_accept, settings.box,
                  region_array(settings.region),
                  out_theta,
                  out_energy, out_moved)
    new = PTState(pos, lad_e[:, 0].copy(), lad_e, state.temperatures.copy(), log_step, log_step_bar, h_bar, mu,
                  rng.reshape(C, K + 1), n_acc, n_bad, tried, swapped, state.iteration + n_steps)
    return new, out_theta, out_energy, out_moved


_F1 = types.float64[::1]
_F2 = types.float64[:, ::1]
_F3 = types.float64[:, :, ::1]
_I1 = types.int64[::1]
_I2 = types.int64[:, ::1]
_U1 = types.uint64[::1]
_I = types.int64
_F = types.float64


@nb.njit(types.void(ENERGY_FN_TYPE, _F2, _I1, _I, _I, _F3, _F2, _F2, _F2, _F2, _F2, _U1, _I2, _I1, _I2, _I2, _F1,
                    _I, _I, _I, _I, _F, _F, _F2, _F3, _F2, types.boolean[:, ::1]), parallel=True, cache=True)
def _pt_steps(fn, fdata, idata, rows, cols, pos, lad_e, log_step, log_step_bar, h_bar, mu_arr, rng, n_acc, n_bad,
              tried, swapped, inv_t, t0, n_steps, warmup, thin, target, box, region, out_theta, out_energy, out_moved):
    C, K, p = pos.shape
    kept_before = max(t0 - warmup, 0) // thin
    restart = restart_at(warmup)
    for c in nb.prange(C):
        scratch = np.empty((rows, cols))
        eps = np.empty(p)
        prop = np.empty(p)
        tmp = np.empty(p)
        base = c * (K + 1)
        for s in range(n_steps):
            t = t0 + s
            moved0 = False
            # one Metropolis move per rung, at the rung's temperature
            for k in range(K):
                stream = base + k
                fill_normal(rng, stream, eps)
                u = uniform(rng, stream)
                step = np.exp(log_step[c, k])
                for j in range(p):
                    prop[j] = pos[c, k, j] + step * eps[j]
                inside = in_region(prop, box, region)
                a = 0.0
                e_new = lad_e[c, k]
                if inside:
                    e_new = fn(prop, fdata, idata, scratch)
                    if np.isfinite(e_new):
                        d = (e_new - lad_e[c, k]) * inv_t[k]
                        a = 1.0 if d <= 0.0 else np.exp(-d)
                    else:
                        n_bad[c] += 1
                accepted = u <= a and a > 0.0
                if accepted:
                    for j in range(p):
                        pos[c, k, j] = prop[j]
                    lad_e[c, k] = e_new
                    if k == 0:
                        moved0 = True
                if t < warmup:
                    ls = log_step[c, k]
                    hb = h_bar[c, k]
                    ls_bar = log_step_bar[c, k]
                    mu = mu_arr[c, k]
                    ls, hb, ls_bar, mu = adapt_step(t, restart, warmup, a, target, ls, hb, ls_bar, mu)
                    log_step[c, k] = ls
                    h_bar[c, k] = hb
                    log_step_bar[c, k] = ls_bar
                    mu_arr[c, k] = mu
                elif accepted:
                    n_acc[c, k] += 1
            # swaps between neighbours (k, k+1) with k of this step's parity
            for k in range(t % 2, K - 1, 2):
                u = uniform(rng, base + K)
                d = (inv_t[k] - inv_t[k + 1]) * (lad_e[c, k] - lad_e[c, k + 1])
                ok = d >= 0.0 or u <= np.exp(d)
                if t >= warmup:
                    tried[c, k] += 1
                if ok:
                    if t >= warmup:
                        swapped[c, k] += 1
                    for j in range(p):
                        tmp[j] = pos[c, k, j]
                        pos[c, k, j] = pos[c, k + 1, j]
                        pos[c, k + 1, j] = tmp[j]
                    e = lad_e[c, k]
                    lad_e[c, k] = lad_e[c, k + 1]
                    lad_e[c, k + 1] = e
                    if k == 0:
                        moved0 = True
            if t >= warmup:
                kk = t - warmup + 1
                if kk % thin == 0:
                    d_idx = kk // thin - 1 - kept_before
                    for j in range(p):
                        out_theta[c, d_idx, j] = pos[c, 0, j]
                    out_energy[c, d_idx] = lad_e[c, 0]
                    out_moved[c, d_idx] = moved0


class PTKernel(BoundKernel):
    """Replica exchange bound to an energy and settings, in the shape the runner drives."""

    name = "pt"
    state_type = PTState
    _validate = staticmethod(validate_settings)

    def _init(self, n_chains: int, seed: int) -> PTState:
        return init(self.model, n_chains, seed, self.settings)

    def step_cost(self) -> int:
        """Energy evaluations per kept draw and chain: every rung moves every step."""
        return self.settings.thin * self.settings.n_temps

    def run_block(self, state: PTState, n_draws: int, max_warmup_steps: int | None = None):
        return run_block(self.model, state, n_draws, self.settings, max_warmup_steps)

    def summary(self, state: PTState) -> dict[str, float]:
        """Progress numbers: rung 0's acceptance, its median step, the mean swap rate and non-finite proposals."""
        kept = max(state.iteration - self.settings.warmup, 0)
        acc = float(state.n_accepted[:, 0].mean() / kept) if kept else float("nan")
        return {"acceptance": acc, "step": float(np.median(np.exp(state.log_step[:, 0]))),
                "nonfinite": int(state.n_nonfinite.sum()), "swap_rate": swap_rates(state).tolist()}


def swap_rates(state: PTState) -> np.ndarray:
    """Accepted share of proposed swaps per neighbour pair, over all chains, after warm-up (NaN before)."""
    tried = state.swap_tried.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tried > 0, state.swap_accepted.sum(axis=0) / np.maximum(tried, 1), np.nan)
