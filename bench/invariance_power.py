"""How the invariance experiment's power depends on chains against draws per chain, at the sampler's cost.

Reads one reference run (e.g. `runs/rotation/angle_0/chains.h5` of `make run`), keeps the first C chains and the first
D draws of each, and measures the minimum detectable rotation (the smallest planted rotation of half the chains that
the function-space test detects in >= 80% of random halvings) and the power at each angle. The sampler's cost of a
run is C x (warm-up + D x thin) steps a rung, so rows with equal C x D compare more chains against longer chains at
about the same cost.

    python bench/invariance_power.py runs/rotation/angle_0/chains.h5 --chains 8,16,32 --draws 250,500,1000,2000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the project, not bench/ (bench/analysis.py would shadow it)
import numpy as np  # noqa: E402

from analysis.invariance import probe_points, rotation_power  # noqa: E402
from mcmc_landscape.models.nets import MLPSpec  # noqa: E402
from mcmc_landscape.storage.store import ChainReader  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", type=Path, help="a reference chain file ([2,2]-style MLP on 2-D data)")
    ap.add_argument("--chains", default="8,16,32")
    ap.add_argument("--draws", default="250,500,1000,2000")
    ap.add_argument("--angles", default="0,5,10,15,30,45,90")
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=0.01 / 8, help="level (default: α = 0.01 over 8 Holm-adjusted tests)")
    args = ap.parse_args()
    with ChainReader(args.file) as r:
        theta, x, cfg = r.get_chain(), r.extra("data/x"), r.config
    widths = cfg["widths"]
    spec = MLPSpec.from_widths(widths, cfg.get("activation", "relu"))
    probes = probe_points(x)
    angles = tuple(float(a) for a in args.angles.split(","))
    rows = []
    print(f"{args.file}: {theta.shape[0]} chains x {theta.shape[1]} draws; level {args.alpha:.4g}")
    print(f"{'chains':>6} {'draws':>6} {'cost':>8} {'MDR':>6}  power at " + " ".join(f"{a:g}°" for a in angles))
    for c in (int(v) for v in args.chains.split(",")):
        for d in (int(v) for v in args.draws.split(",")):
            if c > theta.shape[0] or d > theta.shape[1]:
                continue
            sub = theta[:c, :d].reshape(-1, theta.shape[2])
            units = np.repeat(np.arange(c), d)
            t = time.perf_counter()
            res = rotation_power(sub, units, spec, probes, angles, args.splits, args.alpha, 1000, 2000)
            cost = c * (cfg.get("warmup", 0) + d * cfg.get("thin", 1))
            mdr = res["min_detectable_deg"]
            mdr_text = f"{mdr:g}°" if mdr is not None else "none"
            print(f"{c:>6} {d:>6} {cost:>8.2e} {mdr_text:>6}  "
                  + " ".join(f"{p:.2f}" for p in res["power"]) + f"   ({time.perf_counter() - t:.1f} s)")
            rows.append({"chains": c, "draws": d, "cost_steps": cost, "min_detectable_deg": mdr,
                         "power": res["power"], "null_rejection_rate": res["null_rejection_rate"]})
    print(json.dumps({"bench": "invariance_power", "file": str(args.file), "alpha": args.alpha,
                      "angles": list(angles), "rows": rows}))


if __name__ == "__main__":
    main()
