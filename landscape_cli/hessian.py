"""``landscape hessian SOURCE --out DIR``: the Hessian of the loss at θ from a chain draw, a census minimum, a DSS bead
or a checkpoint: top-k and bottom-k eigenvalues, the trace and the spectral density, whole network or per layer.

Every point of the source is one row of a batched computation (:func:`mcmc_landscape.hessian.block_spectra`): blocks
of at most ``--dense-max`` coordinates are decomposed exactly, larger ones by Lanczos, Hutch++ and stochastic
Lanczos quadrature. Writes ``hessian.json`` and ``density.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import nonneg_int, positive_int, refuse_nonempty
from .points import add_source_arguments, resolve


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_arguments(p, "hessian.json, density.png")
    h = p.add_argument_group("the estimates")
    h.add_argument("--per-layer", action="store_true", help="also each layer's block of the Hessian")
    h.add_argument("--k", type=positive_int, default=5, help="top-k and bottom-k eigenvalues (5)")
    h.add_argument("--dense-max", type=nonneg_int, default=1500,
                   help="blocks up to this size are decomposed exactly (1500)")
    h.add_argument("--lanczos-steps", type=positive_int, default=60, help="Lanczos steps for the extremes (60)")
    h.add_argument("--trace", choices=("hutch++", "hutchinson"), default="hutch++", help="trace estimator")
    h.add_argument("--matvecs", type=positive_int, default=90, help="Hessian-vector products for the trace (90)")
    h.add_argument("--slq-vectors", type=positive_int, default=4, help="random vectors of the density (4)")
    h.add_argument("--slq-steps", type=positive_int, default=60, help="Lanczos steps per density vector (60)")
    h.add_argument("--seed", type=nonneg_int, default=0)
    h.add_argument("--device", default="auto", help="auto | cpu | cuda")
    h.add_argument("--dtype", choices=("float32", "float64"), help="default float64 on the CPU, float32 on a GPU")


def _jsonable(row: dict[str, Any], i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("grid", "density", "eigenvalues"):
            continue
        if isinstance(value, np.ndarray):
            v = value[i]
            out[key] = v.tolist() if np.ndim(v) else (None if not np.isfinite(v) else float(v))
        else:
            out[key] = value
    return out


def _plot(path: Path, rows: list[dict[str, Any]], labels: list[str]) -> None:
    from mcmc_landscape.figures import new_figure

    fig = new_figure(figsize=(7, 2.6 * len(rows)))
    axes = fig.subplots(len(rows), 1, squeeze=False)
    for ax, row in zip(axes[:, 0], rows, strict=True):
        for i, label in enumerate(labels):
            ax.semilogy(row["grid"], np.maximum(row["density"][i], 1e-12), label=label, lw=1)
        ax.set_ylim(bottom=max(1e-8, float(np.asarray(row["density"]).max()) * 1e-7))
        ax.set_title(f"{row['block']} ({row['size']:,} coordinates, {row['method']})", fontsize=9)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run(args: argparse.Namespace) -> int:
    import torch

    from mcmc_landscape.devices import resolve_device
    from mcmc_landscape.hessian import HessianSettings, block_spectra

    out = Path(args.out)
    refuse_nonempty(out, args.force, "pass --force to write into it")
    dev = resolve_device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float32 if dev.type == "cuda" else torch.float64)
    settings = HessianSettings(k=args.k, dense_max=args.dense_max, lanczos_steps=args.lanczos_steps,
                               trace=args.trace, trace_matvecs=args.matvecs, slq_vectors=args.slq_vectors,
                               slq_steps=args.slq_steps, seed=args.seed)
    t0 = time.perf_counter()
    target, theta, labels = resolve(args.source, args, dev, dtype)
    blocks = [("all", 0, target.p)] + (target.layers if args.per_layer else [])
    threads = torch.get_num_threads()
    if dev.type == "cpu" and target.p < 1000:
        torch.set_num_threads(1)          # tiny tensors: one thread beats the wake-up of several
    try:
        t = torch.as_tensor(theta, dtype=target.dtype, device=target.device)   # a DSS task keeps its own dtype
        rows = block_spectra(target.loss, t, blocks, settings)
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    result = {"source": str(args.source or args.model), "target": target.description, "device": str(target.device),
              "dtype": str(target.dtype).removeprefix("torch."), "seconds": seconds, "settings": settings.__dict__,
              "points": [{"label": label, "blocks": [_jsonable(r, i) for r in rows]} for i, label in enumerate(labels)]}
    out.mkdir(parents=True, exist_ok=True)
    (out / "hessian.json").write_text(json.dumps(result, indent=1))
    _plot(out / "density.png", rows, labels)
    if not args.quiet:
        for i, label in enumerate(labels):
            whole = rows[0]
            print(f"{label}: λ_max {whole['top'][i][0]:.6g}, λ_min {whole['bottom'][i][0]:.6g}, "
                  f"trace {whole['trace'][i]:.6g} ({whole['method']})")
        print(f"wrote {out / 'hessian.json'} and {out / 'density.png'} in {seconds:.1f} s")
    return 0
