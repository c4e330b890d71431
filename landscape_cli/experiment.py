"""``landscape experiment``: the invariance experiment for any transforms of the data, with a generated REPORT.md."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import SpecError

from .cluster import add_cluster_arguments
from .common import nonneg_int, positive_float, positive_int, refuse_nonempty


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.description = ("Sample the landscape of the data and of each transform of it, diagnose, analyse, and test the "
                     "theory's prediction (a rotation or reflection is absorbed by the first layer; scale, shear and "
                     "translation up to the box; label permutation and noise are not symmetries).")
    r.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    r.add_argument("--config", type=Path, help="TOML file of settings (flags override it)")
    r.add_argument("--transform", "-t", action="append", metavar="SPEC",
                   help="a transform of the data, repeatable: rotate:DEG, reflect:x|y, scale:S, translate:DX,DY, "
                        "shear:K, permute-labels[@SEED], noise:SIGMA[@SEED] (default: one of each)")
    r.add_argument("--data", help="the reference data: points10 or a CSV x1,...,xd,label (default points10)")
    r.add_argument("--arch", help="hidden widths (default 2,2)")
    r.add_argument("--activation", choices=["relu", "tanh", "sigmoid"])
    r.add_argument("--sampler", choices=["rw", "hmc", "emcee", "pt"], help="default pt (replica exchange)")
    r.add_argument("--chains", type=positive_int)
    r.add_argument("--draws", type=positive_int)
    r.add_argument("--warmup", type=nonneg_int)
    r.add_argument("--thin", type=positive_int)
    r.add_argument("--temps", type=positive_int, help="pt: rungs of the temperature ladder (default 5)")
    r.add_argument("--t-max", type=positive_float, help="pt: hottest rung in units of T (default 20)")
    r.add_argument("--seed", type=nonneg_int)
    r.add_argument("--threshold", type=positive_float, help="good minima: loss below this (default 0.1)")
    r.add_argument("--no-control", action="store_true", help="skip the two control runs (another seed; relabelled)")
    r.add_argument("--reuse", action="store_true", help="keep finished stages in --out and redo only the rest")
    r.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")
    add_cluster_arguments(r)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from analysis.experiment import ExperimentSettings, load_toml, run_experiment
    from mcmc_landscape.nets import parse_arch
    from mcmc_landscape.transforms import parse_transform

    refuse_nonempty(args.out, args.force or args.reuse, "pass --reuse to continue it or --force")
    values: dict[str, Any] = load_toml(args.config) if args.config else {}
    known = {f.name for f in fields(ExperimentSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"unknown setting(s) {', '.join(unknown)} in {str(args.config)!r}; "
                        f"known: {', '.join(sorted(known))}.")
    for key in ("data", "arch", "activation", "sampler", "chains", "draws", "warmup", "thin", "temps", "t_max",
                "seed", "threshold"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.transform:
        values["transforms"] = list(args.transform)
    if args.no_control:
        values["control"] = False
    settings = ExperimentSettings(**values)
    parse_arch(settings.arch)
    for spec in settings.transforms:
        parse_transform(spec)
    from .cluster import task_runner

    with task_runner(args) as run_tasks:  # each run's sampling a task with --cluster; in this process without
        result = run_experiment(settings, args.out, reuse=args.reuse, quiet=args.quiet,
                                run_tasks=run_tasks if args.cluster is not None else None)
    print(f"experiment done in {result['seconds']:.0f} s; report: {args.out / 'REPORT.md'}")
    return 0
