"""``landscape census FILE --out DIR``: every local minimum reached from a chain file's draws, counted modulo symmetry,
with basin frequencies, barriers and the disconnectivity graph.

The front door joins the floors with plain arrays: the core quenches (``mcmc_landscape.optimize``) and knows the
symmetries, ``dss.barriers`` finds paths and saddles, ``analysis.census`` clusters, counts, draws and reports.
Quench batches are written one file each (atomically) under ``DIR/quench/``, so a killed census resumes from the last
batch written; a rerun with other settings is refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.errors import SpecError

from .cluster import add_cluster_arguments
from .common import nonneg_int, positive_float, positive_int

log = logging.getLogger("landscape")

SETTINGS_FILE = "census_settings.json"


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.description = ("Quench draws of a chain file to local minima, count the distinct minima modulo the network's "
                     "symmetries, estimate barriers between them, and draw the disconnectivity graph (REPORT.md, "
                     "census.json).")
    s.add_argument("file", type=Path, help="chain file written by `landscape sample`")
    s.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    s.add_argument("--count", type=positive_int, default=1000, help="draws to quench, spread over chains and time "
                   "(default 1000)")
    s.add_argument("--run", help="run inside the file (default: the only one)")
    s.add_argument("--discard", type=nonneg_int, default=0, help="draws per chain to skip at the start (default 0)")
    s.add_argument("--tol", type=positive_float, default=1e-6, help="‖projected ∇U‖ at which a quench has converged "
                   "(default 1e-6)")
    s.add_argument("--max-iter", type=positive_int, default=2000, help="L-BFGS iterations per draw (default 2000)")
    s.add_argument("--batch", type=positive_int, default=2000, help="draws per quench batch (default 2000)")
    s.add_argument("--theta-tol", type=positive_float, default=1e-3,
                   help="two minima are one if their aligned canonical forms are this close, relative (default 1e-3)")
    s.add_argument("--energy-tol", type=positive_float, default=1e-5,
                   help="... and their energies this close, relative (default 1e-5)")
    s.add_argument("--output-tol", type=positive_float, default=1e-3,
                   help="... or their losses on every training point this close, relative (default 1e-3)")
    s.add_argument("--neighbours", type=nonneg_int, default=3,
                   help="barriers from each minimum to its nearest n others (all pairs up to 8 minima; default 3)")
    s.add_argument("--max-barrier-minima", type=nonneg_int, default=40,
                   help="barriers among the lowest this many distinct minima only (default 40)")
    s.add_argument("--path-steps", type=positive_int, default=1500,
                   help="string-method iterations per barrier path (default 1500)")
    s.add_argument("--climb-steps", type=positive_int, default=3000,
                   help="climbing-image iterations toward each saddle (default 3000)")
    s.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda (default auto)")
    s.add_argument("--seed", type=nonneg_int, default=0, help="seed of the saturation curve's random orders")
    s.add_argument("--force", action="store_true", help="write into a non-empty --out, discarding a census there")
    add_cluster_arguments(s)


def run(args: argparse.Namespace) -> int:
    from .cluster import task_runner

    with task_runner(args) as run_tasks:  # quench batches as tasks with --cluster
        c = _run(args, run_tasks if args.cluster is not None else None)
    print(f"{c['n_quenched']} draws quenched: {c['kinds']}; {c['n_distinct']} distinct minima modulo symmetry "
          f"(Euclidean clustering: {c['n_distinct_euclidean']}); {len(c['barriers'])} barriers; "
          f"report {Path(args.out) / 'REPORT.md'}")
    return 0


def _run(args: argparse.Namespace, run_tasks: Any) -> dict[str, Any]:
    from dss.barriers import BarrierSettings

    return run_census(args.file, args.out, count=args.count, run=args.run, discard=args.discard, tol=args.tol,
                      max_iter=args.max_iter, batch=args.batch, theta_tol=args.theta_tol, energy_tol=args.energy_tol,
                      output_tol=args.output_tol, neighbours=args.neighbours,
                      max_barrier_minima=args.max_barrier_minima, device=args.device, seed=args.seed,
                      force=args.force, quiet=args.quiet,
                      barrier_settings=BarrierSettings(steps=args.path_steps, climb_steps=args.climb_steps),
                      run_tasks=run_tasks)


def pick_draws(path: Path, run: str | None, count: int, discard: int) -> tuple[dict[str, Any], np.ndarray,
                                                                                 np.ndarray, np.ndarray, np.ndarray]:
    """(config, x, y, θ (count, p), (chain, draw) of each) for ``count`` draws spread evenly over time, chains
    interleaved."""
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(path, run) as reader:
        cfg = reader.config
        x, y = reader.extra("data/x"), reader.extra("data/y")
        first = min(discard, reader.committed_draws)
        chains, draws = reader.n_chains, reader.committed_draws - first
        total = chains * draws
        if total == 0:
            raise SpecError(f"{str(path)!r} has no draws after discarding {discard}; sample longer or lower --discard.")
        count = min(count, total)
        flat = np.unique(np.linspace(0, total - 1, count).round().astype(np.int64))   # time-major, chains interleaved
        draw, chain = flat // chains + first, flat % chains
        theta = np.empty((len(flat), reader.n_params))
        lo, hi = int(draw.min()), int(draw.max()) + 1
        step = 4096
        for start in range(lo, hi, step):
            sel = (draw >= start) & (draw < start + step)
            if sel.any():
                block = reader.read_block("theta", start, min(start + step, hi))
                theta[sel] = block[chain[sel], draw[sel] - start]
    return cfg, x, y, theta, np.stack([chain, draw], axis=1)


def _prepare_out(out: Path, settings: dict[str, Any], force: bool) -> None:
    """A census folder holds its settings; the same settings resume, others need --force (which starts afresh)."""
    out.mkdir(parents=True, exist_ok=True)
    stored = out / SETTINGS_FILE
    if stored.exists() and json.loads(stored.read_text()) == settings:
        return
    if any(out.iterdir()) and not force:
        what = "a census with other settings" if stored.exists() else "other files"
        raise SpecError(f"output folder {str(out)!r} holds {what}; pass --force to start the census afresh there.")
    shutil.rmtree(out / "quench", ignore_errors=True)
    _write_atomic(stored, json.dumps(settings, indent=1))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _quench_one(fg: Any, theta: np.ndarray, box: float, file: Path, tol: float, max_iter: int, device: Any) -> dict:
    """Quench one batch and save it atomically as ``file``."""
    from mcmc_landscape.optimize import quench

    r = quench(fg, theta, box=box, tol=tol, max_iter=max_iter, device=device)
    part = {"theta": r.theta, "energy": r.energy, "grad_norm": r.grad_norm, "converged": r.converged,
            "iterations": r.iterations, "active": r.active, "stalled": r.stalled}
    tmp = file.with_name(file.stem + ".tmp.npz")
    np.savez(tmp, **part)
    os.replace(tmp, file)
    return part


def quench_task(file: str, run: str | None, count: int, discard: int, start: int, stop: int, box: float, tol: float,
                max_iter: int, device: str, batch_file: str) -> dict[str, Any]:
    """One quench batch as a pure task (``--cluster``): it reads its draws from the chain file itself, writes its own
    batch file (atomically; a batch already written is not redone) and returns a small summary."""
    import torch

    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.optimize import mlp_objective, resolve_device

    target = Path(batch_file)
    if target.exists():
        return {"batch_file": batch_file, "reused": True}
    t0 = time.perf_counter()
    cfg, x, y, theta, _ = pick_draws(Path(file), run, count, discard)
    widths = cfg["widths"]
    spec = MLPSpec.from_widths(widths, cfg["activation"])
    dev = resolve_device(device)
    if dev.type == "cpu" and spec.n_params < 1000:
        torch.set_num_threads(1)
    _, fg = mlp_objective(spec, x, y, dev)
    part = _quench_one(fg, theta[start:stop], box, target, tol, max_iter, dev)
    return {"batch_file": batch_file, "reused": False, "converged": int(part["converged"].sum()),
            "seconds": time.perf_counter() - t0}


def _quench_batches(fg: Any, theta: np.ndarray, box: float, out: Path, batch: int, tol: float, max_iter: int,
                    device: Any, quiet: bool, run_tasks: Any = None, source: tuple | None = None) -> dict[str, np.ndarray]:
    """Quench in batches, each saved as ``quench/batch_XXXXX.npz`` (atomic); batches already there are read back.
    With ``run_tasks`` the missing batches go out as :func:`quench_task`s (``source``: the chain file, run, count and
    discard the draws were picked with, so each task reads its own)."""
    qdir = out / "quench"
    qdir.mkdir(exist_ok=True)
    starts = list(range(0, len(theta), batch))
    files = [qdir / f"batch_{b:05d}.npz" for b in range(len(starts))]
    if run_tasks is not None:
        items = [(*source, start, min(start + batch, len(theta)), box, tol, max_iter, str(device), str(f))
                 for start, f in zip(starts, files, strict=True) if not f.exists()]
        for done in run_tasks(quench_task, items):
            if not quiet and not done["reused"]:
                log.info("quench batch %s: %d converged, %.1f s", Path(done["batch_file"]).name, done["converged"],
                         done["seconds"])
    parts = []
    for start, file in zip(starts, files, strict=True):
        if file.exists():
            with np.load(file) as z:
                parts.append({k: z[k] for k in z.files})
            continue
        t0 = time.perf_counter()
        part = _quench_one(fg, theta[start : start + batch], box, file, tol, max_iter, device)
        parts.append(part)
        if not quiet:
            log.info("quench batch %s: %d draws, %d converged, %.1f s", file.name, len(part["energy"]),
                     int(part["converged"].sum()), time.perf_counter() - t0)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def barrier_pairs(dist: np.ndarray, neighbours: int, all_below: int = 8) -> list[tuple[int, int]]:
    """All pairs for a few minima, else each minimum with its ``neighbours`` nearest, nearest first."""
    n = len(dist)
    if n <= all_below:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        pairs = sorted({(min(i, int(j)), max(i, int(j))) for i in range(n)
                        for j in np.argsort(dist[i])[1 : neighbours + 1]})
    return sorted(pairs, key=lambda ij: dist[ij])


def path_ends(theta: np.ndarray, pairs: list[tuple[int, int]], spec: Any) -> tuple[np.ndarray, np.ndarray]:
    """Start and end of each pair's path in raw coordinates, the end a symmetric copy of minimum j aligned with
    minimum i (hidden units permuted; for tanh, signs made canonical first). Only permutations and tanh sign flips
    are used, so both stay inside the box."""
    from mcmc_landscape.models.symmetry import align, canonicalize

    base = canonicalize(theta, spec) if spec.activation == "tanh" else np.asarray(theta, dtype=np.float64)
    return base, np.array([align(base[i], base[j], spec) for i, j in pairs])


def run_census(file: str | Path, out: str | Path, count: int = 1000, run: str | None = None, discard: int = 0,
               tol: float = 1e-6, max_iter: int = 2000, batch: int = 2000, theta_tol: float = 1e-3,
               energy_tol: float = 1e-5, output_tol: float = 1e-3, neighbours: int = 3, max_barrier_minima: int = 40,
               device: str = "auto", seed: int = 0, force: bool = False, quiet: bool = True,
               barrier_settings: Any = None, theta_only_max: int = 1000, run_tasks: Any = None) -> dict[str, Any]:
    """The census of ``file``'s minima, written to ``out`` (REPORT.md, census.json, figures, graphs); returns it.
    ``run_tasks`` (see :mod:`landscape_cli.cluster`): the quench batches as tasks, e.g. on a Dask cluster."""
    import torch

    from analysis.census import (
        basin_frequency,
        census_report,
        cluster_minima,
        disconnectivity_tree,
        minima_graph,
        plot_disconnectivity,
        plot_saturation,
        saturation_curve,
        write_tree,
    )
    from dss.barriers import BarrierSettings, barriers
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.models.symmetry import aligned_distance, dead_units, function_form, symmetric_copies
    from mcmc_landscape.optimize import classify, hessian_spectrum, mlp_objective, resolve_device

    t_start = time.perf_counter()
    file, out = Path(file), Path(out)
    dev = resolve_device(device)
    settings = {"file": str(file.resolve()), "run": run, "count": count, "discard": discard, "tol": tol,
                "max_iter": max_iter, "batch": batch}
    cluster_settings = {"theta_tol": theta_tol, "energy_tol": energy_tol, "output_tol": output_tol}
    _prepare_out(out, settings, force)
    cfg, x, y, theta0, where = pick_draws(file, run, count, discard)
    widths = cfg["widths"]
    spec = MLPSpec.from_widths(widths, cfg["activation"])
    box = float(cfg["box"])
    threads = torch.get_num_threads()
    if dev.type == "cpu" and spec.n_params < 1000:
        torch.set_num_threads(1)          # tiny tensors: one thread beats the wake-up of several
    try:
        energy, fg = mlp_objective(spec, x, y, dev)
        q = _quench_batches(fg, theta0, box, out, batch, tol, max_iter, dev, quiet, run_tasks,
                            (str(file), run, count, discard))
        spectra = hessian_spectrum(energy, q["theta"], q["active"], device=dev)
        kinds = [classify(s, bool(c), int(a.sum())) for s, c, a in zip(spectra, q["converged"], q["active"],
                                                                         strict=True)]
        kind = np.array([k.kind for k in kinds])
        is_min = np.flatnonzero(kind == "minimum")
        n_data = len(y)
        feats = function_form(q["theta"][is_min], spec, x)
        outputs = _point_losses(q["theta"][is_min], spec, x, y)       # invariant under every symmetry
        labels_min, reps_min = cluster_minima(feats, q["energy"][is_min], theta_tol, energy_tol,
                                              lambda a, b: aligned_distance(a, b, spec), outputs, output_tol)
        reps_theta = None                                           # the θ criterion alone, for comparison (costly)
        if len(is_min) <= theta_only_max:
            _, reps_theta = cluster_minima(feats, q["energy"][is_min], theta_tol, energy_tol,
                                           lambda a, b: aligned_distance(a, b, spec))
        _, reps_euclid = cluster_minima(q["theta"][is_min], q["energy"][is_min], theta_tol, energy_tol)
        labels = -np.ones(len(kind), dtype=int)
        labels[is_min] = labels_min
        n_q = len(kind)
        rep_rows = is_min[reps_min]
        rep_theta = q["theta"][rep_rows]
        logits_ok = (_logits(rep_theta, spec, x).argmax(-1) == np.asarray(y)[None]).mean(axis=1)
        dead = sum(m.sum(axis=1) for m in dead_units(rep_theta, spec, x)) if len(rep_theta) else []
        minima = []
        for k, row in enumerate(rep_rows):
            members = int((labels == k).sum())
            share, lo, hi = basin_frequency(members, n_q)
            minima.append({"id": k, "energy": float(q["energy"][row]), "loss": float(q["energy"][row]) / n_data,
                           "train_accuracy": float(logits_ok[k]), "frequency": share, "frequency_low": lo,
                           "frequency_high": hi, "members": members,
                           "copies": symmetric_copies(feats[reps_min[k]], spec), "dead_units": int(dead[k]),
                           "hessian": kinds[row].to_dict(), "theta": q["theta"][row].tolist(),
                           "example_draw": {"chain": int(where[row, 0]), "draw": int(where[row, 1])}})
        # barriers among the lowest distinct minima
        nb = min(len(minima), max_barrier_minima)
        dist = np.zeros((nb, nb))
        for i in range(nb):
            for j in range(i + 1, nb):
                dist[i, j] = dist[j, i] = aligned_distance(feats[reps_min[i]], feats[reps_min[j]], spec)
        pairs = barrier_pairs(dist, neighbours)
        starts, ends = path_ends(rep_theta[:nb], pairs, spec)
        bs = barrier_settings or BarrierSettings()
        bs.box = box
        rows = barriers(energy, starts, np.array([m["energy"] for m in minima[:nb]]), pairs, bs, ends,
                        device=dev) if pairs else []
    finally:
        torch.set_num_threads(threads)
    for r in rows:
        r.pop("saddle", None)
    energies = np.array([m["energy"] for m in minima[:nb]])
    tree = disconnectivity_tree(energies, rows)
    graph = minima_graph(energies, rows)
    files = write_tree(tree, graph, out)
    if len(energies):
        files.append(plot_disconnectivity(tree, out / "disconnectivity.png",
                                          f"{spec.describe()}: {nb} lowest minima", "U (energy)"))
    sat = saturation_curve(labels, seed=seed)
    plot_saturation(sat, out / "saturation.png")
    tail = sat["distinct_mean"][-1] - sat["distinct_mean"][len(sat["distinct_mean"]) // 2] if sat["quenched"] else 0
    verdict = ("The mean curve is flat over the second half of the draws: the census looks complete for basins of "
               "this frequency." if tail < 0.5 else
               f"The mean curve still rises by {tail:.1f} over the second half: rarer minima remain; quench more draws.")
    saddles: dict[str, int] = {}
    for k in kinds:
        if k.kind == "saddle":
            saddles[str(k.index)] = saddles.get(str(k.index), 0) + 1
    census = {"file": str(file), "model": spec.describe(), "box": box, "n_data": n_data,
              "selection": f"{n_q} draws evenly over time, chains interleaved, after discarding {discard}",
              "n_quenched": n_q, "n_minima": int(len(is_min)), "n_distinct": len(minima),
              "n_distinct_euclidean": int(len(reps_euclid)),
              "n_distinct_theta_only": None if reps_theta is None else int(len(reps_theta)),
              "kinds": {k: int((kind == k).sum()) for k in ("minimum", "saddle", "not_converged")},
              "saddles": saddles, "n_stalled": int(q["stalled"].sum()),
              "settings": {**settings, **cluster_settings, "neighbours": neighbours,
                           "max_barrier_minima": max_barrier_minima, "device": str(dev), "barriers": bs.to_dict()},
              "minima": minima, "barriers": rows, "pairs_rule": "all pairs" if nb <= 8 else
              f"each of the {nb} lowest minima with its {neighbours} nearest modulo symmetry",
              "saturation": sat, "saturation_verdict": verdict, "labels": labels.tolist(),
              "group_order_note": "copies = distinct networks under hidden-unit permutations (and sign flips for "
                                  "tanh/sigmoid); positive ReLU rescalings are a continuous family, not counted"}
    census["seconds"] = time.perf_counter() - t_start
    _write_atomic(out / "census.json", json.dumps(census, indent=1, default=float))
    _write_atomic(out / "REPORT.md", census_report(census))
    return census


def _point_losses(theta: np.ndarray, spec: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each training point's loss (n, points) for each row of θ: what the energy sees of the network."""
    z = _logits(theta, spec, x)
    m = z.max(axis=-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, np.broadcast_to(np.asarray(y, int)[None, :, None], (len(z), len(y), 1)),
                               axis=-1)[..., 0]


def _logits(theta: np.ndarray, spec: Any, x: np.ndarray) -> np.ndarray:
    """The network's outputs (n, points, classes) on ``x`` for each row of θ."""
    h = np.asarray(x, dtype=np.float64)
    layers = spec.unflatten(theta)
    hs = np.broadcast_to(h, (len(theta), *h.shape))
    for li, (W, b) in enumerate(layers):
        hs = np.einsum("nki,nij->nkj", hs, W) + b[:, None, :]
        if li < len(layers) - 1:
            hs = np.maximum(hs, 0) if spec.activation == "relu" else np.tanh(hs) if spec.activation == "tanh" \
                else 1 / (1 + np.exp(-hs))
    return np.array(hs)
