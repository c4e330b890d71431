"""Every draw bit-identical across refactors: a fixed seed's draws, hashed, for each sampler path on the CPU.

The expected digests were computed on the code before the core was split into subpackages (issue 24); a change to
any sampler's arithmetic, random-number order or starting points changes a digest. Sizes are tiny so the test is fast.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.models.energy import mlp_energy_model, mlp_energy_torch, mlp_torch_energy_grad_fn
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import ensemble, hmc, rw, tempering
from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _blocks(kernel, n_chains: int, seed: int, sizes: tuple[int, ...]) -> str:
    """Draws of a run advanced in blocks of ``sizes`` draws (warm-up in the first), and the final state."""
    state = kernel.init(n_chains, seed)
    parts = []
    for i, n in enumerate(sizes):
        state, theta, energy, acc = kernel.run_block(state, n, None if i else 7)
        parts += [np.asarray(theta), np.asarray(energy), np.asarray(acc)]
    arrays = kernel.state_arrays(state)
    # ChEES's adaptation fields (added to HMC's state after these digests) stay at their defaults on a fixed
    # trajectory; the draws and every other field are what the digests hold
    keys = [k for k in sorted(arrays) if not k.startswith("chees_")]
    return digest(*parts, *(np.asarray(arrays[k]) for k in keys))


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("points10")
    spec = MLPSpec.from_string("2", n_in=ds.n_in, n_out=max(2, ds.n_classes), activation="tanh")
    return ds, spec


def _hmc(ds, spec, trajectory: bool):
    settings = hmc.HMCSettings(temperature=1.0, box=3.0, warmup=30, n_leapfrog=5, jitter=True, initial_step=0.05)
    xt = torch.as_tensor(ds.x, dtype=torch.float64)
    yt = torch.as_tensor(ds.y, dtype=torch.int64)
    grad = mlp_torch_energy_grad_fn(spec, ds, "cpu", torch.float64) if trajectory else None
    traj = mlp_torch_trajectory_fn(spec, ds, "cpu") if trajectory else None
    return hmc.HMCKernel(lambda t: mlp_energy_torch(t, spec, xt, yt), spec.n_params, settings, "cpu", torch.float64,
                         grad_fn=grad, trajectory_fn=traj)


EXPECTED = {
    "rw": "b22a2c05f0fe1713",
    "pt": "d6ca671301f4c35a",
    "emcee": "96fefbf2ccfb9b64",
    "hmc_torch": "87148561ee752a17",
    "hmc_numba": "a85379df0e2b1033",
    "hmc_zoo": "2decd6fba2a22fad",
    "rw_zoo": "572f6ba664bf1c55",
}


def compute(name: str, ds, spec) -> str:
    if name == "rw":
        s = rw.RWSettings(temperature=1.0, box=3.0, warmup=40, thin=2, initial_step=0.2)
        return _blocks(rw.RWKernel(mlp_energy_model(spec, ds), s), 4, 11, (5, 6))
    if name == "pt":
        s = tempering.PTSettings(temperature=1.0, box=3.0, warmup=40, thin=1, initial_step=0.2, n_temps=3, t_max=5.0)
        return _blocks(tempering.PTKernel(mlp_energy_model(spec, ds), s), 3, 12, (5, 6))
    if name == "emcee":
        s = ensemble.EnsembleSettings(temperature=1.0, box=3.0, warmup=10, thin=1, stretch=2.0)
        return _blocks(ensemble.EnsembleKernel(mlp_energy_model(spec, ds), s), 2 * spec.n_params + 2, 13, (4, 5))
    if name in ("hmc_torch", "hmc_numba"):
        return _blocks(_hmc(ds, spec, name == "hmc_numba"), 3, 14, (4, 5))
    from mcmc_landscape.runs.config import RunConfig
    from mcmc_landscape.runs.zoo_sampling import make_zoo_kernel

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(6, 14, 14), dtype=np.uint8)
    y = rng.integers(0, 10, size=6).astype(np.int64)
    cfg = {"model": "small-convnet", "width": 1.0, "chains": 2, "temperature": 1.0, "box": 0.3, "warmup": 6,
           "thin": 1, "target_accept": 0.8, "initial_step": 0.01, "leapfrog": 3, "jitter": False, "dtype": "float64"}
    if name == "rw_zoo":
        cfg.update(sampler="rw", target_accept=0.234)
    else:
        cfg.update(sampler="hmc")
    _, kernel = make_zoo_kernel(RunConfig(**cfg), x, y, "cpu")
    return _blocks(kernel, 2, 15, (2, 3))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixed_seed_draws_are_bit_identical(name, setup):
    assert compute(name, *setup) == EXPECTED[name]


if __name__ == "__main__":  # print today's digests (to refresh EXPECTED only on a deliberate change of the draws)
    args = (load_dataset("points10"),)
    ds = args[0]
    sp = MLPSpec.from_string("2", n_in=ds.n_in, n_out=max(2, ds.n_classes), activation="tanh")
    for key in sorted(EXPECTED):
        print(f'    "{key}": "{compute(key, ds, sp)}",')
