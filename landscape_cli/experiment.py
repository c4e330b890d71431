"""``landscape experiment``: the invariance experiment for any transforms of the data, with a generated REPORT.md."""

from __future__ import annotations

import argparse

from .cluster import add_cluster_arguments
from .common import refuse_nonempty
from .study import add_study_arguments, study_values


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.description = ("Sample the landscape of the data and of each transform of it, diagnose, analyse, and test the "
                     "theory's prediction (a rotation or reflection is absorbed by the first layer; scale, shear and "
                     "translation up to the box; label permutation and noise are not symmetries).")
    add_study_arguments(r, "skip the two control runs (another seed; relabelled)")
    r.add_argument("--transform", "-t", action="append", metavar="SPEC",
                   help="a transform of the data, repeatable: rotate:DEG, reflect:x|y, scale:S, translate:DX,DY, "
                        "shear:K, permute-labels[@SEED], noise:SIGMA[@SEED] (default: one of each)")
    r.add_argument("--data", help="the reference data: points10 or a CSV x1,...,xd,label (default points10)")
    add_cluster_arguments(r)


def run(args: argparse.Namespace) -> int:
    from analysis.experiment import ExperimentSettings, run_experiment
    from mcmc_landscape.data.transforms import parse_transform
    from mcmc_landscape.models.nets import parse_arch

    refuse_nonempty(args.out, args.force or args.reuse, "pass --reuse to continue it or --force")
    values = study_values(args, ExperimentSettings)
    if args.data is not None:
        values["data"] = args.data
    if args.transform:
        values["transforms"] = list(args.transform)
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
