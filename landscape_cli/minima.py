"""``landscape dss minima FILE``: the level-set connectivity graph of a chain file's good minima.

The CLI composes the layers: the core reads the chain file, ``analysis`` canonicalizes for the farthest-point
selection and draws the graph on its own maps, ``dss`` polishes, connects and writes the graph.
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

from .common import refuse_nonempty

log = logging.getLogger("landscape")


def good_draws(path: Path, run: str | None, level: float, discard: int, max_keep: int = 20000,
               seed: int = 0) -> tuple[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(config, x, y, θ, mean loss, flat draw index) of the draws with mean loss U/n < ``level``."""
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(path, run) as reader:
        cfg = reader.config
        x, y = reader.extra("data/x"), reader.extra("data/y")
        n = len(y)
        energy = reader.get_energy(discard)                        # (chains, draws)
        loss = energy / n
        chains, draws = loss.shape
        flat = np.flatnonzero(loss.ravel() < level)
        if len(flat) > max_keep:
            flat = np.sort(np.random.default_rng(seed).choice(flat, max_keep, replace=False))
        theta = np.empty((len(flat), reader.n_params))
        by_chain: dict[int, list[int]] = {}
        for k, f in enumerate(flat):
            by_chain.setdefault(int(f // draws), []).append(k)
        for c, ks in by_chain.items():
            cols = np.array([flat[k] % draws for k in ks]) + min(discard, reader.committed_draws)
            block = reader.read_block("theta", int(cols.min()), int(cols.max()) + 1)[c]
            theta[ks] = block[cols - cols.min()]
    return cfg, x, y, theta, loss.ravel()[flat], flat


def cmd_minima(args: argparse.Namespace) -> int:
    graph = run_minima(args)
    for lv in graph["levels"]:
        print(f"L0 = {lv['l0']:g}: {lv['n_components']} component(s) of sizes {lv['sizes']}; {lv['dss_runs']} DSS runs "
              f"(cap {lv['run_cap']}); normalized edge length mean {lv['normalized_length_mean']:.3f}")
    for s in graph["symmetric_copies"]:
        print(f"L0 = {s['level']:g}: minimum {s['i']} and its symmetric copy: "
              + ("connected" if s["connected"] else f"not connected ({s['reason']})"))
    print(f"{graph['n_minima']} minima in {graph['seconds']:.0f} s; report {args.out / 'REPORT.md'}")
    return 0


def run_minima(args: argparse.Namespace) -> dict[str, Any]:
    """Everything `dss minima` does, printing nothing; returns the graph (also written under ``args.out``)."""
    import torch

    from analysis.graph_plots import fit_maps, plot_graph
    from analysis.pipeline import AnalysisSettings
    from dss.graph import (
        GraphSettings,
        build_graph,
        connect_symmetric,
        farthest_points,
        polish,
        task_from_chain,
        write_graph,
    )
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.models.symmetry import canonicalize

    refuse_nonempty(args.out, args.force, "pass --force to write into it")
    levels = sorted(args.l0, reverse=True)
    t0 = time.perf_counter()
    cfg, x, y, theta, loss, flat = good_draws(args.file, args.run, levels[0], args.discard, seed=args.seed)
    if len(theta) < 2:
        raise SpecError(f"{str(args.file)!r} holds {len(theta)} draw(s) with mean loss below {levels[0]:g}; raise "
                        "the highest --l0 or sample longer.")
    spec = MLPSpec.from_widths(cfg["widths"], cfg["activation"])
    features = theta if args.no_canonicalize else canonicalize(theta, spec)
    picked = farthest_points(features, args.count, start=int(np.argmin(loss)))
    task = task_from_chain(cfg, x, y).to(getattr(args, "device", None) or "auto")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gs = GraphSettings(tuple(levels), max_depth=args.max_depth or 10, tau=args.tau or 1.0,
                       symmetric=args.symmetric, seed=args.seed)
    target = gs.alpha * levels[-1]
    polished, ploss, reached = polish(task, theta[picked], target, gs.polish_steps)
    keep = np.flatnonzero(reached)
    if len(keep) < 2:
        raise SpecError(f"only {len(keep)} of {len(picked)} minima could be polished below α·L0 = {target:.4g}; "
                        "raise the lowest --l0.")
    minima = polished[keep]
    args.out.mkdir(parents=True, exist_ok=True)
    if getattr(args, "cluster", None) is not None:
        graph = _graph_on_cluster(args, task, minima, gs)
    else:
        graph = build_graph(task, minima, gs, args.out, log)
    graph["symmetric_copies"] = connect_symmetric(task, minima, gs, args.out)
    graph["nodes"] = [{"draw": int(flat[picked[k]]), "chain": None, "sampled_loss": float(loss[picked[k]]),
                       "loss": float(ploss[k]), "polish_distance": float(np.linalg.norm(polished[k] - theta[picked[k]]))}
                      for k in keep]
    graph.update(file=str(args.file), selection="canonical" if not args.no_canonicalize else "raw",
                 n_good_draws=int(len(theta)), n_picked=int(len(picked)), n_polish_failed=int(len(picked) - len(keep)),
                 seconds=time.perf_counter() - t0, loss_scale="mean loss U/n (as `landscape analyze --threshold`)")
    files = write_graph(graph, minima, args.out)
    settings = AnalysisSettings(discard=args.discard, threshold=levels[0], seed=args.seed)
    emb, plane = fit_maps(args.file, settings, args.run)
    files += plot_graph(graph, minima, emb, plane, args.out)
    graph["seconds"] = time.perf_counter() - t0
    (args.out / "graph.json").write_text(json.dumps({**graph, "minima": minima.tolist()}, indent=1, default=float))
    (args.out / "REPORT.md").write_text(graph_report(graph, settings.threshold))
    return graph


def _graph_on_cluster(args: argparse.Namespace, task: Any, minima: np.ndarray, gs: Any) -> dict[str, Any]:
    """build_graph with each wave's DSS runs as tasks, one pair each, on --cluster's workers."""
    from dataclasses import asdict

    from dss.graph import build_graph
    from dss.graph_tasks import connect_minima_pair, string_file
    from dss.store import load_string

    from .cluster import task_runner

    minima_file = args.out / "minima_for_tasks.npy"
    np.save(minima_file, minima)
    with task_runner(args) as run_tasks:
        def connect_pairs(batch: list[tuple[int, int]], settings: Any) -> list[Any]:
            items = [(str(args.file), args.run, str(minima_file), str(args.out), i, j, asdict(settings))
                     for i, j in batch]
            paths = {Path(p).name: p for p in run_tasks(connect_minima_pair, items)}  # in completion order
            return [load_string(paths[Path(string_file(settings.l0, i, j)).name])[0] for i, j in batch]

        return build_graph(task, minima, gs, args.out, log, connect_pairs=connect_pairs)


def rotation_graphs(out: Path, names: list[str], levels: list[float], count: int, seed: int) -> str:
    """`landscape rotation --graph`: the graph of every angle's chains, and the section it adds to REPORT.md."""
    lines = ["", "## Connectivity of good minima (DSS graph per run)", "",
             f"{count} minima per run, picked and polished as by `landscape dss minima`; levels "
             f"{', '.join(f'{x:g}' for x in levels)} (mean loss U/n). Each run's own REPORT.md is in `<run>/graph/`.",
             "", "| run | " + " | ".join(f"L0 = {x:g}: components (sizes)" for x in levels) + " | symmetric copies joined |",
             "|---|" + "---|" * len(levels) + "---|"]
    for name in names:
        ns = argparse.Namespace(file=out / name / "chains.h5", l0=levels, count=count, run=None, discard=0,
                                no_canonicalize=False, symmetric=2, max_depth=None, tau=None, seed=seed,
                                out=out / name / "graph", force=True)
        try:
            graph = run_minima(ns)
        except SpecError as exc:
            lines.append(f"| {name} | " + " | ".join("—" for _ in levels) + f" | skipped: {exc} |")
            continue
        cells = [f"{lv['n_components']} ({lv['sizes']})" for lv in graph["levels"]]
        sym = graph["symmetric_copies"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {sum(s['connected'] for s in sym)} of {len(sym)} |")
    return "\n".join(lines) + "\n"


def graph_report(graph: dict[str, Any], threshold: float) -> str:
    """REPORT.md from the numbers of the graph."""
    n = graph["n_minima"]
    lines = [f"# Connectivity of good minima: {graph['file']}", "",
             f"{graph['n_good_draws']} draws have mean loss below {max(lv['l0'] for lv in graph['levels']):g}; "
             f"{graph['n_picked']} were picked by farthest-point selection ({graph['selection']} θ) and polished by "
             f"gradient descent on the sampler's energy; {graph['n_polish_failed']} could not be polished and were "
             f"dropped, leaving N = {n}. Losses are {graph['loss_scale']}. Each edge is a DSS string whose every link "
             f"was certified ≤ τ·L0 (τ = {graph['settings']['tau']}); bead counts include both ends.", "",
             "| L0 | components | sizes | DSS runs (cap 3N−1) | edge normalized length mean / max | failed attempts |",
             "|---|---|---|---|---|---|"]
    for lv in graph["levels"]:
        reasons: dict[str, int] = {}
        for f in lv["failed"]:
            reasons[f["reason"]] = reasons.get(f["reason"], 0) + 1
        lines.append(f"| {lv['l0']:g} | {lv['n_components']} | {lv['sizes']} | {lv['dss_runs']} ({lv['run_cap']}) | "
                     f"{lv['normalized_length_mean']:.3f} / {lv['normalized_length_max']:.3f} | "
                     f"{', '.join(f'{k}: {v}' for k, v in reasons.items()) or 'none'} |")
    lines += [""]
    for lv in graph["levels"]:
        if lv["n_components"] == 1:
            lines.append(f"- L0 = {lv['l0']:g}: all {n} minima are one component — evidence that this level set is "
                         "connected (among these minima).")
        else:
            failed = "; ".join(f"{f['i']}–{f['j']} ({f['reason']}, max {f['failed_links'][0]['max_loss']:.3g})"
                               if f["failed_links"] else f"{f['i']}–{f['j']} ({f['reason']})" for f in lv["failed"][:8])
            lines.append(f"- L0 = {lv['l0']:g}: {lv['n_components']} components; pairs that failed: {failed or 'none'}.")
    sym = graph.get("symmetric_copies", [])
    if sym:
        lines += ["", "## Symmetric copies (two hidden units swapped; for tanh also a sign flip)", "",
                  "| L0 | minimum | outcome | beads | max interpolated loss |", "|---|---|---|---|---|"]
        for s in sym:
            outcome = "connected" if s["connected"] else "not connected: " + s["reason"]
            lines.append(f"| {s['level']:g} | {s['i']} | {outcome} | {s['n_beads']} | {s['max_interpolated_loss']:.4g} |")
    lines += ["", "Figures: `graph_kpca3d.png` (kernel PCA map of `landscape analyze`, refitted on the raw draws with "
              f"its settings and --threshold {threshold:g}) and `graph_plane2d.png` (its plane of good minima). "
              "Numbers: `graph.json`, `graph.graphml`; strings: `strings/`.",
              f"Computed in {graph['seconds']:.0f} s.", ""]
    return "\n".join(lines)
