"""The flags and the settings merge that ``landscape experiment`` and ``landscape rotation`` share."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import SpecError

from .common import nonneg_int, positive_float, positive_int

#: Flags that set a field of the settings of the same name (``--t-max`` → ``t_max``) when given.
STUDY_FLAGS = ("arch", "activation", "sampler", "chains", "draws", "warmup", "thin", "temps", "t_max", "seed",
               "threshold")


def add_study_arguments(r: argparse.ArgumentParser, no_control_help: str) -> None:
    """--out and --config, the network, sampler and analysis flags, --no-control, --reuse and --force."""
    r.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    r.add_argument("--config", type=Path, help="TOML file of settings (flags override it)")
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
    r.add_argument("--no-control", action="store_true", help=no_control_help)
    r.add_argument("--transported", action=argparse.BooleanOptionalAction, default=None,
                   help="for each affine map that is not an isometry of the box, also sample the reference data under "
                        "the box carried back (Φ⁻¹(B)), predicted equal everywhere to the run carried back (default: on "
                        "for experiment, off for rotation)")
    r.add_argument("--reuse", action="store_true", help="keep finished stages in --out and redo only the rest")
    r.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")


def study_values(args: argparse.Namespace, settings_class: type) -> dict[str, Any]:
    """The settings of a study: ``--config``'s TOML (unknown keys refused in one sentence), then the flags given."""
    from dataclasses import fields

    from analysis.experiment import load_toml

    values: dict[str, Any] = load_toml(args.config) if args.config else {}
    known = {f.name for f in fields(settings_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"unknown setting(s) {', '.join(unknown)} in {str(args.config)!r}; "
                        f"known: {', '.join(sorted(known))}.")
    for key in STUDY_FLAGS:
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.no_control:
        values["control"] = False
    if args.transported is not None:
        values["transported"] = args.transported
    return values
