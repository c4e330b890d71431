"""``landscape analyze``: kernel PCA of stored draws, the good minima and their plane, with null baselines."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from mcmc_landscape.errors import SpecError

from .common import nonneg_int, positive_float, positive_int, refuse_nonempty

log = logging.getLogger("landscape")


def add_arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument("file", type=Path)
    a.add_argument("--out", "-o", type=Path, required=True, help="folder for numbers and figures")
    a.add_argument("--run", help="run inside the file (needed only if it holds several)")
    a.add_argument("--discard", type=nonneg_int, default=0, help="draws per chain to drop first")
    a.add_argument("--thin", type=positive_int, default=1, help="use every n-th draw")
    a.add_argument("--max-draws", type=positive_int, default=20000, help="draws analysed (a random subset)")
    a.add_argument("--threshold", type=positive_float, default=0.1, help="good minima have loss below this")
    a.add_argument("--gamma", type=positive_float, help="RBF kernel γ (default: 1 / median squared distance between draws)")
    a.add_argument("--no-canonicalize", action="store_true", help="skip canonicalization modulo symmetries")
    a.add_argument("--solver", choices=["nystroem", "exact", "randomized"], default="nystroem",
                   help="kernel PCA solver (default nystroem: fast and streaming)")
    a.add_argument("--landmarks", type=positive_int, default=500, help="Nyström landmarks (default 500)")
    a.add_argument("--bootstrap", type=positive_int, default=200, help="bootstrap resamples (default 200)")
    a.add_argument("--seed", type=nonneg_int, default=0)
    a.add_argument("--memory-mb", type=positive_float, default=512.0, help="memory budget for draws in RAM")
    a.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")


def run(args: argparse.Namespace) -> int:
    from analysis.pipeline import AnalysisSettings, analyze_file, write_outputs

    refuse_nonempty(args.out, args.force, "pass --force to write into it")
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
