"""The census's Python API: quench a chain file's draws, tell the minima apart modulo symmetry, say what kind each is,
estimate the unseen, and write REPORT.md and census.json.

Floor 2 (``analysis``): it uses the core (store, quench, symmetry, Hessian) and :mod:`analysis.census`. Barriers come
from the caller as a function (``barriers(energy, starts, energies, pairs, ends, box, device) -> rows``), so this module
never imports ``dss``; the front door (``landscape census``) passes ``dss.barriers`` in.

Invariance by construction: every draw is quenched from :func:`mcmc_landscape.models.symmetry.quench_start` (signs, ReLU
scales balanced inside the box, units sorted), so symmetric copies of a draw share one start and one end point; end
points are one minimum when their energies and their functions on a probe set (each training point's loss; optionally
class probabilities on a grid) agree, as connected components (:func:`analysis.census.cluster_minima`).
Quench batches are written one file each (atomically) under ``DIR/quench/``, so a killed census resumes from the last
batch written; a rerun with other settings is refused unless ``force``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.nets import mlp_logits, mlp_probabilities

from .invariance import grid_points

log = logging.getLogger("landscape")

SETTINGS_FILE = "census_settings.json"
#: How the quench starts are made from the draws (recorded, so batches quenched otherwise are never reused).
START_RULE = "quench_start: canonical signs, balanced ReLU scales in the box, sorted units"
BarrierFn = Callable[..., list]


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
    """One quench batch as a pure task (``--cluster``): it reads its draws from the chain file itself (and makes their
    quench starts), writes its own batch file (atomically; a batch already written is not redone) and returns a
    small summary."""
    import torch

    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.optimize import mlp_objective, resolve_device

    target = Path(batch_file)
    if target.exists():
        return {"batch_file": batch_file, "reused": True}
    t0 = time.perf_counter()
    from mcmc_landscape.models.symmetry import quench_start

    cfg, x, y, theta, _ = pick_draws(Path(file), run, count, discard)
    widths = cfg["widths"]
    spec = MLPSpec.from_widths(widths, cfg["activation"])
    theta = sorted_starts(quench_start(theta, spec, float(cfg["box"])))[0]
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


def sorted_starts(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The quench starts in lexicographic order, and the order: the quench's batches then hold the same starts
    whatever the order of the draws (a row's floating-point path can depend on its batch-mates, and the quench is
    chaotic along flat valleys), so shuffled draws quench bit for bit alike."""
    order = np.lexsort(starts.T[::-1]) if len(starts) else np.zeros(0, dtype=int)
    return starts[order], order


def function_on_probes(theta: np.ndarray, spec: Any, x: np.ndarray, y: np.ndarray, grid: int = 0) -> np.ndarray:
    """What two end points must share to be one minimum: each training point's loss (what U sees of the network),
    and with ``grid`` > 1 the class probabilities on a grid around the data (dead units silenced first). Every
    symmetry leaves both unchanged. The grid is off by default: it tells apart points of one flat manifold of equal U
    (a unit alive off the data, a direction the training points do not see), which are one minimum of U."""
    from mcmc_landscape.models.symmetry import silence_dead_units

    parts = [point_losses(theta, spec, x, y)]
    g = grid_points(x, grid)
    if len(g):
        parts.append(mlp_probabilities(silence_dead_units(theta, spec, x), spec, g).reshape(len(theta), -1))
    return np.hstack(parts)


def run_census(file: str | Path, out: str | Path, count: int = 1000, run: str | None = None, discard: int = 0,
               tol: float = 1e-6, max_iter: int = 2000, batch: int = 2000, theta_tol: float = 1e-3,
               energy_tol: float = 1e-5, output_tol: float = 1e-3, neighbours: int = 3, max_barrier_minima: int = 40,
               device: str = "auto", seed: int = 0, force: bool = False, quiet: bool = True,
               barriers: BarrierFn | None = None, barrier_settings: dict[str, Any] | None = None,
               theta_only_max: int = 300, probe_grid: int = 0,
               run_tasks: Any = None) -> dict[str, Any]:
    """The census of ``file``'s minima, written to ``out`` (REPORT.md, census.json, figures, graphs); returns it.
    ``barriers``: the function that finds barrier rows between pairs of minima (none: no barriers, a tree of
    separate roots). ``run_tasks`` (see :mod:`landscape_cli.cluster`): the quench batches as tasks, e.g. on a Dask
    cluster."""
    import torch

    from analysis.census import (
        basin_frequency,
        census_report,
        cluster_minima,
        disconnectivity_tree,
        minima_graph,
        plot_disconnectivity,
        plot_flatness,
        plot_saturation,
        saturation_curve,
        write_tree,
    )
    from analysis.completeness import chao1, good_turing_new
    from mcmc_landscape.hessian import hessian_spectrum
    from mcmc_landscape.minimum_kind import describe_kind, minimum_kind
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.models.symmetry import (
        aligned_distance,
        dead_units,
        function_form,
        orbit_tangent,
        quench_start,
        symmetric_copies,
    )
    from mcmc_landscape.optimize import classify, mlp_objective, resolve_device

    t_start = time.perf_counter()
    file, out = Path(file), Path(out)
    dev = resolve_device(device)
    settings = {"file": str(file.resolve()), "run": run, "count": count, "discard": discard, "tol": tol,
                "max_iter": max_iter, "batch": batch, "start": START_RULE}
    cluster_settings = {"theta_tol": theta_tol, "energy_tol": energy_tol, "output_tol": output_tol,
                        "probe_grid": probe_grid}
    _prepare_out(out, settings, force)
    cfg, x, y, draws, where = pick_draws(file, run, count, discard)
    if "model" in cfg:
        raise SpecError(f"{str(file)!r} is a run of the zoo model {cfg['model']}; `landscape census` takes MLP runs, "
                        "use analysis.census_zoo.run_zoo_census (or bench/census.py --model) for it.")
    widths = cfg["widths"]
    spec = MLPSpec.from_widths(widths, cfg["activation"])
    box = float(cfg["box"])
    theta0 = quench_start(draws, spec, box)
    threads = torch.get_num_threads()
    if dev.type == "cpu" and spec.n_params < 1000:
        torch.set_num_threads(1)          # tiny tensors: one thread beats the wake-up of several
    try:
        energy, fg = mlp_objective(spec, x, y, dev)
        starts, order = sorted_starts(theta0)
        q_sorted = _quench_batches(fg, starts, box, out, batch, tol, max_iter, dev, quiet, run_tasks,
                                   (str(file), run, count, discard))
        q = {}
        for key, val in q_sorted.items():                 # back to the order of the draws
            q[key] = np.empty_like(val)
            q[key][order] = val
        spectra = hessian_spectrum(energy, q["theta"], q["active"], device=dev)
        kinds = [classify(s, bool(c), int(a.sum())) for s, c, a in zip(spectra, q["converged"], q["active"],
                                                                         strict=True)]
        kind = np.array([k.kind for k in kinds])
        is_min = np.flatnonzero(kind == "minimum")
        n_data = len(y)
        feats = function_form(q["theta"][is_min], spec, x)
        outputs = function_on_probes(q["theta"][is_min], spec, x, y, probe_grid)   # invariant under every symmetry
        dist = lambda a, b: aligned_distance(a, b, spec)  # noqa: E731
        labels_min, reps_min = cluster_minima(feats, q["energy"][is_min], theta_tol, energy_tol, dist, outputs,
                                              output_tol)
        reps_theta = None                                           # the θ criterion alone, for comparison (costly)
        if len(is_min) <= theta_only_max:
            _, reps_theta = cluster_minima(feats, q["energy"][is_min], theta_tol, energy_tol, dist)
        _, reps_euclid = cluster_minima(q["theta"][is_min], q["energy"][is_min], theta_tol, energy_tol)
        labels = -np.ones(len(kind), dtype=int)
        labels[is_min] = labels_min
        n_q = len(kind)
        rep_rows = is_min[reps_min]
        rep_theta = q["theta"][rep_rows]
        logits_ok = (logits(rep_theta, spec, x).argmax(-1) == np.asarray(y)[None]).mean(axis=1)
        dead = sum(m.sum(axis=1) for m in dead_units(rep_theta, spec, x)) if len(rep_theta) else []
        minima = []
        for k, row in enumerate(rep_rows):
            members = int((labels == k).sum())
            share, lo, hi = basin_frequency(members, n_q)
            shape = minimum_kind(energy, q["theta"][row], orbit_tangent(q["theta"][row], spec), q["active"][row],
                                 device=dev)
            minima.append({"id": k, "energy": float(q["energy"][row]), "loss": float(q["energy"][row]) / n_data,
                           "train_accuracy": float(logits_ok[k]), "frequency": share, "frequency_low": lo,
                           "frequency_high": hi, "members": members,
                           "copies": symmetric_copies(feats[reps_min[k]], spec), "dead_units": int(dead[k]),
                           "hessian": kinds[row].to_dict(), "shape": shape, "kind": describe_kind(shape),
                           "theta": q["theta"][row].tolist(),
                           "example_draw": {"chain": int(where[row, 0]), "draw": int(where[row, 1])}})
        # barriers among the lowest distinct minima
        nb = min(len(minima), max_barrier_minima)
        dmat = np.zeros((nb, nb))
        for i in range(nb):
            for j in range(i + 1, nb):
                dmat[i, j] = dmat[j, i] = aligned_distance(feats[reps_min[i]], feats[reps_min[j]], spec)
        pairs = barrier_pairs(dmat, neighbours) if barriers is not None else []
        starts, ends = path_ends(rep_theta[:nb], pairs, spec)
        rows = barriers(energy, starts, np.array([m["energy"] for m in minima[:nb]]), pairs, ends, box, dev) \
            if pairs else []
    finally:
        torch.set_num_threads(threads)
    for r in rows:
        r.pop("saddle", None)
    energies = np.array([m["energy"] for m in minima[:nb]])
    tree = disconnectivity_tree(energies, rows)
    graph = minima_graph(energies, rows)
    write_tree(tree, graph, out)
    if len(energies):
        plot_disconnectivity(tree, out / "disconnectivity.png", f"{spec.describe()}: {nb} lowest minima", "U (energy)")
    sat = saturation_curve(labels, seed=seed)
    plot_saturation(sat, out / "saturation.png")
    plot_flatness(minima, out / "flatness.png")
    tail = sat["distinct_mean"][-1] - sat["distinct_mean"][len(sat["distinct_mean"]) // 2] if sat["quenched"] else 0
    verdict = ("The mean curve is flat over the second half of the draws: the census looks complete for basins of "
               "this frequency." if tail < 0.5 else
               f"The mean curve still rises by {tail:.1f} over the second half: rarer minima remain; quench more draws.")
    saddles: dict[str, int] = {}
    for k in kinds:
        if k.kind == "saddle":
            saddles[str(k.index)] = saddles.get(str(k.index), 0) + 1
    census = {"file": str(file), "model": spec.describe(), "box": box, "n_data": n_data,
              "n_probes": n_data + len(grid_points(x, probe_grid)),
              "selection": f"{n_q} draws evenly over time, chains interleaved, after discarding {discard}",
              "n_quenched": n_q, "n_minima": int(len(is_min)), "n_distinct": len(minima),
              "n_distinct_euclidean": int(len(reps_euclid)),
              "n_distinct_theta_only": None if reps_theta is None else int(len(reps_theta)),
              "kinds": {k: int((kind == k).sum()) for k in ("minimum", "saddle", "not_converged")},
              "saddles": saddles, "n_stalled": int(q["stalled"].sum()),
              "settings": {**settings, **cluster_settings, "neighbours": neighbours,
                           "max_barrier_minima": max_barrier_minima, "device": str(dev),
                           "barriers": barrier_settings or {}},
              "minima": minima, "barriers": rows, "pairs_rule": "all pairs" if nb <= 8 else
              f"each of the {nb} lowest minima with its {neighbours} nearest modulo symmetry",
              "saturation": sat, "saturation_verdict": verdict, "labels": labels.tolist(),
              "completeness": {"chao1": chao1(labels), "p_new_minimum": good_turing_new(labels, n_q)},
              "group_order_note": "copies = distinct networks under hidden-unit permutations (and sign flips for "
                                  "tanh/sigmoid); positive ReLU rescalings are a continuous family, not counted"}
    census["seconds"] = time.perf_counter() - t_start
    _write_atomic(out / "census.json", json.dumps(census, indent=1, default=float))
    _write_atomic(out / "REPORT.md", census_report(census))
    return census


def point_losses(theta: np.ndarray, spec: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each training point's loss (n, points) for each row of θ: what the energy sees of the network."""
    z = logits(theta, spec, x)
    m = z.max(axis=-1, keepdims=True)
    logp = z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))
    return -np.take_along_axis(logp, np.broadcast_to(np.asarray(y, int)[None, :, None], (len(z), len(y), 1)),
                               axis=-1)[..., 0]


#: The network's outputs (n, points, classes) on ``x`` for each row of θ: the core's one plain forward pass.
logits = mlp_logits
