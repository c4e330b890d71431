"""``landscape slice SOURCE --out DIR``: the loss on a line or a plane through θ from a chain file, a census, a DSS
string or a checkpoint, evaluated on a grid in batched chunks on the device.

Modes (``--mode``; ``auto`` picks by the number of points): ``random`` — 1-D or 2-D filter-normalized random
directions around the first point (Li et al. 2018); ``models`` — the line through two models or the plane through
three (Garipov et al. 2018), the models first aligned modulo hidden-unit permutations when the net is an MLP;
``pca`` — the plane of the two leading principal directions of many points (a DSS string's beads, a chain's draws),
the points drawn on it. Writes ``slice.npz`` (or ``slice.h5``) and ``slice.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.errors import SpecError

from .common import nonneg_int, positive_float, positive_int, refuse_nonempty
from .points import add_source_arguments, kind_of, resolve

log = logging.getLogger("landscape_cli.slice")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_source_arguments(p, "slice.npz or slice.h5, slice.png")
    s = p.add_argument_group("the slice")
    s.add_argument("--mode", choices=("auto", "random", "models", "pca"), default="auto",
                   help="auto: random for one point, models for two or three, pca for more")
    s.add_argument("--dims", type=int, choices=(1, 2), default=2, help="random mode: a line or a plane (2)")
    s.add_argument("--span", type=positive_float, default=1.0,
                   help="random mode: the grid runs over ±span along each direction (1.0); models and pca modes: "
                        "the margin around the points as a fraction of their extent")
    s.add_argument("--steps", type=positive_int, default=21, help="grid points per axis (21)")
    s.add_argument("--biases", choices=("zero", "weights"), default="zero",
                   help="random mode: bias directions zero, or θ's biases (Li et al.'s code)")
    s.add_argument("--no-align", action="store_true", help="models mode: do not align the models first")
    s.add_argument("--max-points", type=positive_int, default=200, help="pca mode on a chain: draws used at most")
    s.add_argument("--chunk", type=positive_int, default=256, help="models per batched loss call (256)")
    s.add_argument("--format", choices=("npz", "h5"), default="npz")
    s.add_argument("--seed", type=nonneg_int, default=0)
    s.add_argument("--device", default="auto", help="auto | cpu | cuda")
    s.add_argument("--dtype", choices=("float32", "float64"), help="default float64 on the CPU, float32 on a GPU")


def _align(target: Any, theta: np.ndarray) -> tuple[np.ndarray, bool]:
    """The models as canonical forms, each aligned to the first (MLPs); others unchanged."""
    if target.spec is None:
        return theta, False
    from mcmc_landscape.models.symmetry import align, canonicalize

    canon = np.stack([canonicalize(t, target.spec) for t in theta])
    return np.stack([canon[0]] + [align(canon[0], t, target.spec) for t in canon[1:]]), True


def _axis(lo: float, hi: float, margin: float, steps: int) -> np.ndarray:
    pad = margin * max(hi - lo, 1e-12)
    return np.linspace(lo - pad, hi + pad, steps)


def _chain_draws(args: argparse.Namespace) -> None:
    """PCA of a chain: spread ``--max-points`` draws of the chosen chains evenly over the committed ones."""
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(args.source, args.run) as r:
        n = r.committed_draws
    per = max(1, args.max_points // len(args.chain or [0]))
    args.draw = sorted(set(np.linspace(0, max(n - 1, 0), min(per, max(n, 1))).round().astype(int).tolist()))


def _plot(path: Path, res: dict[str, Any], title: str) -> None:
    from mcmc_landscape.figures import new_figure

    loss, a = res["loss"], res["a"]
    if loss.ndim == 1:
        fig = new_figure(figsize=(6, 4))
        ax = fig.subplots()
        ax.plot(a, loss)
        for (x, _), name in zip(res["points"], res["labels"], strict=False):
            ax.axvline(x, color="k", lw=0.5, ls=":")
            ax.annotate(name, (x, float(np.interp(x, a, loss))), fontsize=7)
        ax.set_xlabel("distance along the line")
        ax.set_ylabel("loss")
    else:
        b = res["b"]
        fig = new_figure(figsize=(11, 4.5))
        ax = fig.add_subplot(1, 2, 1)
        A, B = np.meshgrid(a, b, indexing="ij")
        finite = loss[np.isfinite(loss)]
        levels = np.quantile(finite, np.linspace(0, 1, 25)) if finite.size else 10
        cs = ax.contour(A, B, loss, levels=np.unique(levels), cmap="viridis", linewidths=0.8)
        fig.colorbar(cs, ax=ax, label="loss")
        pts = res["points"]
        if len(pts):
            ax.plot(pts[:, 0], pts[:, 1], "o-" if res["mode"] == "pca" else "o", color="crimson", ms=3, lw=0.8)
            if len(pts) <= 3:
                for (x, y), name in zip(pts, res["labels"], strict=False):
                    ax.annotate(name, (x, y), fontsize=7)
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax3 = fig.add_subplot(1, 2, 2, projection="3d")
        ax3.plot_surface(A, B, loss, cmap="viridis", linewidth=0)
        ax3.set_zlabel("loss")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _write(path: Path, res: dict[str, Any], meta: dict[str, Any]) -> None:
    arrays = {k: np.asarray(v) for k, v in res.items() if k not in ("labels", "mode")}
    if path.suffix == ".npz":
        np.savez_compressed(path, **arrays, labels=np.array(res["labels"]), meta=json.dumps(meta))
        return
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs.update(format="mcmc-landscape/slice", meta=json.dumps(meta))
        for k, v in arrays.items():
            f[k] = v
        f["labels"] = np.array(res["labels"], dtype="S")


def run(args: argparse.Namespace) -> int:
    import torch

    from mcmc_landscape.devices import resolve_device
    from mcmc_landscape.slices import evaluate_grid, filter_normalized, pca_plane, plane_through

    out = Path(args.out)
    refuse_nonempty(out, args.force, "pass --force to write into it")
    dev = resolve_device(args.device)
    dtype = getattr(torch, args.dtype) if args.dtype else (torch.float32 if dev.type == "cuda" else torch.float64)
    if args.mode == "pca" and args.source is not None and kind_of(Path(args.source)) == "chains" and args.draw is None:
        _chain_draws(args)
    t0 = time.perf_counter()
    target, theta, labels = resolve(args.source, args, dev, dtype)
    mode = args.mode if args.mode != "auto" else {1: "random", 2: "models", 3: "models"}.get(len(theta), "pca")
    steps, aligned = args.steps, False
    res: dict[str, Any] = {"mode": mode, "labels": labels}
    if mode == "random":
        rng = np.random.default_rng(args.seed)
        origin = theta[0]
        d1 = filter_normalized(origin, target.tensors, rng, args.biases)
        d2 = filter_normalized(origin, target.tensors, rng, args.biases) if args.dims == 2 else None
        a = np.linspace(-args.span, args.span, steps)
        b = a.copy() if d2 is not None else None
        res["points"], res["labels"] = np.zeros((1, 2)), labels[:1]
    elif mode == "models":
        if len(theta) not in (2, 3):
            raise SpecError(f"--mode models needs two or three models, got {len(theta)}; pick them with --chain, "
                            "--draw, --minimum or --bead.")
        if not args.no_align:
            theta, aligned = _align(target, theta)
        origin = theta[0]
        same = np.linalg.norm(theta[1:] - theta[0], axis=1) <= 1e-12 * max(1.0, float(np.linalg.norm(theta[0])))
        if aligned and len(theta) == 2 and same.all():
            log.info("the two models are one point modulo the network's symmetries: the line is flat (no barrier)")
            res["same_point_modulo_symmetry"] = np.array(True)
            d1, d2, coords = np.zeros_like(origin), None, np.zeros((2, 2))
        else:
            d1, d2, coords = plane_through(*theta)
        a = _axis(0.0, float(coords[:, 0].max()), args.span * 0.25, steps)
        b = _axis(float(coords[:, 1].min()), float(coords[:, 1].max()), args.span * 0.25, steps) \
            if d2 is not None else None
        if b is not None and coords[:, 1].max() - coords[:, 1].min() < 1e-9:
            b = np.linspace(-1, 1, steps)
        res["points"] = coords
    else:
        origin, d1, d2, coords, ratio = pca_plane(theta)
        a = _axis(float(coords[:, 0].min()), float(coords[:, 0].max()), args.span * 0.25, steps)
        b = _axis(float(coords[:, 1].min()), float(coords[:, 1].max()), args.span * 0.25, steps)
        res["points"], res["explained_variance_ratio"] = coords, ratio
    threads = torch.get_num_threads()
    if dev.type == "cpu" and target.p < 1000:
        torch.set_num_threads(1)
    try:
        loss = evaluate_grid(target.loss, origin, d1, a, d2, b, args.chunk, target.dtype, target.device)
    finally:
        torch.set_num_threads(threads)
    res.update(a=a, loss=loss, origin=origin, d1=d1, **({"b": b, "d2": d2} if b is not None else {}))
    seconds = time.perf_counter() - t0
    meta = {"source": str(args.source or args.model), "target": target.description, "mode": mode, "aligned": aligned,
            "grid": list(loss.shape), "device": str(target.device), "seconds": seconds, "seed": args.seed,
            "biases": args.biases if mode == "random" else None}
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"slice.{args.format}"
    _write(data, res, meta)
    _plot(out / "slice.png", res, f"{mode} slice of {target.description}")
    if not args.quiet:
        finite = loss[np.isfinite(loss)]
        print(f"{mode} slice, grid {' × '.join(map(str, loss.shape))}{', models aligned' if aligned else ''}: loss "
              f"{finite.min():.6g} to {finite.max():.6g}; {len(loss.ravel()) / seconds:,.0f} models/s")
        print(f"wrote {data} and {out / 'slice.png'} in {seconds:.1f} s")
    return 0
