"""DSS at the paper's scale: Figures 4-6 of Freeman and Bruna (MNIST, CIFAR-10, PTB) on a device.

    python bench/dss_scale.py --task mnist --device auto           # the paper's figure: 3 levels x 4 pairs (a GPU's job)
    python bench/dss_scale.py --task ptb --device auto             # 6 levels x 4 pairs
    python bench/dss_scale.py --task mnist --device cpu --quick    # a small model and data subset: minutes on 2 cores

Two parts, both timed in the same run on the same device:

1. **Throughput**: bead training (``dss.optim.train_to``: vmap over flat vectors, written-out Adam) against a plain
   PyTorch training loop (``nn.Module`` + ``torch.optim.Adam``) on the same zoo model, batch size and minibatches;
   examples (images, or tokens for PTB) per second of each and their ratio (plain / bead; the target is ≤ 1.5).
2. **The figure**: a sweep over the paper's levels (test error for mnist/cifar10, validation perplexity for ptb),
   ``--pairs`` pairs per level (4; 2 with ``--quick``), each level's models the level above's trained further down.
   Prints a table (level, pairs whose two models reached it, connected, normalized length and beads as mean ± sd,
   failures by cause, seconds, gradient steps), writes the figure (length and beads against the level) and ends with
   one JSON line.

The data folder is ``--data-dir``, else ``$MCMC_LANDSCAPE_DATA``, else ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dss.device import resolve_device  # noqa: E402
from dss.optim import train_to  # noqa: E402
from dss.plots import plot_sweep  # noqa: E402
from dss.string import DSSSettings  # noqa: E402
from dss.sweep import SweepSettings, run_sweep  # noqa: E402
from dss.tasks import make_task  # noqa: E402

# the paper's figures: its models at full size on the whole data sets, its levels
FULL = {
    "mnist": ({}, (0.04, 0.01, 0.007)),
    "cifar10": ({}, (0.4, 0.3, 0.2)),
    "ptb": ({}, (700.0, 500.0, 400.0, 300.0, 200.0, 135.0)),
}
# --quick: a small model and data subset, levels that this small model reaches in a few hundred steps
QUICK = {
    "mnist": ({"width": 0.125, "n_train": 5000, "n_eval": 500, "batch_size": 64}, (0.1, 0.05)),
    "cifar10": ({"width": 0.5, "n_train": 5000, "n_eval": 500, "batch_size": 64}, (0.7, 0.6)),
    "ptb": ({"hidden": 32, "layers": 1, "vocab": 1000, "n_train": 2000, "n_eval": 100, "batch_size": 32},
            (400.0, 300.0)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(task, steps: int, lr: float, seed: int = 0) -> dict:
    """Examples per second of bead training and of a plain PyTorch loop on the same model, batches and device."""
    device = task.device
    per_example = task.options.get("seq_len", 1)  # tokens per window for ptb, 1 for images
    batch = task.batch_size or task.n_train
    theta = task.init(1, torch.Generator().manual_seed(seed))
    # bead training: one bead, a target it cannot reach, one evaluation at the start and one at the end (timed apart)
    _sync(device)
    t0 = time.perf_counter()
    task.loss_eval(theta)
    _sync(device)
    eval_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_to(task, theta, 0.0, max_steps=steps, lr=lr, check_every=steps, schedule="constant", seed=seed)
    _sync(device)
    bead_s = max(time.perf_counter() - t0 - 2 * eval_s, 1e-9)
    # the plain loop: nn.Module, torch.optim.Adam, the same minibatch stream
    net = task.module
    torch.nn.utils.vector_to_parameters(theta[0].clone(), net.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    x, y = task._train
    batches = task.minibatches(seed)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = next(batches) if batches is not None else slice(None)
        logits = net(x[idx])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(device)
    plain_s = time.perf_counter() - t0
    bead_rate, plain_rate = steps * batch * per_example / bead_s, steps * batch * per_example / plain_s
    return {"steps": steps, "batch_size": batch, "unit": "tokens" if per_example > 1 else "images",
            "bead_per_s": bead_rate, "plain_per_s": plain_rate, "plain_over_bead": plain_rate / bead_rate,
            "eval_s": eval_s}


def _finite(value):
    """NaN (a level with no connected pair) as null, so the last line is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not np.isfinite(value) else value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=sorted(FULL), required=True)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="a small model and data subset (minutes on 2 CPU cores)")
    ap.add_argument("--pairs", type=int, help="pairs per level (default 4; 2 with --quick)")
    ap.add_argument("--levels", help="comma-separated levels (default: the paper's, or the quick ones)")
    ap.add_argument("--steps", type=int, help="steps of the throughput comparison (default 200; 20 with --quick)")
    ap.add_argument("--data-dir", help="folder holding mnist/, cifar10/, ptb/")
    ap.add_argument("--out", type=Path, help="output folder (default runs/dss_scale_<task>[_quick])")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--throughput-only", action="store_true", help="only the bead-training against plain-loop timing")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    options, levels = (QUICK if args.quick else FULL)[args.task]
    if args.levels:
        levels = tuple(float(x) for x in args.levels.split(","))
    pairs = args.pairs or (2 if args.quick else 4)
    out = args.out or Path("runs") / f"dss_scale_{args.task}{'_quick' if args.quick else ''}"
    t_start = time.perf_counter()
    task = make_task(args.task, device=device, **options, **({"data_dir": args.data_dir} if args.data_dir else {}))
    print(task.describe())
    lr = 1e-3

    tp = throughput(task, args.steps or (20 if args.quick else 200), lr, args.seed)
    print(f"throughput ({tp['unit']}/s, batch {tp['batch_size']}, {tp['steps']} steps): bead training "
          f"{tp['bead_per_s']:,.0f}, plain PyTorch loop {tp['plain_per_s']:,.0f}; ratio plain/bead "
          f"{tp['plain_over_bead']:.2f} (target ≤ 1.5)")

    if args.throughput_only:
        print(json.dumps(_finite({"task": args.task, "device": str(device), "quick": args.quick, "p": task.p,
                                  "throughput": tp, "seconds": round(time.perf_counter() - t_start, 1)})))
        return 0
    settings = DSSSettings(l0=1.0, lr=lr, check_every=task.check_every or 10, max_steps=20000)
    sweep = SweepSettings(tuple(levels), pairs, args.seed, True, endpoint_steps=20000)
    t0 = time.perf_counter()
    result = run_sweep(task, sweep, settings, out)
    sweep_s = time.perf_counter() - t0
    fig = plot_sweep(result, out / "sweep.png")
    rows = result["levels"]
    print(f"\n{'level':>8} {'reached':>8} {'connected':>9} {'length mean ± sd':>18} {'beads mean ± sd':>16} "
          f"{'seconds':>8} {'bead steps':>10} {'endpoint steps':>14}  failures")
    for r in rows:
        fails = ", ".join(f"{k} {v}" for k, v in r["failures"].items()) or "-"
        print(f"{r['l0']:>8g} {r['trained_pairs']:>4}/{r['pairs']:<3} {r['connected']:>5}/{r['trained_pairs']:<3} "
              f"{r['length_mean']:>8.3f} ± {r['length_sd']:<7.3f} {r['beads_mean']:>7.1f} ± {r['beads_sd']:<6.1f} "
              f"{r['seconds']:>8.1f} {r['grad_steps_mean']:>10.0f} {r['endpoint_steps']:>14d}  {fails}")
    print(f"figure {fig}; table {out / 'sweep.csv'}; sweep {sweep_s:.1f} s")
    summary = {
        "task": args.task, "device": str(device), "quick": args.quick, "p": task.p, "options": task.config(),
        "levels": [r["l0"] for r in rows], "pairs": pairs,
        "reached": [r["trained_pairs"] for r in rows], "connected": [r["connected"] for r in rows],
        "length_mean": [r["length_mean"] for r in rows], "length_sd": [r["length_sd"] for r in rows],
        "beads_mean": [r["beads_mean"] for r in rows], "beads_sd": [r["beads_sd"] for r in rows],
        "failures": [r["failures"] for r in rows], "level_seconds": [round(r["seconds"], 2) for r in rows],
        "grad_steps_mean": [r["grad_steps_mean"] for r in rows],
        "throughput": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in tp.items()},
        "seconds": round(time.perf_counter() - t_start, 1), "sweep_seconds": round(sweep_s, 1),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
                   + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""),
    }
    print(json.dumps(_finite(summary)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
