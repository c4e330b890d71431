"""The CPU trajectory of HMC for the MLP classifier: every leapfrog step of a chain in one Numba call, over threads.

:func:`mlp_torch_trajectory_fn` hands :func:`mcmc_landscape.samplers.hmc.run_block` the fused trajectory for the
device: this Numba kernel on the CPU, the numba-cuda kernel of :mod:`.hmc_gpu` on a CUDA device. It sits beside the
sampler that uses it; the energy module keeps only U and ∇U.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np

from mcmc_landscape.data.datasets import Dataset
from mcmc_landscape.models.energy import (
    _mlp_energy_grad_one,
    _scratch_sizes,
    _thread_chunks,
    mlp_energy_and_grad_torch,
    mlp_energy_model,
)
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers.walls import fold_coordinate


@nb.njit(parallel=True, fastmath=True, cache=True)
def _mlp_leapfrog_batch(pos, r, g, drift, kick, n_lf, box, xT, idata, n_chunks,
                        out_x, out_r, out_u, out_g):  # pragma: no cover - compiled
    """``n_lf`` leapfrog steps of every chain, each chain start to end on one thread: the CPU form of
    :func:`mcmc_landscape.samplers.hmc.leapfrog` for the MLP energy (same steps, same reflection at the walls)."""
    rows, wmax = _scratch_sizes(idata)
    n = xT.shape[1]
    C, p = pos.shape
    for chunk in nb.prange(n_chunks):
        acts = np.empty((rows, n), dtype=pos.dtype)
        delta = np.empty((wmax, n), dtype=pos.dtype)
        delta2 = np.empty((wmax, n), dtype=pos.dtype)
        for c in range(chunk * C // n_chunks, (chunk + 1) * C // n_chunks):
            x, rr, gg = out_x[c], out_r[c], out_g[c]
            k = kick[c, 0]
            for q in range(p):
                x[q] = pos[c, q]
                rr[q] = r[c, q] - 0.5 * k * g[c, q]
            u = 0.0
            for j in range(n_lf):
                for q in range(p):
                    xq = x[q] + drift[c, q] * rr[q]
                    if xq > box or xq < -box:
                        xq, rr[q] = fold_coordinate(xq, rr[q], box)
                    x[q] = xq
                u = _mlp_energy_grad_one(x, gg, xT, idata, acts, delta, delta2)
                step = k if j < n_lf - 1 else 0.5 * k
                for q in range(p):
                    rr[q] -= step * gg[q]
            out_u[c] = u


def mlp_torch_trajectory_fn(spec: MLPSpec, data: Dataset, device: Any, kind: str = "fused"):
    """The fused trajectory for :func:`mcmc_landscape.samplers.hmc.run_block`: all ``n_lf`` leapfrog steps of a
    chain in one call instead of a torch call per step. On the CPU a Numba kernel over threads; on a CUDA device one
    numba-cuda kernel for all chains (:mod:`mcmc_landscape.samplers.hmc_gpu`) where numba-cuda is installed and the
    network fits in registers. None elsewhere, or with ``kind="torch"``: then the torch loop runs."""
    import torch

    if kind not in ("fused", "torch"):
        raise ValueError(f"trajectory kind must be 'fused' or 'torch', got {kind!r}")
    dev = torch.device(device)
    if kind == "torch":
        return None
    if dev.type == "cuda":
        from mcmc_landscape.samplers.hmc_gpu import mlp_cuda_trajectory_fn

        return mlp_cuda_trajectory_fn(spec, data, mlp_energy_and_grad_torch)
    if dev.type != "cpu":
        return None
    model = mlp_energy_model(spec, data)

    def trajectory(pos: Any, r: Any, g: Any, drift: Any, kick: Any, n_lf: int, box: float) -> tuple[Any, ...]:
        arrays = [np.ascontiguousarray(t.detach().numpy()) for t in (pos, r, g, drift, kick)]
        dt = arrays[0].dtype
        out_x, out_r, out_g = (np.empty_like(arrays[0]) for _ in range(3))
        out_u = np.empty(arrays[0].shape[0], dtype=dt)
        _mlp_leapfrog_batch(*arrays, int(n_lf), float(box), model.fdata.astype(dt, copy=False), model.idata,
                            _thread_chunks(arrays[0].shape[0]), out_x, out_r, out_u, out_g)
        return tuple(torch.from_numpy(a) for a in (out_x, out_r, out_u, out_g))

    return trajectory
