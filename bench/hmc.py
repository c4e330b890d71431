"""Our batched HMC against Pyro's HMC and NUTS (also PyTorch) and our random walk, on the report's [2,2] target,
and gradient evaluations per second as the number of chains grows. One run; a table, then a last line of JSON.

Usage: python bench/hmc.py [--device auto|cpu|cuda] [--quick] [--chains N] [--pyro-chains K]
                           [--numpyro-only] [--numpyro-chains 1024,16384]
       python bench/hmc.py --model mnist-convnet [--width W] [--model-chains C] [--n-train N] [--dtype float32]
With ``--model``: the zoo energy the sampler uses (U and ∇U of C chains × N images through torch.func, in chunks)
against a plain PyTorch forward+backward of the same model over the same images, one chain after another, side by
side; prints both rates and their ratio, checks the two agree, and ends with a JSON line holding ``ratio``.
ESS is ArviZ's bulk ESS of U, read two ways: over all of a sampler's chains together ("all"; chains stuck at different
levels of U lower it) and as the sum of each chain's own ESS ("chains"; how a single chain is judged). Pyro runs K
chains one after another (its multi-chain mode forks processes). Gradient evaluations are counted where the energy is
called, so Pyro's NUTS is charged for every step of its trees.

On a GPU (``--device cuda``) the gradient throughput is measured for the fused trajectory (one numba-cuda kernel per
trajectory, `mcmc_landscape.samplers.hmc_gpu`) and for the torch loop it replaces, up to 2^20 chains in float32, beside
an estimate of the card's limit from the FLOPs and bytes a gradient needs. Where NumPyro is installed (the ``bench``
extra), its vectorized NUTS (tree depth ≤ 4, all chains in one JIT-compiled program) runs on the same target, chains
and iterations (300 warm-up + 500 draws) as ours, and the ESS of U per second of both is compared
(``--numpyro-only`` runs just that and the throughput).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.models.energy import (
    mlp_energy_and_grad_torch,
    mlp_energy_model,
    mlp_energy_torch,
    mlp_torch_energy_grad_fn,
)
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import hmc, rw
from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn

L, T = 10.0, 1.0


def ess_u(energy: np.ndarray) -> float:
    """ArviZ's bulk ESS of U over all chains together (rank-normalized: chains that sit at different levels of U
    lower it, so a non-mixing landscape is charged for it)."""
    return float(summary_arrays(energy[..., None], energy)["U"]["ess_bulk"])


def ess_u_per_chain(energy: np.ndarray) -> float:
    """The sum over chains of each chain's own bulk ESS of U: how a single chain is judged, applied to every chain."""
    return float(sum(ess_u(energy[c : c + 1]) for c in range(energy.shape[0])))


class Counted:
    """The [2,2] energy on a device, counting the θ rows it is evaluated at (gradients inside fused kernels too).

    ``iterations=False`` hides the GPU kernel of whole iterations, so that run_block launches the trajectory kernel
    once an iteration and does the rest in torch (the design before it; kept to show what it gains)."""

    def __init__(self, device, dtype, trajectory="fused", iterations=True):
        ds = load_dataset("points10")
        self.spec = MLPSpec.from_string("2,2")
        self.x = torch.tensor(ds.x, dtype=dtype, device=device)
        self.y = torch.tensor(ds.y, device=device)
        self.calls = 0
        self.grad = mlp_torch_energy_grad_fn(self.spec, ds, device, dtype)
        self.traj = mlp_torch_trajectory_fn(self.spec, ds, device, trajectory)
        self.trajectory_fn = None
        if self.traj is not None:
            def counted_trajectory(pos, r, g, drift, kick, n_lf, box):
                """The fused trajectory the CLI uses (Numba on the CPU, numba-cuda on a GPU): n_lf gradients a chain."""
                self.calls += pos.shape[0] * n_lf
                return self.traj(pos, r, g, drift, kick, n_lf, box)

            if iterations and hasattr(self.traj, "iterations"):
                def counted_iterations(chains, noise, sched, *outs):
                    self.calls += chains.position.shape[0] * int(noise.n_leapfrog.sum())
                    return self.traj.iterations(chains, noise, sched, *outs)

                counted_trajectory.iterations = counted_iterations
            self.trajectory_fn = counted_trajectory

    def __call__(self, theta):
        self.calls += theta.shape[0]
        return mlp_energy_torch(theta, self.spec, self.x, self.y)

    def with_grad(self, theta):
        """U and ∇U as `landscape sample --sampler hmc` computes them (Numba on the CPU, written-out torch backward
        elsewhere)."""
        self.calls += theta.shape[0]
        return self.grad(theta)

    def with_torch_grad(self, theta):
        """U and ∇U by the batched torch pass with the written-out backward (what a GPU runs), here on the CPU."""
        self.calls += theta.shape[0]
        return mlp_energy_and_grad_torch(theta, self.spec, self.x, self.y)


def ess_canonical(theta: np.ndarray, energy: np.ndarray, per_chain_max: int = 64) -> dict:
    """Bulk ESS of the canonical coordinates (θ modulo the network's symmetries, as the analysis reads it): the median
    over coordinates, over all chains together, and summed chain by chain (from the first ``per_chain_max`` chains,
    scaled to all: each chain's own ESS costs an ArviZ call a coordinate)."""
    from mcmc_landscape.models.symmetry import canonicalize

    C, D, p = theta.shape
    can = canonicalize(theta.reshape(-1, p), MLPSpec.from_string("2,2")).reshape(C, D, p)
    whole = float(np.median(summary_arrays(can, energy)["theta"]["ess_bulk"]))
    k = min(C, per_chain_max)
    per = [np.median(summary_arrays(can[c : c + 1], energy[c : c + 1])["theta"]["ess_bulk"]) for c in range(k)]
    return {"ess_theta": whole, "ess_theta_chains": float(np.sum(per) * C / k)}


def run_ours(chains, warmup, draws, n_leapfrog, device, seed=0, torch_grad=False, dtype=torch.float64,
             per_chain=True, iterations=True, trajectory="fixed", jitter=False, target_accept=0.8,
             chees_criterion="energy"):
    f = Counted(device, dtype, iterations=iterations)
    grad = f.with_torch_grad if torch_grad else f.with_grad
    traj = None if torch_grad else f.trajectory_fn
    s = hmc.HMCSettings(temperature=T, box=L, warmup=warmup, n_leapfrog=n_leapfrog, trajectory=trajectory,
                        jitter=jitter, target_accept=target_accept, chees_criterion=chees_criterion)
    t0 = time.perf_counter()
    state = hmc.init(f, chains, 18, seed, s, device=device, dtype=dtype, grad_fn=grad)
    state, theta, energy, acc = hmc.run_block(f, state, draws, s, grad_fn=grad, trajectory_fn=traj)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    out = {"seconds": dt, "grads": f.calls, "ess_u": ess_u(energy),
           "ess_u_chains": ess_u_per_chain(energy) if per_chain else float("nan"), "acceptance": float(acc.mean()),
           "step": float(state.log_step.exp().median()), "mean_steps": f.calls / (chains * (warmup + draws))}
    if trajectory == "chees":
        out["chees_length"] = float(np.exp(state.chees_log_length_ma))
        out["chees_mean_steps"] = state.chees_mean_steps
    if per_chain:
        out.update(ess_canonical(theta, energy))
    return out


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
            "acceptance": float(info.accepted.mean()), **ess_canonical(theta, energy)}


def grad_throughput(chains, device, dtype, iters, trajectory="fused"):
    f = Counted(device, dtype, trajectory)
    s = hmc.HMCSettings(temperature=T, box=L, warmup=0, n_leapfrog=16, thin=iters)
    state = hmc.init(f, chains, 18, 0, s, device=device, dtype=dtype, grad_fn=f.with_grad)
    traj = f.trajectory_fn
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


def jax_energy(dtype):
    """U of the [2,2] classifier on points10 in JAX with our flat layout (inputs in ``dtype``; None: JAX's default):
    the target NumPyro and BlackJAX sample, the same function as our energy."""
    import jax
    import jax.numpy as jnp

    ds = load_dataset("points10")
    layers = MLPSpec.from_string("2,2").offsets()
    x, y = jnp.asarray(ds.x, dtype=dtype), jnp.asarray(ds.y)

    def energy(theta):
        h = x
        for li, (w_off, b_off, fan_in, fan_out) in enumerate(layers):
            h = h @ theta[w_off:b_off].reshape(fan_in, fan_out) + theta[b_off : b_off + fan_out]
            if li < len(layers) - 1:
                h = jax.nn.relu(h)
        return -jnp.take_along_axis(jax.nn.log_softmax(h, axis=-1), y[:, None], axis=-1).sum()

    return energy


def run_numpyro(chains, warmup, draws, seed=0):
    """NumPyro's vectorized NUTS (tree depth ≤ 4) on the same target: Uniform(-L, L)^18 times exp(-U/T), U the
    [2,2] classifier's energy written in JAX with our flat layout. NumPyro compiles inside ``run``: the same run is
    made twice and the second is timed (``seconds``; the first, compilation included, is ``seconds_cold``). U of
    its draws is computed by our torch energy, so both samplers' U are the same function."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd
    from numpyro.infer import MCMC, NUTS

    energy = jax_energy(jnp.float32)
    spec = MLPSpec.from_string("2,2")

    def model():
        theta = numpyro.sample("theta", nd.Uniform(-L, L).expand([spec.n_params]).to_event(1))
        numpyro.factor("U", -energy(theta) / T)

    kernel = NUTS(model, target_accept_prob=0.8, max_tree_depth=4)
    mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains, chain_method="vectorized",
                progress_bar=False)
    times = []
    for key in (seed + 1, seed):
        t0 = time.perf_counter()
        mcmc.run(jax.random.PRNGKey(key), extra_fields=("num_steps",))
        theta = np.asarray(jax.block_until_ready(mcmc.get_samples(group_by_chain=True)["theta"]))
        times.append(time.perf_counter() - t0)
    cold, dt = times
    steps = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    f = Counted(torch.device("cpu"), torch.float64)
    flat = theta.reshape(-1, spec.n_params)
    energy_draws = np.concatenate([f(torch.tensor(flat[i : i + 2**18], dtype=torch.float64)).numpy()
                                   for i in range(0, len(flat), 2**18)]).reshape(chains, draws)
    return {"seconds": dt, "seconds_cold": cold, "grads_sampling": int(steps.sum()), "ess_u": ess_u(energy_draws),
            "acceptance": float("nan"), "backend": jax.default_backend()}


def run_blackjax_chees(chains, warmup, draws, seed=0):
    """BlackJAX's ChEES adaptation (Adam, rate 0.025 as the paper) and jittered HMC on the same target, CPU JAX,
    float64. The box enters as NumPyro's does: θ = -L + 2L·sigmoid(z), the log-Jacobian added (U's distribution and
    its ESS do not depend on the coordinates). Gradients are counted from BlackJAX's own step counts, warm-up
    included."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import blackjax
    import jax.numpy as jnp
    import optax

    energy = jax_energy(None)
    spec = MLPSpec.from_string("2,2")

    def logdensity(z):
        theta = -L + 2 * L * jax.nn.sigmoid(z)
        return -energy(theta) / T + jnp.sum(jax.nn.log_sigmoid(z) + jax.nn.log_sigmoid(-z))

    key = jax.random.PRNGKey(seed)
    k_init, k_warm, k_draw = jax.random.split(key, 3)
    z0 = jax.random.normal(k_init, (chains, spec.n_params))  # inside the box (θ within ±0.46 L of 0 at 1 sd)
    t0 = time.perf_counter()
    warm = blackjax.chees_adaptation(logdensity, chains)
    (states, params), info = warm.run(k_warm, z0, 0.1, optax.adam(0.025), warmup)
    kernel = blackjax.dynamic_hmc(logdensity, **params)
    step = jax.jit(jax.vmap(kernel.step))

    def one(carry, k):
        st, info_ = step(jax.random.split(k, chains), carry)
        return st, (st.position, info_.num_integration_steps)

    _, (zs, n_steps) = jax.lax.scan(one, states, jax.random.split(k_draw, draws))
    zs = np.asarray(jax.block_until_ready(zs))
    dt = time.perf_counter() - t0
    grads = int(np.asarray(info.info.num_integration_steps).sum() + np.asarray(n_steps).sum())
    theta = np.swapaxes(-L + 2 * L / (1 + np.exp(-zs)), 0, 1)  # (chains, draws, p)
    f = Counted(torch.device("cpu"), torch.float64)
    energy_draws = f(torch.tensor(theta.reshape(-1, spec.n_params))).numpy().reshape(chains, draws)
    return {"seconds": dt, "grads": grads, "ess_u": ess_u(energy_draws), "ess_u_chains": ess_u_per_chain(energy_draws),
            "acceptance": float(np.asarray(info.info.acceptance_rate)[-50:].mean()),
            "step": float(params["step_size"]), "mean_steps": grads / (chains * (warmup + draws)),
            **ess_canonical(theta, energy_draws)}


def chees_main(args):
    """``--chees``: ChEES beside the fixed length (plain and jittered), our random walk and BlackJAX's ChEES (where
    installed), per-chain and all-chain ESS of U and of the canonical coordinates per gradient; one JSON line."""
    import importlib.util

    warm, draws = args.chees_warmup, args.chees_draws
    c = args.chains
    cpu = torch.device("cpu")
    runs = {"ours_hmc": lambda: run_ours(c, warm, draws, 16, cpu),
            "ours_hmc_jitter": lambda: run_ours(c, warm, draws, 16, cpu, jitter=True),
            "ours_chees": lambda: run_ours(c, warm, draws, 16, cpu, trajectory="chees"),  # the default: energy
            "ours_chees_spread": lambda: run_ours(c, warm, draws, 16, cpu, trajectory="chees", chees_criterion="spread"),
            "ours_rw": lambda: run_rw(c, rows["ours_hmc"]["grads"])}
    if importlib.util.find_spec("blackjax") is not None:
        runs["blackjax_chees"] = lambda: run_blackjax_chees(c, warm, draws)
    rows = {}
    for name, fn in runs.items():  # progress on stderr, so a run cut short still tells what it measured
        rows[name] = fn()
        print(name, json.dumps(rows[name]), file=sys.stderr, flush=True)
    print(f"[2,2] classifier, points10, T={T}, L={L}, float64 on CPU; {c} chains, {warm} warm-up + {draws} draws; "
          "per k grads = per 1,000 gradient (or, random walk, energy) evaluations, warm-up included")
    print(f"{'sampler':<18}{'grads':>13}{'s':>7}{'acc':>6}{'step':>8}{'steps':>7}{'ESS U all':>10}{'chains':>9}"
          f"{'/k grads':>9}{'ESS θc all':>11}{'chains':>9}{'/k grads':>9}{'grads/ESS':>10}")
    for name, r in rows.items():
        r["ess_chains_per_kgrad"] = 1000 * r["ess_u_chains"] / r["grads"]
        r["ess_theta_chains_per_kgrad"] = 1000 * r["ess_theta_chains"] / r["grads"]
        r["grads_per_ess_chains"] = r["grads"] / r["ess_u_chains"]
        print(f"{name:<18}{r['grads']:>13,}{r['seconds']:>7.1f}{r['acceptance']:>6.2f}{r.get('step', float('nan')):>8.4f}"
              f"{r.get('mean_steps', 1.0):>7.1f}{r['ess_u']:>10.0f}{r['ess_u_chains']:>9.0f}"
              f"{r['ess_chains_per_kgrad']:>9.3f}{r['ess_theta']:>11.0f}{r['ess_theta_chains']:>9.0f}"
              f"{r['ess_theta_chains_per_kgrad']:>9.3f}{r['grads_per_ess_chains']:>10.0f}")
    per_grad = {k: r["ess_chains_per_kgrad"] for k, r in rows.items()}
    summary = {"chees_over_rw_per_grad": per_grad["ours_chees"] / per_grad["ours_rw"],
               "fixed_over_rw_per_grad": per_grad["ours_hmc"] / per_grad["ours_rw"],
               "chees_over_blackjax_per_grad": per_grad["ours_chees"] / per_grad["blackjax_chees"]
               if "blackjax_chees" in per_grad else None,
               "chees_spread_over_rw_per_grad": per_grad["ours_chees_spread"] / per_grad["ours_rw"],
               "blackjax_over_rw_per_grad": per_grad["blackjax_chees"] / per_grad["ours_rw"]
               if "blackjax_chees" in per_grad else None,
               "chees_over_rw_per_grad_all_chains": (rows["ours_chees"]["ess_u"] / rows["ours_chees"]["grads"])
               / (rows["ours_rw"]["ess_u"] / rows["ours_rw"]["grads"]),
               "chains": c, "warmup": warm, "draws": draws, "rows": rows}
    print(json.dumps(summary))


def numpyro_comparison(chain_counts, device, warmup=300, draws=500, n_leapfrog=16):
    """ESS of U per second, ours (fused trajectory on the device) against NumPyro's vectorized NUTS, at equal chains
    and iterations. Ours runs in float32 on a GPU (as NumPyro does) and in float64 on the CPU (as the CLI does)."""
    out = {}
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    # compile our kernels first, as NumPyro's second run is timed
    run_ours(8, 2, 2, n_leapfrog, device, dtype=dtype, per_chain=False)
    for c in chain_counts:
        ours = run_ours(c, warmup, draws, n_leapfrog, device, dtype=dtype, per_chain=False)
        peer = run_numpyro(c, warmup, draws)
        out[str(c)] = {"ours": ours, "numpyro": peer,
                       "ess_per_s_ratio": (ours["ess_u"] / ours["seconds"]) / (peer["ess_u"] / peer["seconds"])}
        print(f"  {c:>6} chains: ours {ours['seconds']:7.2f} s, ESS(U) {ours['ess_u']:8.0f}, "
              f"{ours['ess_u'] / ours['seconds']:9.1f}/s | NumPyro NUTS ({peer['backend']}) {peer['seconds']:7.1f} s, "
              f"ESS(U) {peer['ess_u']:8.0f}, {peer['ess_u'] / peer['seconds']:9.1f}/s | ratio "
              f"{out[str(c)]['ess_per_s_ratio']:.2f}")
        if device.type == "cuda":  # the design before whole iterations in the kernel: a launch a trajectory
            per_traj = run_ours(c, warmup, draws, n_leapfrog, device, dtype=dtype, per_chain=False, iterations=False)
            out[str(c)]["ours_trajectory_kernel_only"] = per_traj
            print(f"          ours with a launch a trajectory: {per_traj['seconds']:7.2f} s, ESS(U) "
                  f"{per_traj['ess_u']:8.0f} (whole iterations a launch: {per_traj['seconds'] / ours['seconds']:.1f}x "
                  f"faster)")
    return out


def gradient_cost(spec, n_points, dtype_bytes=4, n_leapfrog=16):
    """FLOPs and bytes of DRAM traffic per gradient evaluation of the fused HMC iteration, counted from the network:
    forward and backward multiply-adds per point, the loss, the leapfrog updates; per iteration the kernel reads
    θ, r, ∇U, the step scale and writes θ, r, ∇U (8 passes over (chains, p)), and the torch side of ``run_block``
    (momentum draw, kinetic energies, finiteness, accept, adaptation) makes about 30 more, counted from its code; all
    shared by the ``n_leapfrog`` gradients of a trajectory. An estimate, not a measurement."""
    p = spec.n_params
    macs = sum(i * o for i, o in spec.layer_shapes)
    back_macs = macs + sum(i * o for i, o in spec.layer_shapes[1:])  # dW for every layer, dh below the first
    flops_point = 2 * (macs + back_macs) + 6 * sum(spec.widths[1:]) + 20  # + biases, activations, softplus
    flops = n_points * flops_point + 6 * p
    bytes_ = (8 + 30) * p * dtype_bytes / n_leapfrog
    return {"flops": flops, "bytes": bytes_}


#: H100 SXM peaks: FP32 (non-tensor) FLOP/s and HBM3 bytes/s (NVIDIA's data sheet).
H100_FP32_FLOPS, H100_BYTES_PER_S = 67e12, 3.35e12


def card_limit(spec, n_points):
    cost = gradient_cost(spec, n_points)
    by_flops, by_bytes = H100_FP32_FLOPS / cost["flops"], H100_BYTES_PER_S / cost["bytes"]
    return {**cost, "limit_by_flops": by_flops, "limit_by_bytes": by_bytes, "limit": min(by_flops, by_bytes)}
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
    from mcmc_landscape.models.zoo import FlatLayout, build_model, module_energy
    from mcmc_landscape.runs.zoo_sampling import default_chunks

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
    ap.add_argument("--numpyro-only", action="store_true",
                    help="only ours against NumPyro's vectorized NUTS, and the GPU throughput on a GPU")
    ap.add_argument("--numpyro-chains", default=None,
                    help="comma-separated chain counts for the NumPyro comparison (default 1024,16384 on a GPU, "
                         "64,256 on the CPU)")
    m = ap.add_argument_group("a zoo model's energy against plain PyTorch (--model)")
    m.add_argument("--model", choices=["mnist-convnet"], help="time this model's energy and gradient instead")
    m.add_argument("--width", type=float, default=0.25, help="model width (default 0.25: p = 206,954)")
    m.add_argument("--model-chains", type=int, default=16, help="chains (default 16)")
    m.add_argument("--n-train", type=int, default=256, help="images (default 256)")
    m.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    m.add_argument("--chain-chunk", type=int, help="as landscape sample's --chain-chunk (default as there)")
    m.add_argument("--example-chunk", type=int, help="as landscape sample's --example-chunk (default as there)")
    m.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chees", action="store_true", help="only ChEES against the fixed length, the random walk and "
                    "BlackJAX's ChEES (per gradient, per chain and over all chains)")
    ap.add_argument("--chees-warmup", type=int, default=300)
    ap.add_argument("--chees-draws", type=int, default=500)
    args = ap.parse_args()
    if args.chees:
        chees_main(args)
        return
    if args.model:
        model_throughput(args)
        return
    device = hmc.resolve_device(args.device)
    if args.numpyro_only:
        numpyro_main(args, device)
        return
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
    thr_gpu = gpu_throughput(device, counts) if device.type == "cuda" else {}
    print("gradient evaluations per second (float32, 16 leapfrog steps per iteration):")
    for c in counts:
        gpu = f"{thr_gpu[str(c)]:>16,.0f}" if thr_gpu else ""
        print(f"  {c:>8} chains  cpu {thr_cpu[str(c)]:>14,.0f}  {('gpu ' + gpu) if gpu else ''}")
    if thr_gpu:
        print(f"  {1048576:>8} chains  gpu {thr_gpu['1048576']:>14,.0f}  ({torch.cuda.get_device_name()})")
        report_gpu(thr_gpu)
    peer = numpyro_comparison(_numpyro_counts(args, device), device) if _has_numpyro() else {}
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
        "numpyro": peer,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "rows": rows,
    }
    print(json.dumps(summary))


def gpu_throughput(device, counts):
    """Gradient evaluations/s in float32 on the GPU, fused trajectory and torch loop, up to 2^20 chains (the torch
    loop under "<chains>_torch")."""
    out = {}
    for c in [*counts, 1048576]:
        out[str(c)] = statistics.median(grad_throughput(c, device, torch.float32, 20) for _ in range(3))
        out[f"{c}_torch"] = grad_throughput(c, device, torch.float32, 5, trajectory="torch")
    return out


def report_gpu(thr):
    lim = card_limit(MLPSpec.from_string("2,2"), 10)
    print("GPU, fused trajectory against the torch loop (float32, gradient evaluations/s):")
    for key in [k for k in thr if not k.endswith("_torch")]:
        print(f"  {int(key):>8} chains  fused {thr[key]:>16,.0f}  torch loop {thr[key + '_torch']:>14,.0f}  "
              f"ratio {thr[key] / thr[key + '_torch']:.1f}")
    best = max(v for k, v in thr.items() if not k.endswith("_torch"))
    print(f"  card's limit (H100 SXM, [2,2] on 10 points): {lim['flops']:.0f} FLOPs and {lim['bytes']:.0f} bytes per "
          f"gradient → {lim['limit_by_flops']:.2e}/s by FP32 FLOPs, {lim['limit_by_bytes']:.2e}/s by HBM; "
          f"measured best {best:.2e}/s = {best / lim['limit']:.1%} of the lower")
    thr["card_limit"] = lim


def _has_numpyro():
    import importlib.util

    return importlib.util.find_spec("numpyro") is not None


def _numpyro_counts(args, device):
    if args.numpyro_chains:
        return [int(c) for c in args.numpyro_chains.split(",")]
    return [1024, 16384] if device.type == "cuda" else [64, 256]


def numpyro_main(args, device):
    """``--numpyro-only``: ours against NumPyro's vectorized NUTS, plus the GPU throughput on a GPU; one JSON line."""
    if not _has_numpyro():
        raise SystemExit("NumPyro is not installed: pip install -c constraints.txt -e '.[bench]'")
    print(f"[2,2] classifier, points10, T={T}, L={L}: ours (HMC, 16 leapfrog steps, fused trajectory on {device}) "
          "against NumPyro NUTS (vectorized, tree depth ≤ 4); 300 warm-up + 500 draws; ESS = bulk ESS of U, all chains")
    peer = numpyro_comparison(_numpyro_counts(args, device), device)
    thr = {}
    if device.type == "cuda":
        thr = gpu_throughput(device, [1024, 16384, 65536, 262144])
        report_gpu(thr)
    print(json.dumps({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "ess_per_s_ratio_vs_numpyro": {c: r["ess_per_s_ratio"] for c, r in peer.items()},
                      "grad_evals_per_s_cuda": thr, "numpyro": peer}))


if __name__ == "__main__":
    main()
