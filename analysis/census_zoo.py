"""The census of a zoo model's run (``landscape sample --model small-convnet``): draws quenched by batched L-BFGS on
the device, minima told apart by their function on a probe batch, each minimum's kind by Lanczos on Hessian-vector
products, and the completeness estimate. No barriers (a convnet's strings are DSS's job).

Identity: two end points are one minimum when their energies and their per-image losses on the probe batch (the first
``probe`` training images; invariant under every symmetry of the network) agree, as connected components
(:func:`analysis.census.cluster_minima`). Invariance by construction, as in the MLP census: each draw is quenched from
its orbit's canonical point (:func:`mcmc_landscape.models.zoo_symmetry.zoo_quench_start`: channel scales balanced,
channels sorted, clipped to the box), so a draw and its relabelled or rescaled copies
(:func:`~mcmc_landscape.models.zoo_symmetry.random_channel_symmetry`) share one start and one end point. A user's
module has no described symmetry: its draws are quenched as they are.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

START_RULE = "zoo_quench_start: channel scales balanced, channels sorted, clipped to the box"


def run_zoo_census(file: str | Path, out: str | Path, count: int = 64, run: str | None = None, discard: int = 0,
                   tol: float = 1e-4, max_iter: int = 500, batch: int = 64, energy_tol: float = 1e-5,
                   output_tol: float = 1e-3, probe: int = 64, kind_minima: int = 4, lanczos_k: int = 8,
                   lanczos_tol: float = 1e-4, flat_rtol: float = 1e-2,
                   device: str = "auto", dtype: str = "auto", seed: int = 0) -> dict[str, Any]:
    """The census of a zoo run's minima, written to ``out`` (census.json, REPORT.md); returns it with the seconds
    each stage took. ``kind_minima``: the lowest this many distinct minima get the Lanczos kind (each costs a few
    hundred Hessian-vector products). ``flat_rtol``: eigenvalues within this share of the top one count as flat
    (the quench stops at ‖∇U‖ < ``tol``, so curvatures much below the top one are not resolved)."""
    import torch

    from analysis.census import basin_frequency, cluster_minima, plot_flatness, saturation_curve
    from analysis.census_run import pick_draws
    from analysis.completeness import chao1, good_turing_new
    from mcmc_landscape.minimum_kind import describe_kind, minimum_kind
    from mcmc_landscape.models.zoo_symmetry import RELU_PAIRS, zoo_orbit_tangent, zoo_quench_start
    from mcmc_landscape.optimize import quench, resolve_device
    from mcmc_landscape.runs.config import RunConfig
    from mcmc_landscape.runs.zoo_sampling import resolve_dtype, zoo_energy

    t0 = time.perf_counter()
    file, out = Path(file), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    cfg, x, y, draws, where = pick_draws(file, run, count, discard)
    if "model" not in cfg:
        raise ValueError("run_zoo_census is for runs of a zoo model; use run_census for an MLP run")
    dt = torch.float64 if (dtype if dtype != "auto" else resolve_dtype(cfg.get("dtype"), dev)) == "float64" \
        else torch.float32
    spec, energy = zoo_energy(RunConfig.from_json({**cfg, "chains": batch}), x, y, dev, dt)
    box = float(cfg["box"])
    times = {"read": time.perf_counter() - t0}
    t = time.perf_counter()
    symmetric = cfg["model"] in RELU_PAIRS
    starts = zoo_quench_start(cfg["model"], energy.layout, draws) if symmetric else draws
    clipped = int((np.abs(starts).max(axis=1) > box).sum())          # starts that are not quite their draw's network
    starts = np.clip(starts, -box, box)
    times["starts"] = time.perf_counter() - t
    t = time.perf_counter()
    q = quench(energy.energy_and_grad, starts, box=box, tol=tol, max_iter=max_iter, device=dev, dtype=dt)
    times["quench"] = time.perf_counter() - t
    t = time.perf_counter()
    rows = np.flatnonzero(q.converged)
    losses = per_image_loss(energy, q.theta[rows], probe, dt, dev)
    labels_c, reps = cluster_minima(q.theta[rows], q.energy[rows], energy_tol=energy_tol, outputs=losses,
                                    output_tol=output_tol)
    labels = -np.ones(len(draws), dtype=int)
    labels[rows] = labels_c
    times["identity"] = time.perf_counter() - t
    t = time.perf_counter()
    minima = []
    for k, r in enumerate(rows[reps]):
        members = int((labels == k).sum())
        share, lo, hi = basin_frequency(members, len(draws))
        m = {"id": k, "energy": float(q.energy[r]), "loss": float(q.energy[r]) / len(y), "members": members,
             "frequency": share, "frequency_low": lo, "frequency_high": hi,
             "example_draw": {"chain": int(where[r, 0]), "draw": int(where[r, 1])}}
        if k < kind_minima:
            # a user's module has no described symmetry orbit: its flat directions are all counted as manifold
            tangent = zoo_orbit_tangent(cfg["model"], energy.layout, q.theta[r]) if symmetric \
                else np.zeros((0, energy.layout.p))
            shape = minimum_kind(lambda u: energy(u.to(dt)).double(), q.theta[r], tangent, q.active[r],
                                 method="lanczos", k=lanczos_k, device=dev, flat_rtol=flat_rtol,
                                 lanczos_tol=lanczos_tol)
            m.update(shape=shape, kind=describe_kind(shape))
        minima.append(m)
    times["kinds"] = time.perf_counter() - t
    census = {"file": str(file), "model": spec.describe(), "n_data": len(y), "n_quenched": len(draws),
              "n_converged": int(q.converged.sum()), "n_distinct": len(minima),
              "start_rule": START_RULE if symmetric else "the draws themselves (no described symmetry)",
              "starts_clipped": clipped, "quench_energy": q.energy.tolist(), "probe": int(losses.shape[1]),
              "minima": minima, "labels": labels.tolist(), "saturation": saturation_curve(labels, seed=seed),
              "completeness": {"chao1": chao1(labels), "p_new_minimum": good_turing_new(labels, len(draws))},
              "settings": {"count": count, "tol": tol, "max_iter": max_iter, "energy_tol": energy_tol,
                           "flat_rtol": flat_rtol, "output_tol": output_tol, "device": str(dev), "dtype": str(dt)},
              "seconds": {**times, "total": time.perf_counter() - t0}}
    census["flatness_plot"] = plot_flatness(minima, out / "flatness.png") is not None
    (out / "census.json").write_text(json.dumps(census, indent=1, default=float))
    (out / "REPORT.md").write_text(zoo_report(census))
    return census


def per_image_loss(energy: Any, theta: np.ndarray, probe: int, dtype: Any, device: Any, chunk: int = 32) -> np.ndarray:
    """Cross-entropy of each of the first ``probe`` training images (n, probe) for each θ: the function the data
    sees, unchanged by every symmetry of the network."""
    import torch
    from torch.func import vmap

    from mcmc_landscape.models.zoo import functional_outputs

    f = vmap(functional_outputs(energy.module, energy.layout), in_dims=(0, None))
    xb, yb = energy.x[:probe], energy.y[:probe]
    parts = []
    with torch.no_grad():
        for i in range(0, len(theta), chunk):
            z = f(torch.as_tensor(theta[i : i + chunk], dtype=dtype, device=device), xb)
            ce = torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), yb.repeat(len(z)), reduction="none")
            parts.append(ce.reshape(len(z), -1).double().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, len(yb)))


def zoo_report(c: dict[str, Any]) -> str:
    """REPORT.md of a zoo census."""
    ch = c["completeness"]["chao1"]
    lines = [f"# Census of a zoo run: {c['model']}", "",
             f"{c['n_quenched']} draws quenched (batched L-BFGS, {c['settings']['device']}), {c['n_converged']} "
             f"converged (‖projected ∇U‖ < {c['settings']['tol']:g}); **{c['n_distinct']} distinct "
             f"minim{'um' if c['n_distinct'] == 1 else 'a'}** by "
             f"energy and per-image loss on {c['probe']} probe images. Chao1: {ch['estimate']:.1f} "
             f"[{ch['low']:.1f}, {ch['high']:.1f}]; the next quench finds a new minimum with probability "
             f"{c['completeness']['p_new_minimum']:.3f} (Good–Turing).", "",
             f"Quench starts: {c['start_rule']} ({c['starts_clipped']} of {c['n_quenched']} clipped), so the count "
             "cannot depend on how the draws are labelled.", "",
             f"Log det: Σ log λ over the Hessian's eigenvalues above {c['settings']['flat_rtol']:g} of λ top (what the "
             "kind counts as not flat), by stochastic Lanczos quadrature: ± its sampling standard error; Δ½ its change "
             "from half the Lanczos steps, a gauge of the quadrature's own error.", "",
             "| # | U | frequency | kind | orbit dim | λ top | trace (Hutchinson) | log det (SLQ ± se; Δ½) |",
             "|---|---|---|---|---|---|---|---|"]
    for m in c["minima"]:
        sh = m.get("shape")
        lines.append(f"| {m['id']} | {m['energy']:.6g} | {m['frequency']:.3f} | {m.get('kind', 'not computed')} | "
                     + (f"{sh['orbit_dim']} | {sh['top']:.4g} | {sh['trace']:.4g} | "
                        f"{sh['logdet_nonnull']:.4g} ± {sh['logdet_stderr']:.2g}; "
                        f"{sh['logdet_quadrature_change']:+.2g} |" if sh else "— | — | — | — |"))
    if c.get("flatness_plot"):
        lines += ["", "Flatness against basin frequency (Hessian trace and top eigenvalue; colour: flat dimensions "
                  "beyond the orbit):", "", "![flatness](flatness.png)"]
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in c["seconds"].items()), ""]
    return "\n".join(lines)
