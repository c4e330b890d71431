"""Compile the fused GPU kernels to PTX without a GPU and show where their chain state lives.

Usage: python bench/hmc_gpu_ptx.py [--arch 2,2] [--activation relu] [--cc 9.0] [--kinds trajectory,iterations]

numba-cuda needs NVVM and NVRTC for this (the ``gpu`` extra brings them; on a machine without a GPU the
``nvidia-nvvm`` and ``nvidia-cuda-nvrtc`` wheels suffice, on PYTHONPATH and LD_LIBRARY_PATH). Counts in the PTX:
``.local`` declarations (a chain's state spilled to memory), float64 instructions in the float32 kernel, global loads
and stores per thread. Where ``ptxas`` is found (``$PTXAS`` or on PATH; the ``nvidia-cuda-nvcc`` wheel has one) its
register and spill report follows. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import hmc_gpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="2,2")
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--classes", type=int, default=2)
    ap.add_argument("--cc", default="9.0", help="compute capability (9.0: H100)")
    ap.add_argument("--kinds", default="trajectory,iterations", help="kernels: one trajectory, whole iterations")
    args = ap.parse_args()
    spec = MLPSpec.from_string(args.arch, activation=args.activation, n_out=args.classes)
    cc = tuple(int(v) for v in args.cc.split("."))
    ptxas = os.environ.get("PTXAS") or shutil.which("ptxas")
    out = {"arch": args.arch, "activation": args.activation, "p": spec.n_params, "cc": args.cc}
    for kind in args.kinds.split(","):
        for dt in (np.float32, np.float64):
            ptx = hmc_gpu.kernel_ptx(spec, dt, cc, kind=kind)
            row = {"ptx_bytes": len(ptx), "local": len(re.findall(r"\.local", ptx)),
                   "f64_instructions": len(re.findall(r"\.f64", ptx)),
                   "global_loads": len(re.findall(r"ld\.global", ptx)),
                   "global_stores": len(re.findall(r"st\.global", ptx))}
            if ptxas:
                with tempfile.TemporaryDirectory() as tmp:
                    src = os.path.join(tmp, "k.ptx")
                    with open(src, "w") as f:
                        f.write(ptx)
                    rep = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", "-O3", src, "-o",
                                          os.path.join(tmp, "k.cubin")], capture_output=True, text=True).stderr
                m = re.search(r"Used (\d+) registers", rep)
                sp = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", rep)
                row["registers"] = int(m.group(1)) if m else None
                row["spill_bytes"] = int(sp.group(1)) + int(sp.group(2)) if sp else None
            out[f"{kind}_{np.dtype(dt).name}"] = row
            print(f"{kind} {np.dtype(dt).name}: {row}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
