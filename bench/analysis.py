"""Kernel PCA of 20,000 × 18 draws: scikit-learn's exact dense and randomized KernelPCA against our default
(Nyström + covariance PCA), wall time and peak memory, accuracy against exact (Procrustes disparity at 10,000 draws,
where dense is practical), and the peak memory of a streaming analysis of a file larger than the memory budget.

Usage: python bench/analysis.py [--file runs/theta0.h5] [--skip-dense-20k]
Each measurement runs in a fresh subprocess so its peak RSS is its own. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file is named like the `analysis` package; keep its folder off the import path so the package is found.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

CHILD = r"""
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from analysis.reduction import KernelEmbedding
X = np.load({xfile!r})[: {n}]
t0 = time.perf_counter()
emb = KernelEmbedding(3, gamma={gamma}, solver={solver!r}, n_landmarks={m}, random_state=0)
Y = emb.fit(X).transform(X)
dt = time.perf_counter() - t0
np.save({yfile!r}, Y)
print(json.dumps({{"seconds": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "left_out": emb.left_out_share_}}))
"""

STREAM = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
from analysis.pipeline import AnalysisSettings, analyze_file
t0 = time.perf_counter()
s = AnalysisSettings(max_draws={n}, memory_budget_mb={budget}, n_boot=20, n_boot_kernel=1, canonicalize=False,
                     chunk_draws=2048)
summary, arrays = analyze_file({path!r}, s)
print(json.dumps({{"seconds": time.perf_counter() - t0,
                   "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                   "n_fit": summary["raw"]["kernel_pca"]["n_fit"], "n": summary["n_selected"]}}))
"""


def child(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_big_file(path: Path, chains: int, draws: int, p: int) -> float:
    """A chain file of chains × draws × p float64 draws written block by block; returns its size in GB."""
    import numpy as np

    from mcmc_landscape.data.datasets import load_dataset
    from mcmc_landscape.storage.store import ChainWriter

    ds = load_dataset("points10")
    cfg = {"widths": [2, p, 2], "activation": "relu", "box": 10.0, "arch": str(p)}
    rng = np.random.default_rng(0)
    w = ChainWriter.create(path, "big", cfg, chains, p, {"iteration": np.int64(0)},
                           extra={"data/x": ds.x, "data/y": ds.y}, force=True)
    block = max(1, int(2e8 // (chains * p * 8)))
    for start in range(0, draws, block):
        k = min(block, draws - start)
        theta = rng.uniform(-10, 10, size=(chains, k, p))
        w.append(theta, rng.uniform(0, 20, size=(chains, k)), np.ones((chains, k), bool), {"iteration": np.int64(0)})
    w.close()
    return path.stat().st_size / 1e9


def main() -> None:
    import numpy as np

    from analysis.reduction import median_gamma, procrustes_disparity
    from mcmc_landscape.storage.store import ChainReader

    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default="runs/theta0.h5", help="a chain file of the [2,2] classifier (≥ 20,000 draws)")
    ap.add_argument("--skip-dense-20k", action="store_true", help="skip the ~400 s dense solve at 20,000 draws")
    ap.add_argument("--big-draws", type=int, default=2_000_000, help="draws in the larger-than-budget file")
    args = ap.parse_args()
    root = str(Path(__file__).resolve().parent.parent)
    with ChainReader(args.file) as r:
        X = r.get_chain(flat=True)
    X = X[np.random.default_rng(0).choice(len(X), 20000, replace=False)]
    gamma = median_gamma(X)
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "X.npy", X)

    def run(solver, n, m=500):
        y = tmp / f"Y_{solver}_{n}.npy"
        res = child(CHILD.format(root=root, xfile=str(tmp / "X.npy"), n=n, gamma=gamma, solver=solver, m=m,
                                 yfile=str(y)))
        res["Y"] = str(y)
        return res

    results = {}
    for n in (10000, 20000):
        results[f"ours_{n}"] = run("nystroem", n)
        results[f"randomized_{n}"] = run("randomized", n)
        if n == 10000 or not args.skip_dense_20k:
            results[f"exact_{n}"] = run("exact", n)
    ref = np.load(results["exact_10000"]["Y"])
    disparity = procrustes_disparity(ref, np.load(results["ours_10000"]["Y"]))
    disparity_rand = procrustes_disparity(ref, np.load(results["randomized_10000"]["Y"]))

    big = tmp / "big.h5"
    t0 = time.perf_counter()
    size_gb = make_big_file(big, 16, args.big_draws // 16, 18)
    write_s = time.perf_counter() - t0
    stream = child(STREAM.format(root=root, n=args.big_draws, budget=64, path=str(big)))
    big.unlink()

    print(f"RBF kernel PCA to 3-D of [2,2] draws from {args.file}, γ = {gamma:.4g} (median heuristic)")
    print(f"{'method':<34}{'n':>7}{'seconds':>10}{'peak MB':>10}{'left-out':>10}")
    for key, r in results.items():
        name, n = key.rsplit("_", 1)
        label = {"ours": "ours (Nyström 500 + PCA)", "randomized": "sklearn KernelPCA randomized",
                 "exact": "sklearn KernelPCA dense"}[name]
        print(f"{label:<34}{n:>7}{r['seconds']:>10.2f}{r['peak_mb']:>10.0f}{r['left_out']:>10.4f}")
    print(f"Procrustes disparity vs dense at 10,000: ours {disparity:.2e}, randomized {disparity_rand:.2e}")
    print(f"streaming: {stream['n']:,} draws × 18 ({size_gb:.2f} GB on disk, written in {write_s:.0f} s) analysed in "
          f"{stream['seconds']:.1f} s with peak RSS {stream['peak_mb']:.0f} MB (embedding fitted on {stream['n_fit']:,})")
    best_sklearn = min(results["randomized_20000"]["seconds"], results.get("exact_20000", {"seconds": 1e9})["seconds"])
    summary = {
        "ours_seconds_20000": results["ours_20000"]["seconds"],
        "sklearn_randomized_seconds_20000": results["randomized_20000"]["seconds"],
        "sklearn_dense_seconds_20000": results.get("exact_20000", {}).get("seconds"),
        "speedup_vs_best_sklearn": best_sklearn / results["ours_20000"]["seconds"],
        "procrustes_disparity_10000": disparity,
        "peak_mb": {k: v["peak_mb"] for k, v in results.items()},
        "streaming": {**stream, "file_gb": size_gb},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
