"""``landscape diagnose``: R-hat, ESS, MCSE, chain-means normality and one verdict for a chain file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mcmc_landscape.errors import SpecError

from .common import nonneg_int, positive_int


def add_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("file", type=Path)
    g.add_argument("--run", help="run inside the file (needed only if it holds several)")
    g.add_argument("--discard", type=nonneg_int, default=0, help="draws per chain to drop first (default 0: "
                   "warm-up draws are never stored)")
    g.add_argument("--thin", type=positive_int, default=1, help="use every n-th draw")
    g.add_argument("--json", action="store_true", help="print the diagnosis as JSON on stdout")
    g.add_argument("--plots", type=Path, help="folder for trace and rank plots (default: FILE without .h5 + "
                   "'_diagnostics')")
    g.add_argument("--no-plots", action="store_true", help="skip the plots")
    g.add_argument("--max-coords", type=positive_int, default=1000,
                   help="diagnose U and at most this many coordinates, drawn at random (seed 0) where the run has "
                        "more (a convnet's 2e5): θ is then read in blocks, never whole (default 1000)")
    g.add_argument("--memory-mb", type=positive_int, default=1024,
                   help="largest block of θ read at once with --max-coords in force, in MB (default 1024)")


def run(args: argparse.Namespace) -> int:
    from mcmc_landscape.diagnostics import diagnose, plot_diagnostics
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(args.file, args.run) as reader:
        if reader.committed_draws - args.discard < 4 * args.thin:
            raise SpecError(f"{str(args.file)!r} holds {reader.committed_draws} draws per chain; after --discard "
                            f"{args.discard} fewer than 4 remain to diagnose.")
        p = reader.n_params
        columns = None
        if p > args.max_coords:
            columns = np.sort(np.random.default_rng(0).choice(p, args.max_coords, replace=False))
            theta = reader.get_coordinates(columns, args.discard, args.thin, args.memory_mb * 2**20)
        else:
            theta = reader.get_chain(args.discard, args.thin)
        energy = reader.get_energy(args.discard, args.thin)
        accepted = reader.get("accepted", args.discard, args.thin)
        state = reader.state()
        config = reader.config
    diag = diagnose(theta, energy, accepted, int(state.get("n_nonfinite", 0).sum()) if "n_nonfinite" in state
                    else 0, discard=args.discard, coordinates=columns, n_params=p)
    plots = []
    if not args.no_plots:
        folder = args.plots or args.file.with_name(args.file.stem + "_diagnostics")
        plots = [str(p) for p in plot_diagnostics(theta, energy, diag, folder)]
    if args.json:
        out = diag.to_dict()
        out.update(file=str(args.file), config=config, plots=plots)
        print(json.dumps(out, indent=1))
        return 0
    d = diag
    scope = f"all {p}" if columns is None else f"{len(columns)} of {p}, at random"
    lines = [
        f"file           {args.file}  ({d.n_chains} chains × {d.n_draws} draws, p = {p})",
        f"energy U       mean {d.energy['mean']:.4g}  R-hat {d.energy['rhat']:.4f}  ESS bulk "
        f"{d.energy['ess_bulk']:.0f} tail {d.energy['ess_tail']:.0f}  MCSE {d.energy['mcse_mean']:.3g}",
        f"θ ({scope})    max R-hat {d.theta_max_rhat:.4f} (θ[{d.theta_worst_rhat_index}])  min ESS bulk "
        f"{d.theta_min_ess_bulk:.0f} tail {d.theta_min_ess_tail:.0f} (θ[{d.theta_min_ess_index}])",
        f"acceptance     mean {d.acceptance_mean:.3f}  min {d.acceptance_min:.3f}  max {d.acceptance_max:.3f};"
        f"  non-finite proposals {d.nonfinite}",
        f"chain means    Shapiro-Wilk min p {d.normality_min_p:.3g}; {d.normality_rejected} of "
        f"{theta.shape[2] + 1} rejected at {d.normality_threshold:.2g}",
    ]
    if plots:
        lines.append(f"plots          {', '.join(plots)}")
    print("\n".join(lines))
    print(d.verdict())
    return 0
