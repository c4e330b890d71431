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
                        "shear:K, permute-labels[@SEED], flip-labels:K[@SEED], swap-classes, noise:SIGMA[@SEED] "
                        "(default: rotate:120, reflect:x, scale:0.5, translate:0.2,0, shear:0.3, permute-labels, "
                        "noise:0.05)")
    r.add_argument("--data", help="the reference data: points10 or a CSV x1,...,xd,label (default points10)")
    r.add_argument("--dose-response", action="store_true",
                   help="add the sampled dose-response controls, one run each: noise:0.02,0.05,0.1 and "
                        "flip-labels:1,2,5 (predicted different, by more as the dose grows)")
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
    if args.dose_response:
        values["dose_response"] = True
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
