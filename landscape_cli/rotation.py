"""``landscape rotation``: the report's rotation experiment end to end, with a generated REPORT.md."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import SpecError

from .common import nonneg_int, positive_float, positive_int, refuse_nonempty


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    r.add_argument("--config", type=Path, help="TOML file of settings (flags override it)")
    r.add_argument("--angles", help="comma-separated degrees (default 0,120,240)")
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
    r.add_argument("--threshold", type=positive_float)
    r.add_argument("--no-control", action="store_true", help="skip the relabelled control run")
    r.add_argument("--graph", action="store_true",
                   help="add the DSS connectivity graph of each run's good minima to the report (dss minima)")
    r.add_argument("--graph-levels", default="0.1,0.05,0.02", help="levels for --graph (default 0.1,0.05,0.02)")
    r.add_argument("--graph-count", type=positive_int, default=12, help="minima per run for --graph (default 12)")
    r.add_argument("--reuse", action="store_true", help="keep finished stages in --out and redo only the rest")
    r.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from analysis.rotation import RotationSettings, load_toml, run_rotation

    refuse_nonempty(args.out, args.force or args.reuse, "pass --reuse to continue it or --force")
    values: dict[str, Any] = load_toml(args.config) if args.config else {}
    known = {f.name for f in fields(RotationSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"unknown setting(s) {', '.join(unknown)} in {str(args.config)!r}; "
                        f"known: {', '.join(sorted(known))}.")
    for key in ("arch", "activation", "sampler", "chains", "draws", "warmup", "thin", "temps", "t_max", "seed",
                "threshold"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.angles is not None:
        try:
            values["angles"] = [float(a) for a in args.angles.split(",")]
        except ValueError:
            raise SpecError(f"--angles {args.angles!r} is not a comma-separated list of degrees.") from None
    if args.no_control:
        values["control"] = False
    from mcmc_landscape.nets import parse_arch

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
