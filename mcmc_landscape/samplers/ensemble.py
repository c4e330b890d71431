r"""emcee's affine-invariant ensemble sampler as a kernel of this package: the baseline DESIGN.md names.

Target π(θ) ∝ exp(-U(θ)/T) on the box [-L, L]^p, the same as the other kernels. The walkers of one ensemble are the
chains; every iteration is one stretch move of the whole ensemble (Goodman and Weare 2010; emcee, Foreman-Mackey et
al. 2013), with the energy of all proposals evaluated in one vectorized call of the Numba energy. A proposal outside
the box has probability zero and is rejected. The stretch move needs an even number of walkers, at least 2p, so that
the two halves of the ensemble span the space. There is no adaptation: warm-up iterations are run and dropped.

emcee's ``numpy.random.RandomState`` (MT19937) is the only source of randomness; its full state is part of the saved
state, so a resumed run continues bit for bit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.energy import EnergyModel
from mcmc_landscape.samplers.bound import BoundKernel
from mcmc_landscape.samplers.start import uniform_start


class EnsembleSettings(NamedTuple):
    temperature: float = 1.0
    box: float = 10.0
    warmup: int = 1000
    thin: int = 1
    stretch: float = 2.0  # the stretch move's scale a


class EnsembleState(NamedTuple):
    coords: np.ndarray  # (W, p)
    energy: np.ndarray  # (W,) U
    rng_key: np.ndarray  # (624,) uint32: MT19937 key
    rng_pos: int
    rng_has_gauss: int
    rng_gauss: float
    n_accepted: np.ndarray  # (W,) int64, after warm-up
    iteration: int


_SCALARS = {"rng_pos": int, "rng_has_gauss": int, "rng_gauss": float, "iteration": int}


def validate_settings(s: EnsembleSettings) -> None:
    if not s.temperature > 0 or not s.box > 0:
        raise SpecError("temperature and box half-width must be positive.")
    if s.warmup < 0 or s.thin < 1:
        raise SpecError("warm-up must be ≥ 0 and thinning ≥ 1.")
    if not s.stretch > 1:
        raise SpecError(f"the stretch scale a must be above 1, got {s.stretch}.")


def init(model: EnergyModel, n_walkers: int, seed: int, settings: EnsembleSettings) -> EnsembleState:
    validate_settings(settings)
    if n_walkers < 2 * model.p or n_walkers % 2:
        raise SpecError(f"emcee's stretch move needs an even number of walkers, at least 2·p = {2 * model.p}; got "
                        f"--chains {n_walkers}.")
    coords = uniform_start(seed, (n_walkers, model.p), settings.box)
    rng = np.random.RandomState(np.random.MT19937(np.random.SeedSequence([int(seed), 3])))
    _, key, pos, has_gauss, gauss = rng.get_state()
    zeros = np.zeros(n_walkers, dtype=np.int64)
    return EnsembleState(coords, model.energy(coords), key, int(pos), int(has_gauss), float(gauss), zeros, 0)


def run_block(model: EnergyModel, state: EnsembleState, n_draws: int, settings: EnsembleSettings,
              max_warmup_steps: int | None = None):
    """Warm-up iterations first (at most ``max_warmup_steps``), then ``n_draws`` kept draws of every walker.

    Returns (state, theta (W, k, p), energy (W, k), accepted (W, k)).
    """
    import emcee

    s = settings
    warm_left = max(s.warmup - state.iteration, 0)
    warm_steps = warm_left if max_warmup_steps is None else min(warm_left, max_warmup_steps)
    if warm_steps < warm_left:
        n_draws = 0
    W, p = state.coords.shape
    inv_t, box = 1.0 / s.temperature, s.box

    def log_prob(x: np.ndarray) -> np.ndarray:
        inside = np.all(np.abs(x) <= box, axis=1)
        out = np.full(x.shape[0], -np.inf)
        if inside.any():
            out[inside] = -model.energy(x[inside]) * inv_t
        return out

    sampler = emcee.EnsembleSampler(W, p, log_prob, vectorize=True, moves=emcee.moves.StretchMove(a=s.stretch))
    rs = ("MT19937", state.rng_key, state.rng_pos, state.rng_has_gauss, state.rng_gauss)
    current = emcee.State(state.coords, log_prob=-state.energy * inv_t, random_state=rs)
    theta = np.empty((W, n_draws, p))
    energy = np.empty((W, n_draws))
    accepted = np.empty((W, n_draws), dtype=bool)
    n_acc, it, k = state.n_accepted.copy(), state.iteration, 0
    coords, u = state.coords.copy(), state.energy
    for new in sampler.sample(current, iterations=warm_steps + n_draws * s.thin, store=False,
                              skip_initial_state_check=True):
        moved = np.any(new.coords != coords, axis=1)
        coords, u = new.coords.copy(), -new.log_prob / inv_t  # emcee updates its state's arrays in place
        if it >= s.warmup:
            n_acc += moved
            if (it - s.warmup + 1) % s.thin == 0:
                theta[:, k], energy[:, k], accepted[:, k] = coords, u, moved
                k += 1
        it += 1
    _, key, pos, has_gauss, gauss = sampler.random_state
    return (EnsembleState(np.array(coords), np.array(u), np.asarray(key, dtype=np.uint32), int(pos), int(has_gauss),
                          float(gauss), n_acc, it), theta, energy, accepted)


class EnsembleKernel(BoundKernel):
    """emcee bound to an energy and settings, in the shape the runner drives."""

    name = "emcee"
    state_type = EnsembleState
    _validate = staticmethod(validate_settings)

    def _init(self, n_chains: int, seed: int) -> EnsembleState:
        return init(self.model, n_chains, seed, self.settings)

    def step_cost(self) -> int:
        return self.settings.thin

    def run_block(self, state: EnsembleState, n_draws: int, max_warmup_steps: int | None = None):
        return run_block(self.model, state, n_draws, self.settings, max_warmup_steps)

    @staticmethod
    def state_arrays(state: EnsembleState) -> dict[str, np.ndarray]:
        return {k: (np.asarray(v) if k not in _SCALARS else np.asarray(v, dtype=np.float64 if k == "rng_gauss"
                                                                        else np.int64))
                for k, v in state._asdict().items()}

    @staticmethod
    def state_from_arrays(arrays: dict[str, np.ndarray]) -> EnsembleState:
        d = {k: (_SCALARS[k](arrays[k]) if k in _SCALARS else np.ascontiguousarray(arrays[k]))
             for k in EnsembleState._fields}
        d["rng_key"] = d["rng_key"].astype(np.uint32)
        return EnsembleState(**d)

    def summary(self, state: EnsembleState) -> dict[str, float]:
        kept = max(state.iteration - self.settings.warmup, 0)
        acc = float(state.n_accepted.mean() / kept) if kept else float("nan")
        return {"acceptance": acc, "step": float("nan"), "nonfinite": 0}
