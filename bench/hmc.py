"""Our batched HMC against Pyro's HMC and NUTS (also PyTorch) and our random walk, on the report's [2,2] target,
and gradient evaluations per second as the number of chains grows. One run; a table, then a last line of JSON.

Usage: python bench/hmc.py [--device auto|cpu|cuda] [--quick] [--chains N] [--pyro-chains K]
       python bench/hmc.py --model mnist-convnet [--width W] [--model-chains C] [--n-train N] [--dtype float32]
With ``--model``: the zoo energy the sampler uses (U and ∇U of C chains × N images through torch.func, in chunks)
against a plain PyTorch forward+backward of the same model over the same images, one chain after another, side by
side; prints both rates and their ratio, checks the two agree, and ends with a JSON line holding ``ratio``.
ESS is ArviZ's bulk ESS of U, read two ways: over all of a sampler's chains together ("all"; chains stuck at different
levels of U lower it) and as the sum of each chain's own ESS ("chains"; how a single chain is judged). Pyro runs K
chains one after another (its multi-chain mode forks processes). Gradient evaluations are counted where the energy is
called, so Pyro's NUTS is charged for every step of its trees.
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
from mcmc_landscape.energy import (
    mlp_energy_and_grad_torch,
    mlp_energy_model,
    mlp_energy_torch,
    mlp_torch_energy_grad_fn,
    mlp_torch_trajectory_fn,
)
from mcmc_landscape.nets import MLPSpec
from mcmc_landscape.samplers import hmc, rw

L, T = 10.0, 1.0


def ess_u(energy: np.ndarray) -> float:
    """ArviZ's bulk ESS of U over all chains together (rank-normalized: chains that sit at different levels of U
    lower it, so a non-mixing landscape is charged for it)."""
    return float(summary_arrays(energy[..., None], energy)["U"]["ess_bulk"])


def ess_u_per_chain(energy: np.ndarray) -> float:
    """The sum over chains of each chain's own bulk ESS of U: how a single chain is judged, applied to every chain."""
    return float(sum(ess_u(energy[c : c + 1]) for c in range(energy.shape[0])))


class Counted:
    """The [2,2] energy on a device, counting the θ rows it is evaluated at."""

    def __init__(self, device, dtype):
        ds = load_dataset("points10")
        self.spec = MLPSpec.from_string("2,2")
        self.x = torch.tensor(ds.x, dtype=dtype, device=device)
        self.y = torch.tensor(ds.y, device=device)
        self.calls = 0
        self.grad = mlp_torch_energy_grad_fn(self.spec, ds, device, dtype)
        self.traj = mlp_torch_trajectory_fn(self.spec, ds, device)

    def __call__(self, theta):
        self.calls += theta.shape[0]
        return mlp_energy_torch(theta, self.spec, self.x, self.y)

    def with_grad(self, theta):
        """U and ∇U as `landscape sample --sampler hmc` computes them (Numba on the CPU, written-out torch backward
        elsewhere)."""
        self.calls += theta.shape[0]
        return self.grad(theta)

    def trajectory(self, pos, r, g, drift, kick, n_lf, box):
        """The fused CPU trajectory the CLI uses (None off the CPU): n_lf gradients per chain."""
        self.calls += pos.shape[0] * n_lf
        return self.traj(pos, r, g, drift, kick, n_lf, box)

    def with_torch_grad(self, theta):
        """U and ∇U by the batched torch pass with the written-out backward (what a GPU runs), here on the CPU."""
        self.calls += theta.shape[0]
        return mlp_energy_and_grad_torch(theta, self.spec, self.x, self.y)


def run_ours(chains, warmup, draws, n_leapfrog, device, seed=0, torch_grad=False):
    f = Counted(device, torch.float64)
    grad = f.with_torch_grad if torch_grad else f.with_grad
    traj = f.trajectory if f.traj is not None and not torch_grad else None
    s = hmc.HMCSettings(temperature=T, box=L, warmup=warmup, n_leapfrog=n_leapfrog)
    t0 = time.perf_counter()
    state = hmc.init(f, chains, 18, seed, s, device=device, grad_fn=grad)
    state, theta, energy, acc = hmc.run_block(f, state, draws, s, grad_fn=grad, trajectory_fn=traj)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"seconds": dt, "grads": f.calls, "ess_u": ess_u(energy), "ess_u_chains": ess_u_per_chain(energy),
            "acceptance": float(acc.mean())}


def run_pyro(kind, warmup, draws, n_leapfrog, chains=1):
    """Pyro's HMC or NUTS, one chain per seed run one after another (Pyro's own multi-chain mode forks processes)."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import HMC, MCMC, NUTS

    f = Counted(torch.device("cpu"), torch.float64)

    def model():
        theta = pyro.sample("theta", dist.Uniform(torch.full((18,), -L, dtype=torch.float64),
                                                  torch.full((18,), L, dtype=torch.float64)).to_event(1))
        pyro.factor("U", -f(theta[None])[0] / T)

    energies, seconds = [], 0.0
    for seed in range(chains):
        pyro.set_rng_seed(seed)
        # Pyro's HMC keeps the trajectory length (step × steps) fixed while it adapts the step, so the initial step
        # sets the length: 0.01 × 16 ≈ 16 steps at the step size both samplers settle on for this target (~0.01).
        kernel = HMC(model, step_size=0.01, num_steps=n_leapfrog, target_accept_prob=0.8, adapt_mass_matrix=True) \
            if kind == "hmc" else NUTS(model, target_accept_prob=0.8, max_tree_depth=8)
        mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, num_chains=1, disable_progbar=True)
        t0 = time.perf_counter()
        mcmc.run()
        seconds += time.perf_counter() - t0
        theta = mcmc.get_samples()["theta"]
        energies.append(Counted(torch.device("cpu"), torch.float64)(theta).numpy())  # U of the draws, not counted
    energy = np.stack(energies)
    return {"seconds": seconds, "grads": f.calls, "ess_u": ess_u(energy), "ess_u_chains": ess_u_per_chain(energy),
            "acceptance": float("nan")}


def run_rw(chains, evals, seed=0):
    ds = load_dataset("points10")
    model = mlp_energy_model(MLPSpec.from_string("2,2"), ds)
    steps = evals // chains
    s = rw.RWSettings(temperature=T, box=L, warmup=steps // 5)
    state = rw.init(model, chains, seed, s)
    t0 = time.perf_counter()
    state, theta, energy, info = rw.run_block(model, state, steps - steps // 5, s)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "grads": chains * steps, "ess_u": ess_u(energy), "ess_u_chains": ess_u_per_chain(energy),
            "acceptance": float(info.accepted.mean())}


def grad_throughput(chains, device, dtype, iters):
    f = Counted(device, dtype)
    s = hmc.HMCSettings(temperature=T, box=L, warmup=0, n_leapfrog=16, thin=iters)
    state = hmc.init(f, chains, 18, 0, s, device=device, dtype=dtype, grad_fn=f.with_grad)
    traj = f.trajectory if f.traj is not None else None
    hmc.run_block(f, state, 1, hmc.HMCSettings(temperature=T, box=L, warmup=0, n_leapfrog=2),
                  grad_fn=f.with_grad, trajectory_fn=traj)  # warm caches
    f.calls = 0
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    hmc.run_block(f, state, 1, s, grad_fn=f.with_grad, trajectory_fn=traj)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return f.calls / (time.perf_counter() - t0)


def plain_energy_and_grad(module, theta, x, y):
    """Plain PyTorch: load each chain's θ into the module, forward over all images, backward; one chain at a time."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    us, gs = [], []
    for t in theta:
        vector_to_parameters(t, module.parameters())
        module.zero_grad(set_to_none=True)
        u = torch.nn.functional.cross_entropy(module(x), y, reduction="sum")
        u.backward()
        us.append(u.detach())
        gs.append(parameters_to_vector(q.grad for q in module.parameters()))
    return torch.stack(us), torch.stack(gs)


def timed(fn, device, repeats):
    """Median seconds of ``repeats`` calls (after one warm-up call) and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def model_throughput(args) -> None:
    """Our zoo energy+gradient (as `landscape sample --model` runs it) against plain PyTorch, same images and model."""
    from mcmc_landscape.zoo import FlatLayout, build_model, module_energy
    from mcmc_landscape.zoo_sampling import default_chunks

    device = hmc.resolve_device(args.device)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    torch.manual_seed(0)
    module = build_model(args.model, width=args.width).to(device=device, dtype=dtype)
    layout = FlatLayout.of(module)
    # image values do not change the cost: standard-normal images of MNIST's shape, random labels
    x = torch.randn(args.n_train, 1, 28, 28, device=device, dtype=dtype)
    y = torch.randint(0, 10, (args.n_train,), device=device)
    theta = layout.init(args.model_chains, torch.Generator().manual_seed(1), dtype=dtype).to(device)
    cc, ec = default_chunks(args.model_chains, args.n_train)
    ours = module_energy(module, x, y, "sum", args.chain_chunk or cc, args.example_chunk or ec)
    t_ours, (u1, g1) = timed(lambda: ours.energy_and_grad(theta), device, args.repeats)
    t_plain, (u2, g2) = timed(lambda: plain_energy_and_grad(module, theta, x, y), device, args.repeats)
    with torch.no_grad():
        t_ours_u, _ = timed(lambda: ours(theta), device, args.repeats)
        t_plain_u, _ = timed(lambda: torch.stack([torch.nn.functional.cross_entropy(
            torch.func.functional_call(module, layout.unflatten(t), (x,)), y, reduction="sum") for t in theta]),
            device, args.repeats)
    pairs = args.model_chains * args.n_train
    rel_u = float(((u1 - u2).abs() / u2.abs()).max())
    rel_g = float((g1 - g2).norm() / g2.norm())
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} torch threads"
    print(f"{args.model} width {args.width} (p = {layout.p:,}), {args.model_chains} chains × {args.n_train} images, "
          f"{args.dtype}, {name}; chunks of {ours.chain_chunk} chains × {ours.example_chunk} images; median of "
          f"{args.repeats}")
    print(f"{'':<34}{'seconds':>9}{'chain·images/s':>16}")
    rows = {"ours U+grad (torch.func, chunked)": t_ours, "plain forward+backward, per chain": t_plain,
            "ours U only": t_ours_u, "plain forward only, per chain": t_plain_u}
    for label, t in rows.items():
        print(f"{label:<34}{t:>9.3f}{pairs / t:>16,.0f}")
    ratio = t_ours / t_plain
    print(f"ours / plain time, U+grad: {ratio:.2f} (target ≤ 2); U only: {t_ours_u / t_plain_u:.2f}; agreement: "
          f"max relative |ΔU| {rel_u:.1e}, relative ‖Δ∇U‖ {rel_g:.1e}")
    print(json.dumps({"model": args.model, "width": args.width, "p": layout.p, "chains": args.model_chains,
                      "n_train": args.n_train, "dtype": args.dtype, "device": name,
                      "ours_grad_pairs_per_s": pairs / t_ours, "plain_grad_pairs_per_s": pairs / t_plain,
                      "ratio": ratio, "ratio_energy_only": t_ours_u / t_plain_u, "rel_u": rel_u, "rel_grad": rel_g}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--quick", action="store_true", help="smaller runs, for a smoke test")
    ap.add_argument("--chains", type=int, default=1024, help="chains for our HMC and random walk")
    ap.add_argument("--pyro-chains", type=int, default=4, help="Pyro HMC chains (seeds), run one after another")
    m = ap.add_argument_group("a zoo model's energy against plain PyTorch (--model)")
    m.add_argument("--model", choices=["mnist-convnet"], help="time this model's energy and gradient instead")
    m.add_argument("--width", type=float, default=0.25, help="model width (default 0.25: p = 206,954)")
    m.add_argument("--model-chains", type=int, default=16, help="chains (default 16)")
    m.add_argument("--n-train", type=int, default=256, help="images (default 256)")
    m.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    m.add_argument("--chain-chunk", type=int, help="as landscape sample's --chain-chunk (default as there)")
    m.add_argument("--example-chunk", type=int, help="as landscape sample's --example-chunk (default as there)")
    m.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.model:
        model_throughput(args)
        return
    device = hmc.resolve_device(args.device)
    warm, draws, nlf = (100, 200, 16) if args.quick else (300, 1000, 16)
    torch.manual_seed(0)

    pyro_chains = 1 if args.quick else args.pyro_chains
    rows = {
        "ours_hmc": run_ours(args.chains, warm, draws, nlf, torch.device("cpu")),
    }
    if not args.quick:
        rows["ours_hmc_torch"] = run_ours(args.chains, warm, draws, nlf, torch.device("cpu"), torch_grad=True)
    rows["pyro_hmc"] = run_pyro("hmc", warm, draws, nlf, chains=pyro_chains)
    rows["pyro_nuts"] = run_pyro("nuts", warm, draws // 2, nlf)
    rows["ours_rw"] = run_rw(args.chains, rows["ours_hmc"]["grads"])
    labels = {"ours_hmc": f"ours HMC {nlf} steps", "ours_hmc_torch": f"ours HMC {nlf}, torch only",
              "pyro_hmc": "Pyro HMC", "pyro_nuts": "Pyro NUTS", "ours_rw": "ours random walk"}
    print(f"[2,2] classifier, points10, T={T}, L={L}, float64 on CPU, {torch.get_num_threads()} torch threads; "
          f"{warm} warm-up + {draws} draws ({draws // 2} for NUTS)")
    print(f"{'sampler':<28}{'chains':>7}{'seconds':>9}{'grad evals':>13}{'ESS all':>9}{'ESS/s':>9}"
          f"{'ESS chains':>11}{'ESS/s':>9}{'ESS/1k grads':>13}")
    for name, r in rows.items():
        r["chains"] = {"pyro_hmc": pyro_chains, "pyro_nuts": 1}.get(name, args.chains)
        r["ess_per_s"] = r["ess_u"] / r["seconds"]
        r["ess_chains_per_s"] = r["ess_u_chains"] / r["seconds"]
        r["ess_chains_per_kgrad"] = 1000 * r["ess_u_chains"] / r["grads"]
        print(f"{labels[name]:<28}{r['chains']:>7}{r['seconds']:>9.1f}{r['grads']:>13,}{r['ess_u']:>9.0f}"
              f"{r['ess_per_s']:>9.1f}{r['ess_u_chains']:>11.0f}{r['ess_chains_per_s']:>9.1f}"
              f"{r['ess_chains_per_kgrad']:>13.3f}")

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
        # Headline, the harsh reading for us: our ESS over all chains together (charged for chains that sit at
        # different levels of U) against Pyro's chains each judged alone. Like-for-like readings follow.
        "ess_per_s_ratio_vs_pyro": rows["ours_hmc"]["ess_per_s"] / rows["pyro_hmc"]["ess_chains_per_s"],
        "ess_per_s_ratio_vs_pyro_per_chain": rows["ours_hmc"]["ess_chains_per_s"] / rows["pyro_hmc"]["ess_chains_per_s"],
        "ess_per_s_ratio_vs_pyro_all_chains": rows["ours_hmc"]["ess_per_s"] / rows["pyro_hmc"]["ess_per_s"],
        "ess_per_s_ratio_vs_pyro_nuts": rows["ours_hmc"]["ess_per_s"] / rows["pyro_nuts"]["ess_chains_per_s"],
        "ess_per_grad_ratio_vs_rw": rows["ours_hmc"]["ess_chains_per_kgrad"] / rows["ours_rw"]["ess_chains_per_kgrad"],
        "ess_per_grad_ratio_vs_rw_all_chains_bulk": (rows["ours_hmc"]["ess_u"] / rows["ours_hmc"]["grads"])
        / (rows["ours_rw"]["ess_u"] / rows["ours_rw"]["grads"]),
        "grad_evals_per_s": {"cpu": thr_cpu, **({"cuda": thr_gpu} if thr_gpu else {})},
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "rows": rows,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
