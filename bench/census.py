"""Census benchmark: every local minimum of the [2,2] ReLU classifier on the report's 10 points, from 10,000 draws.

    python bench/census.py                         # sample 16 × 625 draws (thin 20), then the census of all 10,000
    python bench/census.py --count 2000            # quicker
    python bench/census.py --chains FILE           # census of an existing chain file

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
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
