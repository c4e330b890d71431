"""``landscape sample``: draw θ from exp(-U/T) on [-L, L]^p into an HDF5 chain file (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import SpecError
from mcmc_landscape.runs.config import RUN_KEYS, SAMPLE_DEFAULTS, TUNING_KEYS

from .cluster import add_cluster_arguments
from .common import finite_float, nonneg_int, positive_float, positive_int


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.description = ("Sample exp(-U(θ)/T) on the box [-L, L]^p for an MLP classifier (--arch) or a model of the zoo "
                     "(--model, e.g. mnist-convnet on --data mnist). Flags left out take the defaults shown, or the "
                     "stored values when resuming.")
    d = SAMPLE_DEFAULTS
    s.add_argument("--arch", help=f"hidden widths, e.g. '2,2' or '10,10,10' (default {d['arch']})")
    s.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], help="hidden activation (default relu)")
    s.add_argument("--data", help="'points10' (the report's 10-point set) or a CSV x1,...,xd,label (default points10)")
    s.add_argument("--angle", type=finite_float, help="rotate the 2-D data by this many degrees (default 0)")
    s.add_argument("--temperature", "-T", type=positive_float, help="temperature T (default 1)")
    s.add_argument("--box", "-L", type=positive_float, help="box half-width L (default 10)")
    s.add_argument("--box-transform", metavar="SPEC",
                   help="rw/pt: sample under the box carried back by this transform's parameter map (e.g. scale:0.5): "
                        "the parallelepiped {θ : |M θ| <= L} in place of the box")
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
    s.add_argument("--trajectory", choices=["fixed", "chees"],
                   help="hmc: fixed: --leapfrog steps (default); chees: one length tuned over the chains in warm-up "
                        "(from one step; by default it maximizes the squared jump of U per gradient), Halton-jittered each "
                        "iteration")
    s.add_argument("--stretch", type=positive_float, help="emcee: scale a of the stretch move (default 2)")
    s.add_argument("--temps", type=positive_int, help="pt: rungs of the temperature ladder per chain (default 5)")
    s.add_argument("--t-max", type=positive_float, help="pt: hottest rung's temperature in units of T (default 20)")
    s.add_argument("--device", default="auto",
                   help="hmc and zoo models: auto (CUDA if present), cpu or cuda (default auto)")
    s.add_argument("--dtype", choices=["float32", "float64"],
                   help="hmc and zoo models: floating-point type (default float64; zoo models: float32 on a GPU)")
    s.add_argument("--seed", type=nonneg_int, help="random seed (default 0)")
    s.add_argument("--out", "-o", type=Path, help="chain file to create")
    s.add_argument("--run", help="name of the run inside the file (default: the file's stem)")
    s.add_argument("--resume", type=Path, metavar="FILE", help="continue the run stored in FILE")
    s.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    s.add_argument("--block-evals", type=positive_int,
                   help="energy evaluations per committed block (default: from 2e6, grown until a block takes about a "
                        "second)")
    s.add_argument("--compression", choices=["none", "lzf", "gzip"],
                   help="compression of the stored draws, fixed when the run is created (default none: the fastest; "
                        "gzip: the smallest file)")
    s.add_argument("--shards", type=positive_int,
                   help="split the chains into this many shard files, each one task, joined by the main --out file "
                        "(default: one per worker with --cluster, else none)")
    add_cluster_arguments(s)
    z = s.add_argument_group("zoo models (a convnet on real images instead of an MLP)")
    z.add_argument("--model", metavar="NAME|MODULE:FACTORY",
                   help="sample this model of the zoo (mnist-convnet, cifar10-convnet, small-convnet; U summed over the "
                        "--n-train first training images; --data mnist or cifar10, default by model), or your own: "
                        "package.module:factory (or file.py:factory) returning an nn.Module, with --data FILE.npz "
                        "(arrays x, y); rw and hmc, on --device, float32 by default on a GPU")
    z.add_argument("--width", type=positive_float, help="mnist-convnet/cifar10-convnet: scale of every layer's "
                   "channels and units (default 1; 0.25 gives p = 206,954 on MNIST)")
    z.add_argument("--n-train", type=positive_int, help="training images in U (default 1000)")
    z.add_argument("--data-dir", type=Path, help="folder holding mnist/ or cifar10/ (default $MCMC_LANDSCAPE_DATA, "
                   "else ../shared/data); not needed to resume (the images are stored with the run)")
    z.add_argument("--theta-dtype", choices=["float32", "float64"],
                   help="type θ is stored in (default float32 for zoo models and for MLPs sampled in float32, else "
                        "float64)")
    z.add_argument("--chain-chunk", type=positive_int, help="chains through the model at once (memory; default 32)")
    z.add_argument("--example-chunk", type=positive_int,
                   help="images through the model at once (memory; default 4096 // chain chunk)")


def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in RUN_KEYS if getattr(args, k, None) is not None}


def _tuning(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in TUNING_KEYS if getattr(args, k, None) is not None}


def run(args: argparse.Namespace) -> int:
    from mcmc_landscape.runs.sampling import resume_run, start_run

    if args.resume is not None and args.out is not None and Path(args.out) != Path(args.resume):
        raise SpecError("give either --out (a new run) or --resume (an existing one), not both.")
    if args.resume is None and args.out is None:
        raise SpecError("say where to write the chains with --out FILE (or continue a run with --resume FILE).")
    explicit = _explicit(args)
    if args.cluster is not None or args.shards is not None or _sharded(args.resume, args.run):
        if args.model is not None:
            raise SpecError("--shards and --cluster split MLP runs only; sample a zoo model (--model) in one process.")
        return run_sharded(args, explicit)
    if args.resume is not None:
        job = resume_run(args.resume, explicit, args.draws, args.run, args.device, tuning=_tuning(args))
    else:
        if args.draws is not None:
            explicit["draws"] = args.draws
        job = start_run({**explicit, **_tuning(args)}, args.out, args.run, args.force, args.device,
                        data_dir=args.data_dir, block_evals=args.block_evals)
    job.run(block_evals=args.block_evals, quiet=args.quiet)
    return 0


def _sharded(path: Path | None, run: str | None) -> bool:
    from mcmc_landscape.runs.shards import is_sharded

    return path is not None and path.is_file() and is_sharded(path, run)


def run_sharded(args: argparse.Namespace, explicit: dict[str, Any]) -> int:
    """Shards as tasks (on Dask with --cluster, else one after another here), then the main file joins them."""
    import logging
    import time

    from mcmc_landscape.runs import shards
    from mcmc_landscape.runs.runner import Interrupted

    from .cluster import task_runner

    log = logging.getLogger("landscape")
    t0 = time.perf_counter()
    with task_runner(args) as run_tasks:
        if args.resume is not None:
            run = shards.open_sharded_run(args.resume, explicit, args.draws, args.run, args.shards)
        else:
            if args.draws is not None:
                explicit["draws"] = args.draws
            run = shards.new_sharded_run(explicit, args.out, args.shards, args.run, args.force, args.device,
                                         workers=run_tasks.workers)
        tasks = run.tasks(args.device, args.block_evals)
        new = 0
        try:
            for done in run_tasks(shards.run_shard, tasks, gpu=args.device == "cuda"):
                new += done["new_draws"] * run.shards[done["index"]].chains
                log.info("shard %d of %d: %d draws per chain (%d new) in %.1f s", done["index"] + 1, len(tasks),
                         done["committed_draws"], done["new_draws"], done["seconds"])
        except Interrupted:
            draws = run.join()
            raise Interrupted(f"interrupted with {draws} draws per chain joined in {str(run.main)!r} (each shard keeps "
                              f"its own commits); continue with `landscape sample --resume {run.main}`.") from None
    draws = run.join()
    dt = time.perf_counter() - t0
    log.info("%d shards joined in %s: %d chains × %d draws; %d new draws in %.1f s (%.0f draws/s); next: landscape "
             "diagnose %s", len(run.shards), run.main, run.cfg.chains, draws, new, dt, new / dt if dt > 0 else 0.0,
             run.main)
    return 0
