"""Does the chain store keep pace? The same draws written through the store and through one plain h5py write.

The store writes a run as the runner does: block after block, each committed atomically (draws appended, the sampler
state written into the inactive slot, the commit record moved, each step flushed). The plain side writes ``theta``,
``energy`` and ``accepted`` as three contiguous datasets in one call each, the fastest HDF5 can take these bytes. Both
rates count the same bytes (the draws); the store's extra work (state, commits, chunking, compression) is its cost.

    python bench/store.py                               # 16, 1,024 and 65,536 chains, p = 18, no compression
    python bench/store.py --compression none,lzf,gzip --dir /dev/shm   # memory-backed: the software, not the disk
    python bench/store.py --mb 150 --dir /dev/shm       # 150 MB a case: under one runner block at 1,024 and 65,536

Each case is, by default, 4 whole blocks as the runner cuts them for that many chains (~1.2 GB at p = 18): a run,
with the file's creation and each block's state and commit, not a fraction of one block. ``--mb`` sizes the cases by
bytes instead (a last partial block included, as in a run whose total is not whole blocks).

Prints one line per case and ends with one JSON line holding ``ratio`` (the store's MB/s over the plain write's, for
the first compression at the largest chain count) and every case.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from mcmc_landscape.runs.runner import _whole_chunks, draws_per_block
from mcmc_landscape.storage.store import ChainWriter, chunk_layout


def draws(chains: int, n: int, p: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random-walk-like draws (70% of the steps rejected, so runs of repeats as a sampler writes them)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(chains, n, p)) * 0.05 * (rng.random((chains, n, 1)) < 0.3)
    theta = np.cumsum(steps, axis=1) + rng.uniform(-1, 1, (chains, 1, p))
    return theta, (theta**2).sum(-1), rng.random((chains, n)) < 0.3


def state_after(theta: np.ndarray, energy: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """A state shaped like the random walk's: position, energy, step sizes, counters, RNG words per chain."""
    c = theta.shape[0]
    return {"position": theta[:, t - 1].copy(), "energy": energy[:, t - 1].copy(), "log_step": np.zeros(c),
            "log_step_bar": np.zeros(c), "h_bar": np.zeros(c), "mu": np.zeros(c), "rng": np.zeros((c, 2), np.uint64),
            "n_accepted": np.zeros(c, np.int64), "n_nonfinite": np.zeros(c, np.int64), "iteration": np.int64(t)}


def through_store(path: Path, theta: np.ndarray, energy: np.ndarray, acc: np.ndarray, block: int,
                  compression: str) -> float:
    c, n, p = theta.shape
    path.unlink(missing_ok=True)  # both sides start from no file (replacing a big file costs time of its own)
    # the runner hands over each block as its own arrays, and the state after it
    spans = [(s, min(n, s + block)) for s in range(0, n, block)]
    blocks = [(np.ascontiguousarray(theta[:, s:e]), np.ascontiguousarray(energy[:, s:e]),
               np.ascontiguousarray(acc[:, s:e]), state_after(theta, energy, e)) for s, e in spans]
    first = state_after(theta, energy, 1)  # the sampler's to make, not the store's: outside the timing, as the blocks
    t0 = time.perf_counter()
    w = ChainWriter.create(path, "r", {}, c, p, first, force=True, compression=compression, block_draws=block)
    for b in blocks:
        w.append(*b)
    w.close()
    return time.perf_counter() - t0


def plain(path: Path, theta: np.ndarray, energy: np.ndarray, acc: np.ndarray) -> float:
    path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        f["theta"], f["energy"], f["accepted"] = theta, energy, acc
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chains", default="16,1024,65536", help="comma-separated chain counts")
    ap.add_argument("--p", type=int, default=18, help="parameters per draw (18: the [2,2] classifier)")
    ap.add_argument("--blocks", type=int, default=4, help="whole runner blocks per case (unless --mb)")
    ap.add_argument("--mb", type=float, default=None, help="megabytes of draws per case, instead of --blocks")
    ap.add_argument("--block-evals", type=float, default=2e6,
                    help="block size as the runner sizes it: evaluations per block / (chains × step cost)")
    ap.add_argument("--step-cost", type=int, default=1, help="evaluations per draw and chain (16: HMC's leapfrog)")
    ap.add_argument("--compression", default="none", help="comma-separated: none, lzf, gzip")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many (the machine is shared)")
    ap.add_argument("--dir", default=None, help="where to write (default: the system's temporary folder)")
    a = ap.parse_args()
    cases = []
    with tempfile.TemporaryDirectory(dir=a.dir) as tmp:
        for chains in (int(x) for x in a.chains.split(",")):
            # blocks as the runner cuts them: evaluations per block, then whole chunks of the store
            runner_block = draws_per_block(int(a.block_evals), chains, a.step_cost)
            if a.mb is None:
                block = _whole_chunks(runner_block, chunk_layout(chains, a.p, 8, runner_block)[1])
                n = a.blocks * block
            else:
                n = max(2, int(a.mb * 1e6 / (chains * (a.p * 8 + 9))))
                first = min(n, runner_block)
                block = _whole_chunks(first, chunk_layout(chains, a.p, 8, first)[1])
            theta, energy, acc = draws(chains, n, a.p)
            mb = (theta.nbytes + energy.nbytes + acc.nbytes) / 1e6
            for comp in a.compression.split(","):
                ts, tp = float("inf"), float("inf")
                for _ in range(a.repeats):  # interleaved, so that both sides meet the same load on a shared machine
                    ts = min(ts, through_store(Path(tmp) / "s.h5", theta, energy, acc, block, comp))
                    tp = min(tp, plain(Path(tmp) / "p.h5", theta, energy, acc))
                size = os.path.getsize(Path(tmp) / "s.h5") / 1e6
                case = {"chains": chains, "p": a.p, "draws": n, "block_draws": block, "compression": comp,
                        "mb": round(mb, 1), "store_mb_s": round(mb / ts, 1), "plain_mb_s": round(mb / tp, 1),
                        "ratio": round(tp / ts, 3), "file_mb": round(size, 1)}
                cases.append(case)
                print(f"{chains:>7} chains × {n:>6} draws (blocks of {block:>5}), {comp:>4}: store {mb / ts:8.1f} MB/s, "
                      f"plain h5py {mb / tp:8.1f} MB/s, ratio {tp / ts:.3f}, file {size:.0f} MB of {mb:.0f} MB",
                      flush=True)
    head = [c for c in cases if c["compression"] == cases[0]["compression"]][-1]
    print(json.dumps({"ratio": head["ratio"], "chains": head["chains"], "compression": head["compression"],
                      "cases": cases}))


if __name__ == "__main__":
    main()
