"""Our Numba random walk against emcee's EnsembleSampler (vectorized log-probability: emcee at its best), and
``--sampler emcee`` (emcee's stretch move as our kernel runs it over the Numba energy), on the
report's [2,2] classifier target, with the same number of energy evaluations, in one run.

Prints a table, then a last line of JSON. Usage: python bench/rw_vs_emcee.py [--evals N] [--repeats R]
ESS is ArviZ's rank-normalized bulk ESS, chains = our chains or emcee's walkers, after the same burn-in share.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import emcee
import numba
import numpy as np

from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.models.energy import mlp_energy_model
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import ensemble, rw

L, T = 10.0, 1.0


def numpy_energy(theta: np.ndarray, spec: MLPSpec, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """U for a batch of θ (walkers, p) in plain vectorized NumPy: the best emcee can be given."""
    h = np.broadcast_to(x, (theta.shape[0], *x.shape))
    layers = spec.unflatten(theta)
    for i, (W, b) in enumerate(layers):
        h = np.matmul(h, W) + b[:, None, :]
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    d = h[..., 1] - h[..., 0]
    d = np.where(y[None, :] == 1, -d, d)
    return np.sum(np.maximum(d, 0.0) + np.log1p(np.exp(-np.abs(d))), axis=1)


def ess(theta: np.ndarray, energy: np.ndarray) -> tuple[float, float]:
    s = summary_arrays(theta, energy)
    return float(s["U"]["ess_bulk"]), float(np.min(s["theta"]["ess_bulk"]))


def run_ours(model, chains: int, steps: int, burn: int, seed: int) -> dict:
    settings = rw.RWSettings(temperature=T, box=L, warmup=burn)
    state = rw.init(model, chains, seed, settings)
    t0 = time.perf_counter()
    state, theta, energy, _ = rw.run_block(model, state, steps - burn, settings)
    dt = time.perf_counter() - t0
    e_u, e_min = ess(theta, energy)
    return {"seconds": dt, "evals": chains * steps, "ess_u": e_u, "ess_min": e_min,
            "acceptance": float(state.n_accepted.mean() / (steps - burn))}


def run_emcee(spec, ds, walkers: int, steps: int, burn: int, seed: int) -> dict:
    x, y = ds.x, ds.y

    def log_prob(theta):
        lp = -numpy_energy(theta, spec, x, y) / T
        return np.where(np.all(np.abs(theta) <= L, axis=1), lp, -np.inf)

    rng = np.random.default_rng(seed)
    p0 = rng.uniform(-L, L, size=(walkers, spec.n_params))
    sampler = emcee.EnsembleSampler(walkers, spec.n_params, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(seed).get_state()
    t0 = time.perf_counter()
    sampler.run_mcmc(p0, steps, progress=False)
    dt = time.perf_counter() - t0
    theta = np.swapaxes(sampler.get_chain(discard=burn), 0, 1)
    energy = -np.swapaxes(sampler.get_log_prob(discard=burn), 0, 1) * T
    e_u, e_min = ess(theta, energy)
    return {"seconds": dt, "evals": walkers * steps, "ess_u": e_u, "ess_min": e_min,
            "acceptance": float(np.mean(sampler.acceptance_fraction))}


def run_sampler_emcee(model, walkers: int, steps: int, burn: int, seed: int) -> dict:
    """emcee's stretch move as ``landscape sample --sampler emcee`` runs it: the ensemble kernel over the Numba
    energy, through the same kernel interface the runner drives."""
    kernel = ensemble.EnsembleKernel(model, ensemble.EnsembleSettings(temperature=T, box=L, warmup=burn))
    state = kernel.init(walkers, seed)
    t0 = time.perf_counter()
    state, theta, energy, accepted = kernel.run_block(state, steps - burn)
    dt = time.perf_counter() - t0
    e_u, e_min = ess(theta, energy)
    return {"seconds": dt, "evals": walkers * steps, "ess_u": e_u, "ess_min": e_min,
            "acceptance": float(np.mean(accepted))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evals", type=int, default=3_200_000, help="energy evaluations per sampler and repeat")
    ap.add_argument("--chains", type=int, default=64, help="our chains (default: as many as emcee's walkers)")
    ap.add_argument("--walkers", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    ds = load_dataset("points10")
    spec = MLPSpec.from_string("2,2")
    model = mlp_energy_model(spec, ds)
    th = np.random.default_rng(0).uniform(-L, L, (64, spec.n_params))
    assert np.allclose(numpy_energy(th, spec, ds.x, ds.y), model.energy(th), atol=1e-9)  # one target

    rw.run_block(model, rw.init(model, 2, 0, rw.RWSettings(warmup=10)), 10, rw.RWSettings(warmup=10))  # warm JIT
    ours_steps = args.evals // args.chains
    emcee_steps = args.evals // args.walkers
    rows = {"ours": [], "emcee": [], "sampler_emcee": []}
    for r in range(args.repeats):
        rows["ours"].append(run_ours(model, args.chains, ours_steps, ours_steps // 5, seed=r))
        rows["emcee"].append(run_emcee(spec, ds, args.walkers, emcee_steps, emcee_steps // 5, seed=r))
        rows["sampler_emcee"].append(run_sampler_emcee(model, args.walkers, emcee_steps, emcee_steps // 5, seed=r))

    def med(name, key):
        return statistics.median(row[key] for row in rows[name])

    res = {}
    for name in rows:
        res[name] = {
            "evals_per_s": med(name, "evals") / med(name, "seconds"),
            "ess_u_per_s": statistics.median(r["ess_u"] / r["seconds"] for r in rows[name]),
            "ess_min_per_s": statistics.median(r["ess_min"] / r["seconds"] for r in rows[name]),
            "ess_u": med(name, "ess_u"), "ess_min": med(name, "ess_min"), "seconds": med(name, "seconds"),
            "acceptance": med(name, "acceptance"),
        }
    # Throughput with many chains (our sampler's natural regime), same evaluations.
    wide = [run_ours(model, 256, args.evals // 256, args.evals // 256 // 5, seed=r) for r in range(args.repeats)]
    wide_evals = statistics.median(w["evals"] / w["seconds"] for w in wide)

    print(f"[2,2] classifier on points10, T={T}, L={L}; {args.evals:,} energy evaluations each; median of "
          f"{args.repeats}; {numba.get_num_threads()} threads; {platform.processor() or platform.machine()}")
    print(f"{'sampler':<22}{'evals/s':>14}{'ESS(U)/s':>12}{'ESS(min θ)/s':>14}{'ESS(U)':>9}{'accept':>8}")
    for name, label in (("ours", f"ours rw, {args.chains} chains"), ("emcee", f"emcee, {args.walkers} walkers"),
                        ("sampler_emcee", f"--sampler emcee, {args.walkers}")):
        r = res[name]
        print(f"{label:<22}{r['evals_per_s']:>14,.0f}{r['ess_u_per_s']:>12,.1f}{r['ess_min_per_s']:>14,.2f}"
              f"{r['ess_u']:>9,.0f}{r['acceptance']:>8.3f}")
    print(f"{'ours rw, 256 chains':<22}{wide_evals:>14,.0f}")
    summary = {
        "ours_evals_per_s": res["ours"]["evals_per_s"],
        "ours_evals_per_s_256_chains": wide_evals,
        "emcee_evals_per_s": res["emcee"]["evals_per_s"],
        "sampler_emcee_evals_per_s": res["sampler_emcee"]["evals_per_s"],
        "sampler_emcee_ess_per_s": res["sampler_emcee"]["ess_u_per_s"],
        "evals_ratio": res["ours"]["evals_per_s"] / res["emcee"]["evals_per_s"],
        "ess_per_s_ratio": res["ours"]["ess_u_per_s"] / res["emcee"]["ess_u_per_s"],
        "ess_min_per_s_ratio": res["ours"]["ess_min_per_s"] / res["emcee"]["ess_min_per_s"],
        "evals": args.evals, "chains": args.chains, "walkers": args.walkers, "repeats": args.repeats,
        "threads": numba.get_num_threads(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
