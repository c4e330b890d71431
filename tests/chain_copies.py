"""Copies of a one-run chain file with its draws relabelled or reordered: what a census must not see."""

import json
import shutil
from collections.abc import Callable

import h5py
import numpy as np


def rewrite_draws(src, dst, seed: int, act: Callable[[dict, np.ndarray, np.random.Generator], np.ndarray] | None = None) \
        -> float:
    """Copy ``src`` to ``dst``; then every committed draw's θ is replaced by ``act(config, θ (n, p), rng)``, or, without
    ``act``, the draws (θ with their energies) are shuffled across chains and time. Returns how far θ moved (max)."""
    shutil.copyfile(src, dst)
    rng = np.random.default_rng(seed)
    with h5py.File(dst, "r+") as f:
        g = f[next(iter(f))]
        cfg = json.loads(g.attrs["config"])
        n = int(g.attrs["committed_draws"])
        theta, energy = g["theta"][:, :n], g["energy"][:, :n]
        flat = theta.reshape(-1, theta.shape[-1])
        if act is not None:
            flat = act(cfg, flat, rng)
            assert np.abs(flat).max() <= float(cfg["box"])           # every copy still a draw of the boxed posterior
        else:
            order = rng.permutation(len(flat))
            flat, energy = flat[order], energy.reshape(-1)[order].reshape(energy.shape)
        new = flat.reshape(theta.shape)
        g["theta"][:, :n], g["energy"][:, :n] = new, energy
        return float(np.abs(new - theta).max())
