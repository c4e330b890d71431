"""DSS benchmark: one quadratic connection where the straight line fails, the paper's two sweeps, and DSS against the
straight line, the Bézier curve of Garipov et al. and AutoNEB (Draxler et al.) on the same pairs.

    python bench/dss.py                    # ~5 minutes on 2 cores
    python bench/dss.py --pairs 4          # quicker
    python bench/dss.py --baselines-only   # only the table against the other methods

Prints a table and, last, one JSON line. Gradient evaluations count one model gradient each: a bead step for DSS
(endpoint training excluded, it is the same for every method), one random t of a step for the Bézier fit, one pivot
of a NEB step for AutoNEB.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dss.baselines import auto_neb, bezier_curve, straight_line  # noqa: E402
from dss.string import DSSSettings, connect  # noqa: E402
from dss.sweep import SweepSettings, run_sweep, train_models  # noqa: E402
from dss.tasks import make_task  # noqa: E402

PAPER_LEVELS = {"quadratic": (0.125, 0.025, 0.01, 0.001), "cubic": (0.168, 0.158, 0.05, 0.01)}


def one_connection(seed: int = 0, l0: float = 0.01) -> dict:
    t0 = time.perf_counter()
    task = make_task("quadratic")
    s = DSSSettings(l0=l0)
    models, reached, _, _ = train_models(task, 2, s.alpha * l0, torch.Generator().manual_seed(seed), s, 20000, 3)
    t1 = time.perf_counter()
    a, b = models[0].numpy(), models[1].numpy()
    line = straight_line(task, a, b, l0)
    t2 = time.perf_counter()
    out = connect(task, a, b, s).outcome(s)
    t3 = time.perf_counter()
    return {"l0": l0, "straight_max": line.max_loss, "straight_found": line.found, "connected": out["connected"],
            "beads": out["n_beads"], "normalized_length": out["normalized_length"], "connect_s": t3 - t2,
            "train_endpoints_s": t1 - t0, "total_s": t3 - t0}


def compare(task_name: str, l0: float, pairs: int, seed: int) -> dict:
    task = make_task(task_name)
    s = DSSSettings(l0=l0)
    models, reached, _, _ = train_models(task, 2 * pairs, s.alpha * l0, torch.Generator().manual_seed(seed), s,
                                         20000, 3)
    rows = []
    for k in range(pairs):
        if not (reached[2 * k] and reached[2 * k + 1]):
            continue
        a, b = models[2 * k].numpy(), models[2 * k + 1].numpy()
        out = connect(task, a, b, s).outcome(s)
        bz = bezier_curve(task, a, b, l0, seed=k)
        neb = auto_neb(task, a, b, l0)
        rows.append({"straight": straight_line(task, a, b, l0).found, "dss": out["connected"],
                     "dss_evals": out["grad_steps"], "dss_length": out["normalized_length"], "dss_s": out["wall_s"],
                     "bezier": bz.found, "bezier_evals": bz.grad_evals, "bezier_length": bz.normalized_length,
                     "bezier_s": bz.wall_s, "autoneb": neb.found, "autoneb_evals": neb.grad_evals,
                     "autoneb_length": neb.normalized_length, "autoneb_s": neb.wall_s})
    med = lambda key, rs: float(np.median([r[key] for r in rs])) if rs else float("nan")  # noqa: E731
    out = {"task": task_name, "l0": l0, "pairs": len(rows), "straight_found": sum(r["straight"] for r in rows),
           "dss_found": sum(r["dss"] for r in rows)}
    for other in ("bezier", "autoneb"):  # medians over the pairs that both DSS and the other method joined
        both = [r for r in rows if r["dss"] and r[other]]
        out |= {f"{other}_found": sum(r[other] for r in rows), f"{other}_both": len(both),
                f"{other}_evals_median": med(f"{other}_evals", both),
                f"dss_evals_median_vs_{other}": med("dss_evals", both),
                f"evals_ratio_{other}_over_dss": med(f"{other}_evals", both) / max(med("dss_evals", both), 1.0),
                f"{other}_length_median": med(f"{other}_length", both),
                f"dss_length_median_vs_{other}": med("dss_length", both)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    ap.add_argument("--baselines-only", action="store_true", help="only the table against the other methods")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    single = [] if args.baselines_only else [one_connection(seed) for seed in range(3)]
    for r in single:
        line = "passes" if r["straight_found"] else "fails"
        print(f"quadratic L0 = {r['l0']}: straight line max {r['straight_max']:.3f} ({line});"
              f" DSS {'connected' if r['connected'] else 'NOT connected'} with {r['beads']} beads, length "
              f"{r['normalized_length']:.3f}, in {r['connect_s']:.2f} s ({r['total_s']:.2f} s with training the pair)")

    sweeps = {}
    t0 = time.perf_counter()
    for name, levels in ({} if args.baselines_only else PAPER_LEVELS).items():
        res = run_sweep(make_task(name), SweepSettings(levels, args.pairs, args.seed), DSSSettings(l0=1.0))
        sweeps[name] = res
        print(f"\n{name} sweep ({args.pairs} pairs per level, {res['wall_s']:.1f} s; {res['warm_start']})")
        print(f"{'L0':>7} {'conn':>6} {'line':>5} {'length':>15} {'beads':>13}  failures")
        for r in res["levels"]:
            print(f"{r['l0']:>7g} {r['connected']:>3}/{r['trained_pairs']:<2} {r['straight_found']:>3}  "
                  f"{r['length_mean']:6.3f} ± {r['length_sd']:<6.3f} {r['beads_mean']:5.1f} ± {r['beads_sd']:<5.1f}  "
                  f"{r['failures']}")
    sweeps_s = time.perf_counter() - t0
    if sweeps:
        print(f"\nboth sweeps: {sweeps_s:.1f} s")

    comparisons = [compare(name, l0, args.pairs, args.seed + 100)
                   for name, l0 in (("quadratic", 0.025), ("quadratic", 0.01), ("cubic", 0.05))]
    print(f"\n{'task':>9} {'L0':>6} {'pairs':>5} {'line':>4} {'DSS':>4} {'method':>8} {'found':>5} {'both':>4} "
          f"{'DSS evals':>9} {'its evals':>10} {'ratio':>6} {'DSS len':>7} {'its len':>7}")
    for c in comparisons:
        for other, label in (("bezier", "Bézier"), ("autoneb", "AutoNEB")):
            print(f"{c['task']:>9} {c['l0']:>6g} {c['pairs']:>5} {c['straight_found']:>4} {c['dss_found']:>4} "
                  f"{label:>8} {c[other + '_found']:>5} {c[other + '_both']:>4} "
                  f"{c['dss_evals_median_vs_' + other]:>9.0f} {c[other + '_evals_median']:>10.0f} "
                  f"{c['evals_ratio_' + other + '_over_dss']:>6.1f} {c['dss_length_median_vs_' + other]:>7.3f} "
                  f"{c[other + '_length_median']:>7.3f}")
    print(json.dumps({
        "single_connection_s": [round(r["connect_s"], 3) for r in single],
        "single_connection_with_training_s": [round(r["total_s"], 3) for r in single],
        "single_straight_line_failed": [not r["straight_found"] for r in single],
        "sweeps_s": round(sweeps_s, 1),
        "sweep_connected": {n: [r["connected"] for r in s["levels"]] for n, s in sweeps.items()},
        "sweep_length_mean": {n: [round(r["length_mean"], 4) for r in s["levels"]] for n, s in sweeps.items()},
        "sweep_beads_mean": {n: [round(r["beads_mean"], 2) for r in s["levels"]] for n, s in sweeps.items()},
        "bezier_over_dss_grad_evals": {f"{c['task']}@{c['l0']}": round(c["evals_ratio_bezier_over_dss"], 2)
                                       for c in comparisons},
        "autoneb_over_dss_grad_evals": {f"{c['task']}@{c['l0']}": round(c["evals_ratio_autoneb_over_dss"], 2)
                                        for c in comparisons},
    }))


if __name__ == "__main__":
    main()
