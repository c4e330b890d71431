"""A copy of a chain file whose draws are relabelled by the network's symmetries: the census of the copy must equal
the census of the original (issue 22).

    python bench/census_relabel.py IN.h5 OUT.h5 --mode swap-half     # first hidden layer's two units swapped in half
    python bench/census_relabel.py IN.h5 OUT.h5 --mode random        # a random group element per draw (in the box)
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
        widths = cfg["widths"]
        spec = MLPSpec.from_widths(widths, cfg["activation"])
        n = int(g.attrs["committed_draws"])
        theta = g["theta"][:, :n]
        energy = g["energy"][:, :n]
        if mode == "swap-half":
            swap = np.arange(spec.hidden[0])[::-1]
            half = rng.random(theta.shape[:2]) < 0.5
            theta[half] = permute_hidden(theta[half], spec, 0, swap)
        elif mode == "random":
            flat = theta.reshape(-1, theta.shape[-1])
            theta = np.array([random_symmetry(t, spec, rng, box=float(cfg["box"])) for t in flat]).reshape(theta.shape)
        elif mode == "shuffle":
            order = rng.permutation(theta.shape[0] * n)
            theta = theta.reshape(-1, theta.shape[-1])[order].reshape(theta.shape)
            energy = energy.reshape(-1)[order].reshape(energy.shape)
        else:
            raise SystemExit(f"unknown mode {mode!r}")
        g["theta"][:, :n] = theta
        g["energy"][:, :n] = energy


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
