"""``landscape census FILE --out DIR``: every local minimum reached from a chain file's draws, counted modulo symmetry,
with basin frequencies, barriers and the disconnectivity graph.

The front door parses and joins the floors: :mod:`analysis.census_run` runs the census (quench, identity modulo
symmetry, kinds of minima, completeness, report) and calls back for barriers, which ``dss.barriers`` finds
(:func:`make_barriers`); the two floor-2 packages never import each other.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .cluster import add_cluster_arguments
from .common import nonneg_int, positive_float, positive_int

log = logging.getLogger("landscape")


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
    s.add_argument("--tol", type=positive_float, help="‖projected ∇U‖ at which a quench has converged "
                   "(default 1e-6 for an MLP, 1e-4 for a zoo or user model)")
    s.add_argument("--max-iter", type=positive_int, help="L-BFGS iterations per draw (default 2000; 500 for a model)")
    s.add_argument("--batch", type=positive_int, help="draws per quench batch (default 2000; 64 for a model)")
    s.add_argument("--theta-tol", type=positive_float, default=1e-3,
                   help="two minima are one if their aligned canonical forms are this close, relative (default 1e-3)")
    s.add_argument("--energy-tol", type=positive_float, default=1e-5,
                   help="... and their energies this close, relative (default 1e-5)")
    s.add_argument("--output-tol", type=positive_float, default=1e-3,
                   help="... or their losses on every training point this close, relative (default 1e-3)")
    s.add_argument("--probe-grid", type=nonneg_int, default=0,
                   help="also require the same class probabilities on an N×N grid around 2-D data (default 0: off; "
                   "it splits flat manifolds of equal U)")
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
    from mcmc_landscape.storage.store import ChainReader

    from .cluster import task_runner

    with ChainReader(args.file, args.run) as reader:
        model = reader.config.get("model")
    if model is not None:  # a zoo or user model's run: the census of analysis.census_zoo (no barriers)
        return _run_zoo(args)

    with task_runner(args) as run_tasks:  # quench batches as tasks with --cluster
        c = _run(args, run_tasks if args.cluster is not None else None)
    print(f"{c['n_quenched']} draws quenched: {c['kinds']}; {c['n_distinct']} distinct minima modulo symmetry "
          f"(Euclidean clustering: {c['n_distinct_euclidean']}); {len(c['barriers'])} barriers; "
          f"report {Path(args.out) / 'REPORT.md'}")
    return 0


def _run_zoo(args: argparse.Namespace) -> int:
    from analysis.census_zoo import run_zoo_census

    from .common import refuse_nonempty

    refuse_nonempty(args.out, args.force, "pass --force to replace the census there")
    c = run_zoo_census(args.file, args.out, count=args.count, run=args.run, discard=args.discard,
                       tol=args.tol or 1e-4, max_iter=args.max_iter or 500, batch=args.batch or 64,
                       energy_tol=args.energy_tol, output_tol=args.output_tol,
                       device=args.device, seed=args.seed)
    print(f"{c['n_quenched']} draws of {c['model']} quenched, {c['n_converged']} converged; {c['n_distinct']} "
          f"distinct minima by their losses on {c['probe']} probe images; report {Path(args.out) / 'REPORT.md'}")
    return 0


def _run(args: argparse.Namespace, run_tasks: Any) -> dict[str, Any]:
    from dss.barriers import BarrierSettings

    return run_census(args.file, args.out, count=args.count, run=args.run, discard=args.discard,
                      tol=args.tol or 1e-6, max_iter=args.max_iter or 2000, batch=args.batch or 2000,
                      theta_tol=args.theta_tol, energy_tol=args.energy_tol,
                      output_tol=args.output_tol, probe_grid=args.probe_grid, neighbours=args.neighbours,
                      max_barrier_minima=args.max_barrier_minima, device=args.device, seed=args.seed,
                      force=args.force, quiet=args.quiet,
                      barrier_settings=BarrierSettings(steps=args.path_steps, climb_steps=args.climb_steps),
                      run_tasks=run_tasks)


def make_barriers(settings: Any) -> Callable[..., list]:
    """``dss.barriers`` as the plain function the census calls: (energy, starts, energies, pairs, ends, box, device)
    -> barrier rows. The front door joins the floors; ``analysis`` never imports ``dss``."""

    def barriers(energy: Any, starts: np.ndarray, energies: np.ndarray, pairs: list, ends: np.ndarray, box: float,
                 device: Any) -> list:
        from dss.barriers import barriers as dss_barriers

        settings.box = box
        return dss_barriers(energy, starts, energies, pairs, settings, ends, device=device)

    return barriers


def run_census(file: str | Path, out: str | Path, barrier_settings: Any = None, **kwargs: Any) -> dict[str, Any]:
    """:func:`analysis.census_run.run_census` with the barriers of ``dss`` (``barrier_settings``: a
    ``dss.barriers.BarrierSettings``, default settings if none)."""
    from analysis.census_run import run_census as census
    from dss.barriers import BarrierSettings

    bs = barrier_settings or BarrierSettings()
    return census(file, out, barriers=make_barriers(bs), barrier_settings=bs.to_dict(), **kwargs)
