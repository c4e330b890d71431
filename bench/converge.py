"""Which sampling reaches `diagnose`'s "converged" on the rotation experiment's target, and at what cost.

Target: the [2,2] relu classifier on points10 (p = 18), exp(-U) on [-10, 10]^18. For each preset (or a JSON config
given with --config), sample one run, then diagnose it twice: on the raw coordinates, and modulo the network's
symmetries (U and the canonical coordinates: what the analysis uses). Prints one line per preset and ends with one
JSON line. Usage: ``python bench/converge.py [--presets rw_default,pt_default] [--config '{...}'] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRESETS = {
    "rw_default": {"sampler": "rw", "chains": 32, "draws": 10000, "warmup": 100000, "thin": 100},
    "rw_thin1000": {"sampler": "rw", "chains": 32, "draws": 10000, "warmup": 100000, "thin": 1000},
    "hmc_128": {"sampler": "hmc", "chains": 128, "draws": 2000, "warmup": 1000, "thin": 1},
    "pt_8x20_thin20": {"sampler": "pt", "chains": 32, "temps": 8, "t_max": 20.0, "draws": 4000, "warmup": 5000,
                       "thin": 20},
    "pt_5x20_thin100": {"sampler": "pt", "chains": 32, "temps": 5, "t_max": 20.0, "draws": 4000, "warmup": 20000,
                        "thin": 100},
    "pt_8x200_thin50": {"sampler": "pt", "chains": 32, "temps": 8, "t_max": 200.0, "draws": 4000, "warmup": 20000,
                        "thin": 50},
    "pt_5x20_64chains": {"sampler": "pt", "chains": 64, "temps": 5, "t_max": 20.0, "draws": 2000, "warmup": 20000,
                         "thin": 100},
    "pt_5x20_thin250": {"sampler": "pt", "chains": 32, "temps": 5, "t_max": 20.0, "draws": 4000, "warmup": 20000,
                        "thin": 250},
    "pt_16chains_thin500": {"sampler": "pt", "chains": 16, "temps": 5, "t_max": 20.0, "draws": 4000, "warmup": 20000,
                            "thin": 500},
}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(name: str, cfg: dict, folder: Path) -> dict:
    from mcmc_landscape.diagnostics import diagnose
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.models.symmetry import canonicalize
    from mcmc_landscape.runs.sampling import start_run
    from mcmc_landscape.storage.store import ChainReader

    path = folder / f"{name}.h5"
    t, c = time.perf_counter(), cpu_seconds()
    start_run({**cfg, "seed": cfg.get("seed", 0)}, path, "chains", force=True, device="cpu").run(quiet=True)
    wall, cpu = time.perf_counter() - t, cpu_seconds() - c
    with ChainReader(path) as r:
        th, u, acc = r.get_chain(), r.get_energy(), r.get("accepted")
    C, D, p = th.shape
    raw = diagnose(th, u, acc)
    can = diagnose(canonicalize(th.reshape(-1, p), MLPSpec.from_string("2,2")).reshape(C, D, p), u, acc)
    evals = C * (cfg["warmup"] + D * cfg["thin"]) * cfg.get("temps", 1) * (16 if cfg["sampler"] == "hmc" else 1)
    out = {"preset": name, "config": cfg, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "evals": evals,
           "raw_converged": raw.converged, "converged_modulo_symmetry": can.converged,
           "max_rhat": round(max(can.energy["rhat"], can.theta_max_rhat), 4),
           "min_ess": round(min(can.energy["ess_bulk"], can.energy["ess_tail"], can.theta_min_ess_bulk,
                                can.theta_min_ess_tail)),
           "normality_rejected": can.normality_rejected, "verdict": can.verdict()}
    print(f"{name}: {wall:.0f} s wall, {cpu:.0f} s CPU, {evals / 1e6:.0f} M evals; raw: "
          f"{'converged' if raw.converged else 'not converged'}; modulo symmetry: {can.verdict()}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="rw_default,pt_16chains_thin500")
    ap.add_argument("--config", help="one more run: a JSON config for landscape sample's settings")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="converge-"))
    folder.mkdir(parents=True, exist_ok=True)
    runs = [(n, PRESETS[n]) for n in args.presets.split(",") if n]
    if args.config:
        runs.append(("custom", json.loads(args.config)))
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    results = [measure(n, c, folder) for n, c in runs]
    print(json.dumps({"load_average_end": round(os.getloadavg()[0], 1), "runs": results}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
