"""Our Hessian numbers and time beside the peers' on one model (the zoo's small convnet on random 14×14 images, or an
MLP): top eigenvalue and trace from ``mcmc_landscape.hessian`` against hessian-eigenthings (Lanczos, Hutch++) and
PyHessian (power iteration, Hutchinson; GPL-3, so bench only, never a dependency), each where it imports, and the
dense Hessian (exact) when p is small enough. Then our filter-normalized 1-D and 2-D slices against loss-landscapes'
``linear_interpolation`` / ``planar_interpolation`` on the same model and the same directions. Prints a line per
figure with ratios ours / peer, then one JSON line.

    PYTHONPATH=. python bench/hessian.py [--model small-convnet|mlp] [--n 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
from torch import nn

from mcmc_landscape.hessian import HessianSettings, block_spectra, exact_hessians
from mcmc_landscape.models.zoo import FlatLayout, build_model
from mcmc_landscape.slices import evaluate_grid, filter_normalized
from mcmc_landscape.targets import module_target, module_theta


def _model(name: str, n: int, gen: torch.Generator) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    if name == "mlp":
        net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
        x = torch.randn(n, 8, generator=gen, dtype=torch.float64)
        return net.double(), x, torch.randint(0, 3, (n,), generator=gen)
    net = build_model("small-convnet", in_channels=1, side=14).double()
    x = torch.randn(n, 1, 14, 14, generator=gen, dtype=torch.float64)
    return net, x, torch.randint(0, 10, (n,), generator=gen)


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def peers_hessian(net: nn.Module, x: torch.Tensor, y: torch.Tensor, matvecs: int) -> dict[str, dict]:
    """Each peer's top eigenvalue, trace and seconds, keyed by its name; absent peers are skipped."""
    out: dict[str, dict] = {}
    ce = nn.CrossEntropyLoss()
    try:
        import hessian_eigenthings as he

        op = he.HessianOperator(net, [(x, y)], he.supervised_loss(ce))
        top, t1 = _timed(lambda: he.lanczos(op, k=1, max_iter=60, which="LA", seed=0))
        tr, t2 = _timed(lambda: he.trace(op, num_matvecs=matvecs, method="hutch++", seed=0))
        out[f"hessian-eigenthings {he.__version__}"] = {"top": float(top.eigenvalues[0]), "trace": float(tr.estimate),
                                                        "seconds": t1 + t2}
    except ImportError:
        pass
    try:
        from pyhessian import hessian as PyHessian  # GPL-3: bench only

        torch.manual_seed(0)
        h = PyHessian(net, ce, data=(x, y), cuda=False)
        (top, _), t1 = _timed(lambda: h.eigenvalues(maxIter=100, tol=1e-6, top_n=1))
        tr, t2 = _timed(lambda: h.trace(maxIter=matvecs, tol=1e-12))
        out["pyhessian 0.1"] = {"top": float(top[0]), "trace": float(np.mean(tr)), "seconds": t1 + t2}
    except ImportError:
        pass
    return out


def slice_check(net: nn.Module, x: torch.Tensor, y: torch.Tensor, target, theta: np.ndarray, steps: int) -> dict:
    """Max |ours − loss-landscapes| on the same line and plane (same model, same filter-normalized directions)."""
    try:
        import loss_landscapes as ll
        from loss_landscapes.metrics import Loss
    except ImportError:
        return {}
    import copy

    rng = np.random.default_rng(0)
    d1, d2 = (filter_normalized(theta, target.tensors, rng) for _ in range(2))
    layout = FlatLayout.of(net)

    def at(t: np.ndarray) -> nn.Module:
        m = copy.deepcopy(net)
        for (_, p), v in zip(m.named_parameters(), layout.unflatten(torch.as_tensor(t)).values(), strict=True):
            p.data.copy_(v)
        return m

    metric = Loss(nn.CrossEntropyLoss(), x, y)
    # 1-D: their line from θ − d1 to θ + d1 evaluates at θ − d1 + (i + 1)/steps · 2 d1
    theirs_1d, t_their1 = _timed(lambda: ll.linear_interpolation(at(theta - d1), at(theta + d1), metric, steps))
    a = -1 + 2 * np.arange(1, steps + 1) / steps
    ours_1d, t_our1 = _timed(lambda: evaluate_grid(target.loss, theta, d1, a, chunk=256))
    # 2-D: their plane θ + a d1 + b d2 walks in a snake; column i sits at a = i/s, b = (j+1)/s (i even), j/s (i odd)
    theirs_2d, t_their2 = _timed(lambda: ll.planar_interpolation(at(theta), at(theta + d1), at(theta + d2), metric,
                                                                 steps))
    s = steps
    grid_a = np.arange(s) / s
    ours_even, t_a = _timed(lambda: evaluate_grid(target.loss, theta, d1, grid_a, d2, np.arange(1, s + 1) / s))
    ours_odd, t_b = _timed(lambda: evaluate_grid(target.loss, theta, d1, grid_a, d2, np.arange(s) / s))
    ours_2d = np.where((np.arange(s) % 2 == 0)[:, None], ours_even, ours_odd)
    return {"steps": steps, "max_abs_diff_1d": float(np.abs(ours_1d - theirs_1d).max()),
            "max_abs_diff_2d": float(np.abs(ours_2d - theirs_2d).max()), "loss_range_2d":
            [float(theirs_2d.min()), float(theirs_2d.max())], "seconds_ours_1d": t_our1, "seconds_theirs_1d": t_their1,
            "seconds_ours_2d": t_a + t_b, "seconds_theirs_2d": t_their2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=("small-convnet", "mlp"), default="small-convnet")
    ap.add_argument("--n", type=int, default=64, help="examples")
    ap.add_argument("--matvecs", type=int, default=99, help="Hessian-vector products for each trace")
    ap.add_argument("--steps", type=int, default=11, help="slice grid points per axis")
    ap.add_argument("--dense-max", type=int, default=1500, help="exact reference up to this p")
    args = ap.parse_args()
    torch.set_num_threads(1)        # small tensors, a shared machine: one thread for everyone
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net, x, y = _model(args.model, args.n, gen)
    dev = torch.device("cpu")
    target = module_target(net, x, y, dev, torch.float64)
    theta = module_theta(net)
    p = target.p
    t_th = torch.as_tensor(theta[None])
    settings = HessianSettings(k=1, dense_max=0, lanczos_steps=60, trace_matvecs=args.matvecs, slq_vectors=1,
                               slq_steps=10)
    warm = HessianSettings(k=1, dense_max=0, lanczos_steps=2, trace_matvecs=3, slq_vectors=1, slq_steps=2)
    block_spectra(target.loss, t_th, [("all", 0, p)], warm)        # one-time tracing of torch.func, not timed
    ours, t_ours = _timed(lambda: block_spectra(target.loss, t_th, [("all", 0, p)], settings)[0])
    res: dict = {"model": args.model, "p": p, "n": args.n, "machine": f"{platform.machine()}, "
                 f"{torch.get_num_threads()} torch threads, CPU", "torch": torch.__version__,
                 "ours": {"top": float(ours["top"][0, 0]), "trace": float(ours["trace"][0]), "seconds": t_ours,
                          "note": "Lanczos 60 steps (top and bottom k=1), Hutch++, SLQ density of 1×10"}}
    if p <= args.dense_max:
        ev, t_d = _timed(lambda: torch.linalg.eigvalsh(exact_hessians(target.loss, t_th)[0]).numpy())
        res["dense"] = {"top": float(ev[-1]), "trace": float(ev.sum()), "seconds": t_d}
    res["peers"] = peers_hessian(net, x, y, args.matvecs)
    print(f"{args.model}: p = {p:,}, n = {args.n}; {res['machine']}")
    o = res["ours"]
    print(f"ours: top {o['top']:.6g}, trace {o['trace']:.6g}, {o['seconds']:.2f} s")
    for name, r in [("dense (exact)", res.get("dense"))] + list(res["peers"].items()):
        if r:
            print(f"{name}: top {r['top']:.6g} (ours/it {o['top'] / r['top']:.6f}), trace {r['trace']:.6g} "
                  f"(ours/it {o['trace'] / r['trace']:.4f}), {r['seconds']:.2f} s (time ours/it "
                  f"{o['seconds'] / r['seconds']:.2f})")
    res["slice"] = slice_check(net, x, y, target, theta, args.steps)
    if res["slice"]:
        sl = res["slice"]
        print(f"slice vs loss-landscapes 3.0.6, same directions, {sl['steps']} steps: max |Δ| 1-D "
              f"{sl['max_abs_diff_1d']:.2e}, 2-D {sl['max_abs_diff_2d']:.2e} (loss {sl['loss_range_2d'][0]:.4g} to "
              f"{sl['loss_range_2d'][1]:.4g}); time 2-D ours {sl['seconds_ours_2d']:.2f} s, theirs "
              f"{sl['seconds_theirs_2d']:.2f} s")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
