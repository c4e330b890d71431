"""Our batched HMC against Pyro's HMC and NUTS (also PyTorch) and our random walk, on the report's [2,2] target,
and gradient evaluations per second as the number of chains grows. One run; a table, then a last line of JSON.

Usage: python bench/hmc.py [--device auto|cpu|cuda] [--quick]
ESS is ArviZ's bulk ESS of U (chains = our chains; Pyro runs one chain). Gradient evaluations are counted where the
energy is called, so Pyro's NUTS is charged for every step of its trees.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from mcmc_landscape.data import load_dataset
from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.energy import mlp_energy_and_grad_torch, mlp_energy_model, mlp_energy_torch
from mcmc_landscape.nets import MLPSpec
from mcmc_landscape.samplers import hmc, rw

L, T = 10.0, 1.0


def ess_u(energy: np.ndarray) -> float:
    return float(summary_arrays(energy[..., None], energy)["U"]["ess_bulk"])


class Counted:
    """The [2,2] energy on a device, counting the θ rows it is evaluated at."""

    def __init__(self, device, dtype):
        ds = load_dataset("points10")
        self.spec = MLPSpec.from_string("2,2")
        self.x = torch.tensor(ds.x, dtype=dtype, device=device)
        self.y = torch.tensor(ds.y, device=device)
        self.calls = 0

    def __call__(self, theta):
        self.calls += theta.shape[0]
        return mlp_energy_torch(theta, self.spec, self.x, self.y)

    def with_grad(self, theta):
        """U and ∇U by the hand-written backward pass, as `landscape sample --sampler hmc` uses."""
        self.calls += theta.shape[0]
        return mlp_energy_and_grad_torch(theta, self.spec, self.x, self.y)


def run_ours(chains, warmup, draws, n_leapfrog, device, seed=0):
    f = Counted(device, torch.float64)
    s = hmc.HMCSettings(temperature=T, box=L, warmup=warmup, n_leapfrog=n_leapfrog)
    t0 = time.perf_counter()
    state = hmc.init(f, chains, 18, seed, s, device=device, grad_fn=f.with_grad)
    state, theta, energy, acc = hmc.run_block(f, state, draws, s, grad_fn=f.with_grad)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"seconds": dt, "grads": f.calls, "ess_u": ess_u(energy), "acceptance": float(acc.mean())}


def run_pyro(kind, warmup, draws, n_leapfrog, seed=0):
    import pyro
    import pyro.distributions as dist
    from pyro.infer import HMC, MCMC, NUTS

    f = Counted(torch.device("cpu"), torch.float64)

    def model():
        theta = pyro.sample("theta", dist.Uniform(torch.full((18,), -L, dtype=torch.float64),
                                                  torch.full((18,), L, dtype=torch.float64)).to_event(1))
        pyro.factor("U", -f(theta[None])[0] / T)

    pyro.set_rng_seed(seed)
    # Pyro's HMC keeps the trajectory length (step × steps) fixed while it adapts the step, so the initial step sets
    # the length: 0.01 × 16 ≈ 16 steps at the step size both samplers settle on for this target (about 0.01).
    kernel = HMC(model, step_size=0.01, num_steps=n_leapfrog, target_accept_prob=0.8, adapt_mass_matrix=True) \
        if kind == "hmc" else NUTS(model, target_accept_prob=0.8, max_tree_depth=8)
    mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, num_chains=1, disable_progbar=True)
    t0 = time.perf_counter()
    mcmc.run()
    dt = time.perf_counter() - t0
    theta = mcmc.get_samples()["theta"]
    energy = f.__class__(torch.device("cpu"), torch.float64)(theta).numpy()  # U of the kept draws, not counted
    return {"seconds": dt, "grads": f.calls, "ess_u": ess_u(energy[None, :]), "acceptance": float("nan")}


def run_rw(chains, evals, seed=0):
    ds = load_dataset("points10")
    model = mlp_energy_model(MLPSpec.from_string("2,2"), ds)
    steps = evals // chains
    s = rw.RWSettings(temperature=T, box=L, warmup=steps // 5)
    state = rw.init(model, chains, seed, s)
    t0 = time.perf_counter()
    state, theta, energy, info = rw.run_block(model, state, steps - steps // 5, s)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "grads": chains * steps, "ess_u": ess_u(energy), "acceptance": float(info.accepted.mean())}


def grad_throughput(chains, device, dtype, iters):
    f = Counted(device, dtype)
    s = hmc.HMCSettings(temperature=T, box=L, warmup=0, n_leapfrog=16, thin=iters)
    state = hmc.init(f, chains, 18, 0, s, device=device, dtype=dtype, grad_fn=f.with_grad)
    hmc.run_block(f, state, 1, hmc.HMCSettings(temperature=T, box=L, warmup=0, n_leapfrog=2),
                  grad_fn=f.with_grad)  # warm caches
    f.calls = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    hmc.run_block(f, state, 1, s, grad_fn=f.with_grad)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return f.calls / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    ap.add_argument("--chains", type=int, default=1024, help="chains for our HMC and random walk")
    args = ap.parse_args()
    device = hmc.resolve_device(args.device)
    warm, draws, nlf = (100, 200, 16) if args.quick else (300, 1000, 16)
    torch.manual_seed(0)

    rows = {
        "ours_hmc": run_ours(args.chains, warm, draws, nlf, torch.device("cpu")),
        "pyro_hmc": run_pyro("hmc", warm, draws, nlf),
        "pyro_nuts": run_pyro("nuts", warm, draws // 2, nlf),
    }
    rows["ours_rw"] = run_rw(args.chains, rows["ours_hmc"]["grads"])
    print(f"[2,2] classifier, points10, T={T}, L={L}, float64 on CPU, {torch.get_num_threads()} torch threads")
    print(f"{'sampler':<26}{'seconds':>9}{'grad evals':>13}{'ESS(U)':>9}{'ESS/s':>10}{'ESS/1k grads':>14}")
    for name, r in rows.items():
        r["ess_per_s"] = r["ess_u"] / r["seconds"]
        r["ess_per_kgrad"] = 1000 * r["ess_u"] / r["grads"]
        label = {"ours_hmc": f"ours HMC, {args.chains} chains", "pyro_hmc": "Pyro HMC, 1 chain",
                 "pyro_nuts": "Pyro NUTS, 1 chain", "ours_rw": f"ours RW, {args.chains} ch (evals)"}[name]
        print(f"{label:<26}{r['seconds']:>9.1f}{r['grads']:>13,}{r['ess_u']:>9.0f}{r['ess_per_s']:>10.2f}"
              f"{r['ess_per_kgrad']:>14.3f}")

    counts = [1, 64, 1024, 16384, 262144] if not args.quick else [1, 64, 1024]
    thr_cpu = {}
    for c in counts:
        iters = max(2, min(50, int(2e6 / (c * 16))))
        thr_cpu[str(c)] = statistics.median(grad_throughput(c, torch.device("cpu"), torch.float32, iters)
                                            for _ in range(3 if c < 16384 else 1))
    thr_gpu = {}
    if device.type == "cuda":
        for c in [*counts, 1048576]:
            thr_gpu[str(c)] = statistics.median(grad_throughput(c, device, torch.float32, 20) for _ in range(3))
    print("gradient evaluations per second (float32, 16 leapfrog steps per iteration):")
    for c in counts:
        gpu = f"{thr_gpu[str(c)]:>16,.0f}" if thr_gpu else ""
        print(f"  {c:>8} chains  cpu {thr_cpu[str(c)]:>14,.0f}  {('gpu ' + gpu) if gpu else ''}")
    if thr_gpu:
        print(f"  {1048576:>8} chains  gpu {thr_gpu['1048576']:>14,.0f}  ({torch.cuda.get_device_name()})")
    summary = {
        "ess_per_s_ratio_vs_pyro": rows["ours_hmc"]["ess_per_s"] / rows["pyro_hmc"]["ess_per_s"],
        "ess_per_s_ratio_vs_pyro_nuts": rows["ours_hmc"]["ess_per_s"] / rows["pyro_nuts"]["ess_per_s"],
        "ess_per_grad_ratio_vs_rw": rows["ours_hmc"]["ess_per_kgrad"] / rows["ours_rw"]["ess_per_kgrad"],
        "grad_evals_per_s": {"cpu": thr_cpu, **({"cuda": thr_gpu} if thr_gpu else {})},
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "rows": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
