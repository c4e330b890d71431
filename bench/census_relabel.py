"""A copy of a chain file whose draws are relabelled by the network's symmetries: the census of the copy must equal
the census of the original (issue 22).

    python bench/census_relabel.py IN.h5 OUT.h5 --mode swap-half     # first hidden layer's two units swapped in half
    python bench/census_relabel.py IN.h5 OUT.h5 --mode random        # a random group element per draw (in the box);
                                                                     # a zoo convnet's run: channel permutations and
                                                                     # rescalings (zoo_symmetry.random_channel_symmetry)
    python bench/census_relabel.py IN.h5 OUT.h5 --mode shuffle       # draws reordered within and across chains
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from mcmc_landscape.models.nets import MLPSpec  # noqa: E402
from mcmc_landscape.models.symmetry import permute_hidden, random_symmetry  # noqa: E402


def relabel(src: Path, dst: Path, mode: str, seed: int = 0) -> None:
    """Copy ``src`` to ``dst`` and act on its draws (only runs of one file, no virtual datasets)."""
    shutil.copyfile(src, dst)
    rng = np.random.default_rng(seed)
    with h5py.File(dst, "r+") as f:
        run = next(k for k in f if isinstance(f[k], h5py.Group) and "theta" in f[k])
        g = f[run]
        cfg = json.loads(g.attrs["config"])
        n = int(g.attrs["committed_draws"])
        theta = g["theta"][:, :n]
        energy = g["energy"][:, :n]
        if "model" in cfg:
            if mode != "shuffle":
                theta = _act_on_zoo_draws(cfg, theta, rng)
        elif mode == "swap-half":
            spec = MLPSpec.from_widths(cfg["widths"], cfg["activation"])
            swap = np.arange(spec.hidden[0])[::-1]
            half = rng.random(theta.shape[:2]) < 0.5
            theta[half] = permute_hidden(theta[half], spec, 0, swap)
        elif mode == "random":
            spec = MLPSpec.from_widths(cfg["widths"], cfg["activation"])
            flat = theta.reshape(-1, theta.shape[-1])
            theta = np.array([random_symmetry(t, spec, rng, box=float(cfg["box"])) for t in flat]).reshape(theta.shape)
        if mode == "shuffle":
            order = rng.permutation(theta.shape[0] * n)
            theta = theta.reshape(-1, theta.shape[-1])[order].reshape(theta.shape)
            energy = energy.reshape(-1)[order].reshape(energy.shape)
        elif mode not in ("swap-half", "random"):
            raise SystemExit(f"unknown mode {mode!r}")
        g["theta"][:, :n] = theta
        g["energy"][:, :n] = energy


def _act_on_zoo_draws(cfg: dict, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each draw of a zoo convnet's run acted on by its own channel permutation and rescaling, the scales narrowed
    (down to none) until the draw stays in the box: a relabelling, never a move."""
    import torch

    from mcmc_landscape.models.zoo import FlatLayout, build_model
    from mcmc_landscape.models.zoo_symmetry import random_channel_symmetry

    torch.manual_seed(0)
    layout = FlatLayout.of(build_model(cfg["model"], **cfg["model_options"]))
    box = float(cfg["box"])
    flat = theta.reshape(-1, theta.shape[-1]).astype(np.float64)
    out = np.empty_like(flat)
    for i, row in enumerate(flat):
        for high in (1.25, 1.1, 1.02, 1.0):
            acted = random_channel_symmetry(cfg["model"], layout, row, rng, 1.0 / high, high)[0]
            if np.abs(acted).max() <= box:
                break
        out[i] = acted
    return out.reshape(theta.shape).astype(theta.dtype)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--mode", choices=("swap-half", "random", "shuffle"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    relabel(args.src, args.dst, args.mode, args.seed)


if __name__ == "__main__":
    main()
