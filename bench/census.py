"""Census benchmark: every local minimum of the [2,2] ReLU classifier on the report's 10 points, from 10,000 draws.

    python bench/census.py                         # sample 16 × 625 draws (thin 20), then the census of all 10,000
    python bench/census.py --count 2000            # quicker
    python bench/census.py --chains FILE           # census of an existing chain file
    python bench/census.py --model small-convnet   # a zoo run: batched L-BFGS, identity on a probe batch, Lanczos
                                                   # (MNIST from --data-dir or $MCMC_LANDSCAPE_DATA, else synthetic
                                                   # MNIST-format images written under --out)

Prints the wall time of each stage, the counts (quenched, minima, saddles, not converged, distinct modulo symmetry,
Euclidean clusters), the saturation curve and, last, one JSON line. Everything is written under --out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from landscape_cli.census import run_census  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_census"))
    ap.add_argument("--chains", type=Path, help="use this chain file instead of sampling one")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", help="a zoo model (small-convnet): census of a short HMC run of it")
    ap.add_argument("--data-dir", type=Path, help="folder holding mnist/ (default: $MCMC_LANDSCAPE_DATA or synthetic)")
    ap.add_argument("--n-train", type=int, default=256)
    args = ap.parse_args()
    if args.model:
        zoo(args)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    chains = args.chains
    if chains is None:
        chains = args.out / "chains.h5"
        subprocess.run([sys.executable, "-m", "landscape_cli", "sample", "-q", "--out", str(chains), "--chains", "16",
                        "--draws", "625", "--thin", "20", "--force"], check=True)
    t_sample = time.perf_counter() - t0
    t1 = time.perf_counter()
    c = run_census(chains, args.out / "census", count=args.count, max_iter=args.max_iter, device=args.device,
                   force=True, quiet=False)
    t_census = time.perf_counter() - t1
    print(f"sampling {t_sample:.1f} s, census {t_census:.1f} s ({c['n_quenched']} draws)")
    print(f"quenched {c['n_quenched']}: {c['kinds']} (saddles by index {c['saddles']}, stalled {c['n_stalled']})")
    print(f"distinct minima modulo symmetry {c['n_distinct']}; θ-only {c['n_distinct_theta_only']}; "
          f"Euclidean clusters {c['n_distinct_euclidean']} ({c['n_distinct_euclidean'] / max(1, c['n_distinct']):.1f}x)")
    sat = c["saturation"]
    print("saturation: " + ", ".join(f"{k}: {v:.1f}" for k, v in zip(sat["quenched"], sat["distinct_mean"],
                                                                       strict=True)))
    print(json.dumps({"bench": "census", "sample_s": round(t_sample, 1), "census_s": round(t_census, 1),
                      "n_quenched": c["n_quenched"], "kinds": c["kinds"], "n_distinct": c["n_distinct"],
                      "n_distinct_theta_only": c["n_distinct_theta_only"],
                      "n_distinct_euclidean": c["n_distinct_euclidean"], "n_barriers": len(c["barriers"]),
                      "saturation": {"quenched": sat["quenched"], "distinct_mean": sat["distinct_mean"]}}))


def _synthetic_mnist(folder: Path, n: int) -> Path:
    """MNIST-format files of images whose class is which half is brighter (learnable, CPU-sized)."""
    import gzip
    import struct

    import numpy as np

    d = folder / "mnist"
    d.mkdir(parents=True, exist_ok=True)
    for split, size, seed in (("train", n, 0), ("t10k", 16, 1)):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, size=size)
        x = rng.integers(0, 100, size=(size, 28, 28))
        x[y == 1, :, :14] += 150
        x[y == 0, :, 14:] += 150
        for name, arr in ((f"{split}-images-idx3-ubyte.gz", x.astype(np.uint8)),
                          (f"{split}-labels-idx1-ubyte.gz", y.astype(np.uint8))):
            header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
            (d / name).write_bytes(gzip.compress(header + arr.tobytes()))
    return folder


def zoo(args: argparse.Namespace) -> None:
    """Sample a zoo model briefly (HMC), then its census; prints each stage's time and one JSON line."""
    import os

    from analysis.census_zoo import run_zoo_census

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.data_dir or (Path(os.environ["MCMC_LANDSCAPE_DATA"]) if os.environ.get("MCMC_LANDSCAPE_DATA") else
                             _synthetic_mnist(args.out / "data", args.n_train))
    chains = args.chains or args.out / f"{args.model}.h5"
    count = min(args.count, 64)
    t0 = time.perf_counter()
    if args.chains is None:
        subprocess.run([sys.executable, "-m", "landscape_cli", "sample", "-q", "--model", args.model, "--data",
                        "mnist", "--data-dir", str(data), "--n-train", str(args.n_train), "--sampler", "hmc",
                        "--chains", "8", "--draws", "4", "--warmup", "20", "--thin", "2", "--leapfrog", "4",
                        "--device", args.device, "--out", str(chains), "--force"], check=True)
    t_sample = time.perf_counter() - t0
    c = run_zoo_census(chains, args.out / "census_zoo", count=count, max_iter=min(args.max_iter, 300),
                       device=args.device)
    s = c["seconds"]
    print(f"{c['model']}: sampling {t_sample:.1f} s, census {s['total']:.1f} s (canonical starts "
          f"{s['starts']:.1f}, quench {s['quench']:.1f}, identity {s['identity']:.1f}, Lanczos kinds and SLQ log det "
          f"{s['kinds']:.1f}) on {c['settings']['device']}")
    print(f"quenched {c['n_quenched']}, converged {c['n_converged']}, distinct {c['n_distinct']}; kinds: "
          + ", ".join(m.get("kind", "-") for m in c["minima"][:4]))
    for m in c["minima"]:
        if "shape" in m:
            sh = m["shape"]
            print(f"  minimum {m['id']}: λ_top {sh['top']:.4g}, trace {sh['trace']:.4g}, log det (non-null, SLQ) "
                  f"{sh['logdet_nonnull']:.4g} ± {sh['logdet_stderr']:.2g} (sampling), change from half the steps "
                  f"{sh['logdet_quadrature_change']:+.2g}, over ~{sh['n_nonnull']:.0f} eigenvalues")
    print(json.dumps({"bench": "census-zoo", "model": c["model"], "sample_s": round(t_sample, 1),
                      "census_s": {k: round(v, 1) for k, v in s.items()}, "n_quenched": c["n_quenched"],
                      "n_converged": c["n_converged"], "n_distinct": c["n_distinct"],
                      "chao1": c["completeness"]["chao1"]["estimate"]}))


if __name__ == "__main__":
    main()
