"""The ``landscape`` command: the front door that composes the core, ``analysis`` and ``dss``.

Subcommands import what they need lazily so that ``landscape --help`` stays fast. Errors a user can cause print one
sentence and exit with status 2; Ctrl-C during sampling keeps every committed draw and exits with status 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

from .errors import LandscapeError, SpecError
from .sampling import RUN_KEYS, SAMPLE_DEFAULTS

log = logging.getLogger("landscape")

def _number(convert: Any, accept: Any, requirement: str) -> Any:
    """An argparse type: ``convert`` the text, then keep it only if ``accept(value)``, else say ``requirement``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if convert is int else 'number'}") \
                from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "at least 1")
_nonneg_int = _number(int, lambda v: v >= 0, "0 or more")
_positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive finite number")
_finite_float = _number(float, math.isfinite, "finite")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: what is wrong and where to look, exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}; see `{self.prog} --help`.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="landscape", description="Sample and measure neural-network loss landscapes.")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars or informational messages")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug messages")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("sample", help="draw θ from exp(-U/T) on [-L, L]^p into an HDF5 chain file",
                       description="Sample exp(-U(θ)/T) on the box [-L, L]^p for an MLP classifier. Flags left out "
                                   "take the defaults shown, or the stored values when resuming.")
    d = SAMPLE_DEFAULTS
    s.add_argument("--arch", help=f"hidden widths, e.g. '2,2' or '10,10,10' (default {d['arch']})")
    s.add_argument("--activation", choices=["relu", "tanh", "sigmoid"], help="hidden activation (default relu)")
    s.add_argument("--data", help="'points10' (the report's 10-point set) or a CSV x1,...,xd,label (default points10)")
    s.add_argument("--angle", type=_finite_float, help="rotate the 2-D data by this many degrees (default 0)")
    s.add_argument("--temperature", "-T", type=_positive_float, help="temperature T (default 1)")
    s.add_argument("--box", "-L", type=_positive_float, help="box half-width L (default 10)")
    s.add_argument("--sampler", choices=["rw", "hmc", "emcee"],
                   help="rw: Numba random-walk Metropolis (default); hmc: PyTorch HMC, all chains in one batch; "
                        "emcee: emcee's ensemble (stretch move) as a baseline, walkers = chains (default 36)")
    s.add_argument("--chains", type=_positive_int, help=f"number of chains (default {d['chains']})")
    s.add_argument("--draws", type=_positive_int,
                   help=f"kept draws per chain; with --resume, the new total (default {d['draws']})")
    s.add_argument("--warmup", type=_nonneg_int, help=f"adaptation steps before any draw is kept (default {d['warmup']})")
    s.add_argument("--thin", type=_positive_int, help="keep every n-th step (default 1)")
    s.add_argument("--target-accept", type=_positive_float,
                   help="target acceptance during warm-up (default 0.234 for rw, 0.8 for hmc)")
    s.add_argument("--initial-step", type=_positive_float, help="initial step size (default 0.1 rw, 0.05 hmc)")
    s.add_argument("--leapfrog", type=_positive_int, help="hmc: leapfrog steps per iteration (default 16)")
    s.add_argument("--jitter", action="store_const", const=True,
                   help="hmc: draw the number of leapfrog steps afresh each iteration")
    s.add_argument("--stretch", type=_positive_float, help="emcee: scale a of the stretch move (default 2)")
    s.add_argument("--device", default="auto", help="hmc: auto (CUDA if present), cpu or cuda (default auto)")
    s.add_argument("--dtype", choices=["float32", "float64"], help="hmc: floating-point type (default float64)")
    s.add_argument("--seed", type=_nonneg_int, help="random seed (default 0)")
    s.add_argument("--out", "-o", type=Path, help="chain file to create")
    s.add_argument("--run", help="name of the run inside the file (default: the file's stem)")
    s.add_argument("--resume", type=Path, metavar="FILE", help="continue the run stored in FILE")
    s.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    s.add_argument("--block-evals", type=_positive_int, default=2_000_000,
                   help="energy evaluations per committed block (default 2e6: about a second)")

    g = sub.add_parser("diagnose", help="convergence diagnostics and a verdict for a chain file")
    g.add_argument("file", type=Path)
    g.add_argument("--run", help="run inside the file (needed only if it holds several)")
    g.add_argument("--discard", type=_nonneg_int, default=0, help="draws per chain to drop first (default 0: "
                   "warm-up draws are never stored)")
    g.add_argument("--thin", type=_positive_int, default=1, help="use every n-th draw")
    g.add_argument("--json", action="store_true", help="print the diagnosis as JSON on stdout")
    g.add_argument("--plots", type=Path, help="folder for trace and rank plots (default: FILE without .h5 + "
                   "'_diagnostics')")
    g.add_argument("--no-plots", action="store_true", help="skip the plots")
    a = sub.add_parser("analyze", help="kernel PCA of the draws, good minima and their plane, with baselines")
    a.add_argument("file", type=Path)
    a.add_argument("--out", "-o", type=Path, required=True, help="folder for numbers and figures")
    a.add_argument("--run", help="run inside the file (needed only if it holds several)")
    a.add_argument("--discard", type=_nonneg_int, default=0, help="draws per chain to drop first")
    a.add_argument("--thin", type=_positive_int, default=1, help="use every n-th draw")
    a.add_argument("--max-draws", type=_positive_int, default=20000, help="draws analysed (a random subset)")
    a.add_argument("--threshold", type=_positive_float, default=0.1, help="good minima have loss below this")
    a.add_argument("--gamma", type=_positive_float, help="RBF kernel γ (default: 1 / median squared distance between draws)")
    a.add_argument("--no-canonicalize", action="store_true", help="skip canonicalization modulo symmetries")
    a.add_argument("--solver", choices=["nystroem", "exact", "randomized"], default="nystroem",
                   help="kernel PCA solver (default nystroem: fast and streaming)")
    a.add_argument("--landmarks", type=_positive_int, default=500, help="Nyström landmarks (default 500)")
    a.add_argument("--bootstrap", type=_positive_int, default=200, help="bootstrap resamples (default 200)")
    a.add_argument("--seed", type=_nonneg_int, default=0)
    a.add_argument("--memory-mb", type=_positive_float, default=512.0, help="memory budget for draws in RAM")
    a.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")
    r = sub.add_parser("rotation", help="the report's rotation experiment, end to end, with a generated REPORT.md")
    r.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    r.add_argument("--config", type=Path, help="TOML file of settings (flags override it)")
    r.add_argument("--angles", help="comma-separated degrees (default 0,120,240)")
    r.add_argument("--arch", help="hidden widths (default 2,2)")
    r.add_argument("--activation", choices=["relu", "tanh", "sigmoid"])
    r.add_argument("--sampler", choices=["rw", "hmc", "emcee"])
    r.add_argument("--chains", type=_positive_int)
    r.add_argument("--draws", type=_positive_int)
    r.add_argument("--warmup", type=_nonneg_int)
    r.add_argument("--thin", type=_positive_int)
    r.add_argument("--seed", type=_nonneg_int)
    r.add_argument("--threshold", type=_positive_float)
    r.add_argument("--no-control", action="store_true", help="skip the relabelled control run")
    r.add_argument("--graph", action="store_true",
                   help="add the DSS connectivity graph of each run's good minima to the report (dss minima)")
    r.add_argument("--graph-levels", default="0.1,0.05,0.02", help="levels for --graph (default 0.1,0.05,0.02)")
    r.add_argument("--graph-count", type=_positive_int, default=12, help="minima per run for --graph (default 12)")
    r.add_argument("--reuse", action="store_true", help="keep finished stages in --out and redo only the rest")
    r.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")
    from .cli_dss import add_parser as add_dss_parser

    add_dss_parser(sub, _number)
    return parser


# -- sample -------------------------------------------------------------------------------------------------------------
def _explicit(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in RUN_KEYS if getattr(args, k, None) is not None}


def cmd_sample(args: argparse.Namespace) -> int:
    from .sampling import resume_run, start_run

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


# -- diagnose -----------------------------------------------------------------------------------------------------------
def cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnostics import diagnose, plot_diagnostics
    from .store import ChainReader

    with ChainReader(args.file, args.run) as reader:
        if reader.committed_draws - args.discard < 4 * args.thin:
            raise SpecError(f"{str(args.file)!r} holds {reader.committed_draws} draws per chain; after --discard "
                            f"{args.discard} fewer than 4 remain to diagnose.")
        theta = reader.get_chain(args.discard, args.thin)
        energy = reader.get_energy(args.discard, args.thin)
        accepted = reader.get("accepted", args.discard, args.thin)
        state = reader.state()
        config = reader.config
    diag = diagnose(theta, energy, accepted, int(state.get("n_nonfinite", 0).sum()) if "n_nonfinite" in state
                    else 0, discard=args.discard)
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
    lines = [
        f"file           {args.file}  ({d.n_chains} chains × {d.n_draws} draws, p = {theta.shape[2]})",
        f"energy U       mean {d.energy['mean']:.4g}  R-hat {d.energy['rhat']:.4f}  ESS bulk "
        f"{d.energy['ess_bulk']:.0f} tail {d.energy['ess_tail']:.0f}  MCSE {d.energy['mcse_mean']:.3g}",
        f"θ (all {theta.shape[2]})    max R-hat {d.theta_max_rhat:.4f} (θ[{d.theta_worst_rhat_index}])  min ESS bulk "
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


def _refuse_nonempty(folder: Path, allowed: bool, how: str) -> None:
    """An output folder that already holds files is written into only when the user said so."""
    if folder.exists() and any(folder.iterdir()) and not allowed:
        raise SpecError(f"output folder {str(folder)!r} is not empty; {how}.")


# -- analyze ------------------------------------------------------------------------------------------------------------
def cmd_analyze(args: argparse.Namespace) -> int:
    from analysis.pipeline import AnalysisSettings, analyze_file, write_outputs

    _refuse_nonempty(args.out, args.force, "pass --force to write into it")
    settings = AnalysisSettings(discard=args.discard, thin=args.thin, max_draws=args.max_draws,
                                threshold=args.threshold, gamma=args.gamma, canonicalize=not args.no_canonicalize,
                                solver=args.solver, n_landmarks=args.landmarks, n_boot=args.bootstrap, seed=args.seed,
                                memory_budget_mb=args.memory_mb)
    t0 = time.perf_counter()
    try:
        summary, arrays = analyze_file(str(args.file), settings, args.run)
    except ValueError as exc:
        raise SpecError(f"cannot analyse {str(args.file)!r}: {exc}.") from None
    files = write_outputs(summary, arrays, args.out)
    for mode in arrays:
        r = summary[mode]
        k = r["kernel_pca"]
        print(f"[{mode}] {r['n_draws']} draws, kernel PCA to 3-D: left-out kernel variance {k['left_out_share']:.4f} "
              f"(95% CI {k['left_out_share_ci'][0]:.4f}–{k['left_out_share_ci'][1]:.4f}), pre-image error "
              f"{k['reconstruction_error']:.4f}")
        if r.get("plane"):
            pl = r["plane"]
            nulls = ", ".join(f"{n} {v['explained_variance_ratio']:.3f}" for n, v in pl["null"].items())
            print(f"[{mode}] {r['n_good']} good minima ({100 * r['good_share']:.1f}%): 2-D explained variance "
                  f"{pl['explained_variance_ratio']:.3f} (95% CI {pl['ci'][0]:.3f}–{pl['ci'][1]:.3f}); null sets: "
                  f"{nulls}; TwoNN dimension in R^{r['parameter_space']['p']}: "
                  f"{r['parameter_space']['twonn_dimension']:.2f}")
        else:
            print(f"[{mode}] {r.get('note')}")
    log.info("analysed in %.1f s; wrote %s", time.perf_counter() - t0, ", ".join(files))
    return 0


# -- rotation -----------------------------------------------------------------------------------------------------------
def cmd_rotation(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from analysis.rotation import RotationSettings, load_toml, run_rotation

    _refuse_nonempty(args.out, args.force or args.reuse, "pass --reuse to continue it or --force")
    values: dict[str, Any] = load_toml(args.config) if args.config else {}
    known = {f.name for f in fields(RotationSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SpecError(f"unknown setting(s) {', '.join(unknown)} in {str(args.config)!r}; "
                        f"known: {', '.join(sorted(known))}.")
    for key in ("arch", "activation", "sampler", "chains", "draws", "warmup", "thin", "seed", "threshold"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if args.angles is not None:
        try:
            values["angles"] = [float(a) for a in args.angles.split(",")]
        except ValueError:
            raise SpecError(f"--angles {args.angles!r} is not a comma-separated list of degrees.") from None
    if args.no_control:
        values["control"] = False
    from .nets import parse_arch

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
        from .cli_minima import rotation_graphs

        section = rotation_graphs(args.out, list(result["runs"]), levels, args.graph_count, settings.seed)
        with open(args.out / "REPORT.md", "a") as fh:
            fh.write(section)
    print(f"rotation experiment done in {result['seconds']:.0f} s; report: {args.out / 'REPORT.md'}")
    return 0


def _configure_logging(level: int) -> None:
    """Our messages go to stderr at ``level``; other libraries stay at their own (quiet) defaults."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("landscape", "mcmc_landscape"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level)
        lg.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)
    from .cli_dss import cmd_dss
    from .runner import Interrupted

    commands = {"sample": cmd_sample, "diagnose": cmd_diagnose, "analyze": cmd_analyze, "rotation": cmd_rotation,
                "dss": cmd_dss}
    try:
        return commands[args.command](args)
    except Interrupted as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except LandscapeError as exc:
        print(f"landscape: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("landscape: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
