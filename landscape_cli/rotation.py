"""``landscape rotation``: the report's rotation experiment end to end, with a generated REPORT.md."""

from __future__ import annotations

import argparse
import math

from mcmc_landscape.errors import SpecError

from .common import positive_int, refuse_nonempty
from .study import add_study_arguments, study_values


def add_arguments(r: argparse.ArgumentParser) -> None:
    add_study_arguments(r, "skip the relabelled control run")
    r.add_argument("--angles", help="comma-separated degrees (default 0,120,240)")
    r.add_argument("--graph", action="store_true",
                   help="add the DSS connectivity graph of each run's good minima to the report (dss minima)")
    r.add_argument("--graph-levels", default="0.1,0.05,0.02", help="levels for --graph (default 0.1,0.05,0.02)")
    r.add_argument("--graph-count", type=positive_int, default=12, help="minima per run for --graph (default 12)")


def run(args: argparse.Namespace) -> int:
    from analysis.rotation import RotationSettings, run_rotation

    refuse_nonempty(args.out, args.force or args.reuse, "pass --reuse to continue it or --force")
    values = study_values(args, RotationSettings)
    if args.angles is not None:
        try:
            values["angles"] = [float(a) for a in args.angles.split(",")]
        except ValueError:
            raise SpecError(f"--angles {args.angles!r} is not a comma-separated list of degrees.") from None
    from mcmc_landscape.models.nets import parse_arch

    settings = RotationSettings(**values)
    parse_arch(settings.arch)
    if args.graph:
        try:
            levels = sorted((float(x) for x in args.graph_levels.split(",")), reverse=True)
        except ValueError:
            raise SpecError(f"--graph-levels {args.graph_levels!r} is not a comma-separated list of numbers.") from None
        if not all(math.isfinite(x) and x > 0 for x in levels):
            raise SpecError(f"--graph-levels {args.graph_levels!r} must be positive numbers.")
    result = run_rotation(settings, args.out, reuse=args.reuse, quiet=args.quiet)
    if args.graph:
        from .minima import rotation_graphs

        section = rotation_graphs(args.out, list(result["runs"]), levels, args.graph_count, settings.seed)
        with open(args.out / "REPORT.md", "a") as fh:
            fh.write(section)
    print(f"rotation experiment done in {result['seconds']:.0f} s; report: {args.out / 'REPORT.md'}")
    return 0
