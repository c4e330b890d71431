"""Per-chain ESS of U per gradient of our HMC on the [2,2] target for several trajectories, without the canonical ESS
(fast): the figures behind "the cheapest trajectory wins" in bench/RESULTS.md (ChEES).

Usage: SEED=0 python bench/hmc_length_sweep.py CHAINS SPEC [SPEC ...]
SPEC is the number of leapfrog steps, then settings as key=value after colons, e.g. ``2``, ``16:jitter=1``,
``16:trajectory=chees:chees_criterion=spread``. 300 warm-up + 500 draws; one JSON line per SPEC.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import hmc as bench  # noqa: E402

from mcmc_landscape.samplers import hmc  # noqa: E402


def run(chains: int, warm: int, draws: int, nlf: int, seed: int, **kw) -> dict:
    f = bench.Counted(torch.device("cpu"), torch.float64)
    s = hmc.HMCSettings(temperature=bench.T, box=bench.L, warmup=warm, n_leapfrog=nlf, **kw)
    t0 = time.perf_counter()
    st = hmc.init(f, chains, 18, seed, s, grad_fn=f.with_grad)
    st, _, e, acc = hmc.run_block(f, st, draws, s, grad_fn=f.with_grad, trajectory_fn=f.trajectory_fn)
    ess_chains = bench.ess_u_per_chain(e)
    return {"nlf": nlf, **kw, "seconds": round(time.perf_counter() - t0, 1), "grads": f.calls,
            "acceptance": round(float(acc.mean()), 3), "step": round(float(st.log_step.exp().median()), 4),
            "steps": round(f.calls / chains / (warm + draws), 2),
            "length": round(float(np.exp(st.chees_log_length_ma)), 4) if kw.get("trajectory") == "chees" else None,
            "ess_u": round(bench.ess_u(e)), "ess_u_chains": round(ess_chains),
            "per_kgrad": round(1000 * ess_chains / f.calls, 3)}


def parse(spec: str) -> tuple[int, dict]:
    nlf, *rest = spec.split(":")
    kw = {}
    for item in rest:
        k, v = item.split("=")
        kw[k] = v if k in ("trajectory", "chees_criterion") else v == "1" if k in ("jitter", "chees_rate") else float(v)
    return int(nlf), kw


if __name__ == "__main__":
    n_chains, seed_ = int(sys.argv[1]), int(os.environ.get("SEED", 0))
    for spec_ in sys.argv[2:]:
        n, kw_ = parse(spec_)
        print(json.dumps(run(n_chains, 300, 500, n, seed_, **kw_)), flush=True)
