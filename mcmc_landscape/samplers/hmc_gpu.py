r"""The fused GPU trajectory of HMC for the MLP classifier: every leapfrog step of every chain in one CUDA kernel.

The torch loop (:func:`mcmc_landscape.samplers.hmc.leapfrog` with the written-out batched backward) pays ~20 kernel
launches and a host synchronisation per leapfrog step whatever the number of chains. Here one thread owns one chain
for a whole trajectory: θ, momentum, step scale and ∇U live in registers, the data points (a few, read by every
thread alike) come through the cache, and the only memory traffic is reading the start and writing the end. One
launch per trajectory, on torch's current stream, no host synchronisation.

For registers to hold the parameters the kernel is written out for one architecture: :func:`trajectory_source`
generates straight-line Python for the forward pass, the loss, the backward pass and the leapfrog updates of that
MLP (one scalar variable per parameter), and numba-cuda compiles it. The same source runs unchanged in numba-cuda's
simulator (``NUMBA_ENABLE_CUDASIM=1``) on the CPU, which is how the tests hold it equal to the torch loop: same steps,
same reflection at the walls (one-wall fast path, then the 4L-circle fold of :func:`hmc._fold`), float32 and float64.

Networks with more than :data:`MAX_PARAMS` parameters would spill registers; for them (and where numba-cuda is not
installed: the ``gpu`` extra) :func:`mlp_cuda_trajectory_fn` returns None and the torch loop runs.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..data import Dataset
from ..nets import MLPSpec

log = logging.getLogger("mcmc_landscape.samplers.hmc_gpu")

#: Above this many parameters a thread's registers cannot hold a chain; the torch loop runs instead.
MAX_PARAMS = 64
#: Threads (chains) per block; small batches get smaller blocks so that they still spread over the SMs.
THREADS_PER_BLOCK, SMALL_BLOCK, SMALL_BATCH = 128, 32, 32768


def _numba_cuda() -> Any:
    """``numba.cuda``, imported where a kernel is compiled or launched, not before. numba-cuda registers an overload of
    ``np.row_stack``, which NumPy 2.5 removed; its import failed on the H200 machine's NumPy 2.5.2 (2026-11-25), so the
    name is aliased to ``np.vstack`` first, only then and only where it is missing."""
    if not hasattr(np, "row_stack"):
        np.row_stack = np.vstack
    from numba import cuda

    return cuda


def available() -> bool:
    """Whether numba-cuda (the ``gpu`` extra, or ``dev`` for its simulator) is installed."""
    return importlib.util.find_spec("numba_cuda") is not None


def _emit_forward(spec: MLPSpec, lines: list[str], ind: str) -> None:
    """Forward pass of one point: ``h{l}_{k}`` is the input of layer l (h0 = the point), ``z{l}_{j}`` its output."""
    layers = spec.offsets()
    for k in range(spec.n_in):
        lines.append(f"{ind}h0_{k} = xdata[i, {k}]")
    for li, (w_off, b_off, fan_in, fan_out) in enumerate(layers):
        for j in range(fan_out):
            terms = " + ".join(f"h{li}_{k} * x{w_off + k * fan_out + j}" for k in range(fan_in))
            lines.append(f"{ind}z{li}_{j} = x{b_off + j} + {terms}")
            if li < len(layers) - 1:
                h = f"h{li + 1}_{j}"
                if spec.activation == "relu":
                    lines.append(f"{ind}{h} = z{li}_{j} if z{li}_{j} > ZERO else ZERO")
                elif spec.activation == "tanh":
                    lines.append(f"{ind}{h} = math.tanh(z{li}_{j})")
                else:
                    lines.append(f"{ind}{h} = ONE / (ONE + math.exp(-z{li}_{j}))")


def _emit_loss(spec: MLPSpec, lines: list[str], ind: str) -> None:
    """Cross-entropy of the logits ``z{L}_j`` against ``yi`` added to ``u``; its gradient in ``e{L}_j``."""
    top = len(spec.offsets()) - 1
    n_out = spec.n_out
    if n_out == 2:  # softplus(z_other - z_true), as the CPU kernel computes it
        lines += [
            f"{ind}dd = z{top}_1 - z{top}_0",
            f"{ind}if yi == 1:",
            f"{ind}    dd = -dd",
            f"{ind}ee = math.exp(-abs(dd))",
            f"{ind}u += (dd if dd > ZERO else ZERO) + math.log1p(ee)",
            f"{ind}sg = ONE / (ONE + ee) if dd >= ZERO else ee / (ONE + ee)",
            f"{ind}if yi == 1:",
            f"{ind}    e{top}_0 = sg",
            f"{ind}    e{top}_1 = -sg",
            f"{ind}else:",
            f"{ind}    e{top}_0 = -sg",
            f"{ind}    e{top}_1 = sg",
        ]
        return
    lines.append(f"{ind}mx = z{top}_0")
    for j in range(1, n_out):
        lines.append(f"{ind}mx = z{top}_{j} if z{top}_{j} > mx else mx")
    for j in range(n_out):
        lines.append(f"{ind}e{top}_{j} = math.exp(z{top}_{j} - mx)")
    lines.append(f"{ind}ss = " + " + ".join(f"e{top}_{j}" for j in range(n_out)))
    lines.append(f"{ind}zy = z{top}_0")
    for j in range(1, n_out):
        lines.append(f"{ind}zy = z{top}_{j} if yi == {j} else zy")
    lines.append(f"{ind}u += mx + math.log(ss) - zy")
    for j in range(n_out):
        lines.append(f"{ind}e{top}_{j} = e{top}_{j} / ss - (ONE if yi == {j} else ZERO)")


def _emit_backward(spec: MLPSpec, lines: list[str], ind: str) -> None:
    """Backward pass of one point: ``e{l}_j`` = dCE/dz of layer l, accumulated into the gradient ``g{q}``."""
    layers = spec.offsets()
    for li in range(len(layers) - 1, -1, -1):
        w_off, b_off, fan_in, fan_out = layers[li]
        for j in range(fan_out):
            lines.append(f"{ind}g{b_off + j} += e{li}_{j}")
        for k in range(fan_in):
            for j in range(fan_out):
                lines.append(f"{ind}g{w_off + k * fan_out + j} += h{li}_{k} * e{li}_{j}")
        if li == 0:
            continue
        for k in range(fan_in):
            dh = " + ".join(f"x{w_off + k * fan_out + j} * e{li}_{j}" for j in range(fan_out))
            h = f"h{li}_{k}"
            if spec.activation == "relu":
                lines.append(f"{ind}e{li - 1}_{k} = ({dh}) if {h} > ZERO else ZERO")
            elif spec.activation == "tanh":
                lines.append(f"{ind}e{li - 1}_{k} = ({dh}) * (ONE - {h} * {h})")
            else:
                lines.append(f"{ind}e{li - 1}_{k} = ({dh}) * {h} * (ONE - {h})")


def trajectory_source(spec: MLPSpec) -> str:
    """Python source of the kernel ``_trajectory`` for ``spec``: one thread per chain runs ``n_lf`` leapfrog steps
    of :func:`mcmc_landscape.samplers.hmc.leapfrog` (walls reflected in each position step) with U and ∇U of the
    classifier summed over the data points; the end point, momentum, U and ∇U are written out."""
    p = spec.n_params
    q_range = range(p)
    ind1, ind2, ind3 = " " * 4, " " * 8, " " * 12
    L = [
        "def _trajectory(pos, r, g, drift, kick, n_lf, box, xdata, ydata, out_x, out_r, out_u, out_g):",
        f"{ind1}c = cuda.grid(1)",
        f"{ind1}if c >= pos.shape[0]:",
        f"{ind1}    return",
        f"{ind1}n = xdata.shape[0]",
        f"{ind1}k = kick[c, 0]",
        f"{ind1}hk = HALF * k",
        f"{ind1}w2 = TWO * box",
        f"{ind1}w4 = FOUR * box",
        f"{ind1}u = ZERO",
    ]
    for q in q_range:
        L += [f"{ind1}x{q} = pos[c, {q}]", f"{ind1}d{q} = drift[c, {q}]", f"{ind1}r{q} = r[c, {q}] - hk * g[c, {q}]",
              f"{ind1}g{q} = ZERO"]
    L.append(f"{ind1}for j in range(n_lf):")
    for q in q_range:  # position step, then the walls: reflect once, and fold if still outside (hmc.reflect)
        L += [
            f"{ind2}x{q} = x{q} + d{q} * r{q}",
            f"{ind2}if x{q} > box or x{q} < -box:",
            f"{ind3}x{q} = (w2 - x{q}) if x{q} > box else (-w2 - x{q})",
            f"{ind3}r{q} = -r{q}",
            f"{ind3}if x{q} > box or x{q} < -box:",  # hmc._fold: unfold on the 4L circle, far half mirrored
            f"{ind3}    yy = math.fmod(x{q} + box, w4)",  # exact; a float even for a huge step
            f"{ind3}    if yy < ZERO:",
            f"{ind3}        yy += w4",
            f"{ind3}    if yy > w2:",
            f"{ind3}        x{q} = w4 - yy - box",
            f"{ind3}        r{q} = -r{q}",
            f"{ind3}    else:",
            f"{ind3}        x{q} = yy - box",
        ]
    L.append(f"{ind2}u = ZERO")
    L += [f"{ind2}g{q} = ZERO" for q in q_range]
    L += [f"{ind2}for i in range(n):", f"{ind3}yi = ydata[i]"]
    _emit_forward(spec, L, ind3)
    _emit_loss(spec, L, ind3)
    _emit_backward(spec, L, ind3)
    L.append(f"{ind2}st = k if j < n_lf - 1 else hk")
    L += [f"{ind2}r{q} = r{q} - st * g{q}" for q in q_range]
    L.append(f"{ind1}out_u[c] = u")
    for q in q_range:
        L += [f"{ind1}out_x[c, {q}] = x{q}", f"{ind1}out_r[c, {q}] = r{q}", f"{ind1}out_g[c, {q}] = g{q}"]
    return "\n".join(L) + "\n"


_KERNELS: dict[tuple[Any, ...], Any] = {}


def compile_trajectory(spec: MLPSpec, dtype: Any) -> Any:
    """The numba-cuda kernel for ``spec`` in ``dtype`` (np.float32 or np.float64), compiled once per process (on the
    first launch; under the simulator it runs as Python)."""
    cuda = _numba_cuda()

    key = (spec.widths, spec.activation, np.dtype(dtype).name)
    if key not in _KERNELS:
        dt = np.dtype(dtype).type
        ns: dict[str, Any] = {"cuda": cuda, "math": math, "ZERO": dt(0.0), "HALF": dt(0.5),
                              "ONE": dt(1.0), "TWO": dt(2.0), "FOUR": dt(4.0)}
        src = trajectory_source(spec)
        exec(compile(src, f"<hmc_gpu {'-'.join(map(str, spec.widths))} {spec.activation} {key[2]}>", "exec"), ns)
        _KERNELS[key] = cuda.jit(ns["_trajectory"])
    return _KERNELS[key]


def kernel_ptx(spec: MLPSpec, dtype: Any, cc: tuple[int, int] = (9, 0)) -> str:
    """PTX of the kernel for ``spec`` in ``dtype`` for compute capability ``cc``, compiled without a GPU (numba-cuda
    needs NVVM and NVRTC for this): to check that a chain's state stays in registers (no ``.local``)."""
    from numba import types

    cuda = _numba_cuda()

    ft = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    a2, a1 = types.Array(ft, 2, "C"), types.Array(ft, 1, "C")
    sig = (a2, a2, a2, a2, a2, types.int64, ft, a2, types.Array(types.int32, 1, "C"), a2, a2, a1, a2)
    ptx, _ = cuda.compile_ptx(compile_trajectory(spec, dtype).py_func, sig, cc=cc)
    return ptx


def mlp_cuda_trajectory_fn(spec: MLPSpec, data: Dataset,
                           torch_grad: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, ...]] | None:
    """The fused trajectory for :func:`mcmc_landscape.samplers.hmc.run_block` (the signature of ``hmc.leapfrog``
    after its first argument), or None where numba-cuda is absent or the network too large for registers.
    ``torch_grad(theta, spec, x, y)`` is the batched torch gradient the fallback loop uses
    (:func:`mcmc_landscape.energy.mlp_energy_and_grad_torch`; passed in so that the energy module can hand this out).

    Tensors on a CUDA device go to the kernel without copies on torch's current stream. CPU tensors are accepted
    only under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``): that is how the tests run the kernel's code.
    If the first launch fails (no CUDA toolkit for numba-cuda to compile with), the torch loop takes over, with a
    warning."""
    if not available() or spec.n_params > MAX_PARAMS:
        return None
    import torch

    from . import hmc

    tensors: dict[tuple[Any, ...], tuple[Any, Any]] = {}
    status = {"launched": False, "broken": False}

    def data_on(device: Any, dtype: Any) -> tuple[Any, Any]:
        key = (str(device), dtype)
        if key not in tensors:
            tensors[key] = (torch.as_tensor(data.x, dtype=dtype, device=device).contiguous(),
                            torch.as_tensor(data.y, dtype=torch.int32, device=device).contiguous())
        return tensors[key]

    def torch_loop(pos: Any, r: Any, g: Any, drift: Any, kick: Any, n_lf: int, box: float) -> tuple[Any, ...]:
        x, y = data_on(pos.device, pos.dtype)
        return hmc.leapfrog(lambda t: torch_grad(t, spec, x, y.long()), pos, r, g, drift, kick,
                            n_lf, box)

    def trajectory(pos: Any, r: Any, g: Any, drift: Any, kick: Any, n_lf: int, box: float) -> tuple[Any, ...]:
        if status["broken"]:
            return torch_loop(pos, r, g, drift, kick, n_lf, box)
        cuda = _numba_cuda()

        ins = [t.contiguous() for t in (pos, r, g, drift, kick)]
        C = pos.shape[0]
        out_x, out_r, out_g = (torch.empty_like(ins[0]) for _ in range(3))
        out_u = torch.empty(C, dtype=pos.dtype, device=pos.device)
        xd, yd = data_on(pos.device, pos.dtype)
        npdt = np.float32 if pos.dtype == torch.float32 else np.float64
        tensors_in = [*ins, xd, yd, out_x, out_r, out_u, out_g]
        tpb = THREADS_PER_BLOCK if C >= SMALL_BATCH else SMALL_BLOCK
        blocks = (C + tpb - 1) // tpb
        try:
            kernel = compile_trajectory(spec, npdt)
            with warnings.catch_warnings():  # a small batch is a small grid, by choice
                warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
                if pos.is_cuda:
                    arrs = [cuda.as_cuda_array(t, sync=False) for t in tensors_in]
                    stream = cuda.external_stream(torch.cuda.current_stream(pos.device).cuda_stream)
                    launch = kernel[blocks, tpb, stream]
                else:  # numba-cuda's simulator: host arrays
                    arrs = [t.numpy() for t in tensors_in]
                    launch = kernel[blocks, tpb]
            launch(*arrs[:5], np.int64(n_lf), npdt(box), *arrs[5:])
        except Exception as exc:  # noqa: BLE001 - a missing toolkit shows up only at the first launch
            if not pos.is_cuda or status["launched"]:
                raise
            status["broken"] = True
            log.warning("the fused GPU trajectory could not run (%s); HMC uses the torch loop instead", exc)
            return torch_loop(pos, r, g, drift, kick, n_lf, box)
        status["launched"] = True
        return out_x, out_r, out_u, out_g

    trajectory.fused = True  # type: ignore[attr-defined]
    return trajectory
