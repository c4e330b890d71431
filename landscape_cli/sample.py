"""``landscape sample``: draw θ from exp(-U/T) on [-L, L]^p into an HDF5 chain file (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import SpecError
from mcmc_landscape.sampling import RUN_KEYS, SAMPLE_DEFAULTS

from .common import finite_float, nonneg_int, positive_float, positive_int


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.description = ("Sample exp(-U(θ)/T) on the box [-L, L]^p for an MLP classifier. Flags left out take the "
                     "defaults shown, or the stored values when resuming.")
    d = SAMPLE_DEFAULTS
    s.add_argument("--arch", help=f"hidden widths, e.g. '2,2' or '10,10,10' (default {d['arch']})")
    s.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], help="hidden activation (default relu)")
    s.add_argument("--data", help="'points10' (the report's 10-point set) or a CSV x1,...,xd,label (default points10)")
    s.add_argument("--angle", type=finite_float, help="rotate the 2-D data by this many degrees (default 0)")
    s.add_argument("--temperature", "-T", type=positive_float, help="temperature T (default 1)")
    s.add_argument("--box", "-L", type=positive_float, help="box half-width L (default 10)")
    s.add_argument("--sampler", choices=["rw", "hmc", "emcee", "pt"],
                   help="rw: Numba random-walk Metropolis (default); hmc: PyTorch HMC, all chains in one batch; "
                        "emcee: emcee's ensemble (stretch move) as a baseline, walkers = chains (default 36); "
                        "pt: replica exchange, a ladder of --temps random walks per chain (rung 0 is the run)")
    s.add_argument("--chains", type=positive_int, help=f"number of chains (default {d['chains']})")
    s.add_argument("--draws", type=positive_int,
                   help=f"kept draws per chain; with --resume, the new total (default {d['draws']})")
    s.add_argument("--warmup", type=nonneg_int, help=f"adaptation steps before any draw is kept (default {d['warmup']})")
    s.add_argument("--thin", type=positive_int, help="keep every n-th step (default 1)")
    s.add_argument("--target-accept", type=positive_float,
                   help="target acceptance during warm-up (default 0.234 for rw, 0.8 for hmc)")
    s.add_argument("--initial-step", type=positive_float, help="initial step size (default 0.1 rw, 0.05 hmc)")
    s.add_argument("--leapfrog", type=positive_int, help="hmc: leapfrog steps per iteration (default 16)")
    s.add_argument("--jitter", action="store_const", const=True,
                   help="hmc: draw the number of leapfrog steps afresh each iteration")
    s.add_argument("--stretch", type=positive_float, help="emcee: scale a of the stretch move (default 2)")
    s.add_argument("--temps", type=positive_int, help="pt: rungs of the temperature ladder per chain (default 5)")
    s.add_argument("--t-max", type=positive_float, help="pt: hottest rung's temperature in units of T (default 20)")
    s.add_argument("--device", default="auto", help="hmc: auto (CUDA if present), cpu or cuda (default auto)")
    s.add_argument("--dtype", choices=["float32", "float64"], help="hmc: floating-point type (default float64)")
    s.add_argument("--seed", type=nonneg_int, help="random seed (default 0)")
    s.add_argument("--out", "-o", type=Path, help="chain file to create")
    s.add_argument("--run", help="name of the run inside the file (default: the file's stem)")
    s.add_argument("--resume", type=Path, metavar="FILE", help="continue the run stored in FILE")
    s.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    s.add_argument("--block-evals", type=positive_int, default=2_000_000,
                   help="energy evaluations per committed block (default 2e6: about a second)")



def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in RUN_KEYS if getattr(args, k, None) is not None}


def run(args: argparse.Namespace) -> int:
    from mcmc_landscape.sampling import resume_run, start_run

    if args.resume is not None and args.out is not None and Path(args.out) != Path(args.resume):
        raise SpecError("give either --out (a new run) or --resume (an existing one), not both.")
    if args.resume is None and args.out is None:
        raise SpecError("say where to write the chains with --out FILE (or continue a run with --resume FILE).")
    explicit = _explicit(args)
    if args.resume is not None:
        job = resume_run(args.resume, explicit, args.draws, args.run, args.device)
    else:
        if args.draws is not None:
            explicit["draws"] = args.draws
        job = start_run(explicit, args.out, args.run, args.force, args.device)
    job.run(block_evals=args.block_evals, quiet=args.quiet)
    return 0
