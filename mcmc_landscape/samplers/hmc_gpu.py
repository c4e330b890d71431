r"""The fused GPU kernels of HMC for the MLP classifier: every leapfrog step of every chain in one CUDA kernel, and
whole iterations (momentum, trajectory, accept, warm-up adaptation) for a run of iterations in another.

The torch loop (:func:`mcmc_landscape.samplers.hmc.leapfrog` with the written-out batched backward) pays ~20 kernel
launches and a host synchronisation per leapfrog step whatever the number of chains. Here one thread owns one chain
for a whole trajectory: θ, momentum, step scale and ∇U live in registers, the data points (a few, read by every
thread alike) come through the cache, and the only memory traffic is reading the start and writing the end. One
launch per trajectory, on torch's current stream, no host synchronisation.

For registers to hold the parameters the kernel is written out for one architecture: :func:`trajectory_source`
generates straight-line Python for the forward pass, the loss, the backward pass and the leapfrog updates of that
MLP (one scalar variable per parameter), and numba-cuda compiles it. The same source runs unchanged in numba-cuda's
simulator (``NUMBA_ENABLE_CUDASIM=1``) on the CPU, which is how the tests hold it equal to the torch loop: same steps,
same reflection at the walls (:func:`walls.fold_coordinate`, the CPU trajectory's own, compiled as a device
function), float32 and float64.

The host still paid ~2 ms an iteration (numba-cuda's dispatch, ~30 small torch launches for momenta, the accept step
and the step-size adaptation), which bound batches of a thousand chains on an H200. So a second kernel,
``_iterations`` (:func:`iterations_source`), runs whole iterations of :func:`mcmc_landscape.samplers.hmc.run_block`
per thread (momentum, the same trajectory code, accept, Stan's warm-up adaptation per chain, the kept draws), a run of
iterations per launch, from random numbers the host draws in the loop's order. It is tested equal to run_block's
torch iterations in the simulator across every event of the warm-up schedule.

Registers run out as the network grows (ptxas for sm_90, float32: [2,2], p = 18, 99 and 159 registers a thread for
the two kernels, no spills; [5,5], p = 57, 255 with 32 and 1,524 bytes spilled). Networks with more than
:data:`MAX_PARAMS` parameters would spill heavily; for them (and where numba-cuda is not
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

from mcmc_landscape.data.datasets import Dataset
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import adaptation, walls

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


def _emit_leapfrog(spec: MLPSpec, L: list[str], ind: str) -> None:
    """``n_lf`` leapfrog steps on the register variables ``x{q}`` (position), ``r{q}`` (momentum, already half
    kicked), ``d{q}`` (position step scale) with kick ``k`` and half kick ``hk``: walls reflected in each position step,
    U in ``u`` and ∇U in ``g{q}`` at the end point."""
    q_range = range(spec.n_params)
    i2, i3 = ind + " " * 4, ind + " " * 8
    L += [f"{ind}g{q} = ZERO" for q in q_range]
    L.append(f"{ind}u = ZERO")
    L.append(f"{ind}for j in range(n_lf):")
    for q in q_range:  # position step, then the walls: walls.fold_coordinate, the CPU trajectory's own fold
        L += [
            f"{i2}x{q} = x{q} + d{q} * r{q}",
            f"{i2}if x{q} > box or x{q} < -box:",
            f"{i3}x{q}, r{q} = fold_coordinate(x{q}, r{q}, box)",
        ]
    L.append(f"{i2}u = ZERO")
    L += [f"{i2}g{q} = ZERO" for q in q_range]
    L += [f"{i2}for i in range(n):", f"{i3}yi = ydata[i]"]
    _emit_forward(spec, L, i3)
    _emit_loss(spec, L, i3)
    _emit_backward(spec, L, i3)
    L.append(f"{i2}st = k if j < n_lf - 1 else hk")
    L += [f"{i2}r{q} = r{q} - st * g{q}" for q in q_range]


def trajectory_source(spec: MLPSpec) -> str:
    """Python source of the kernel ``_trajectory`` for ``spec``: one thread per chain runs ``n_lf`` leapfrog steps
    of :func:`mcmc_landscape.samplers.hmc.leapfrog` (walls reflected in each position step) with U and ∇U of the
    classifier summed over the data points; the end point, momentum, U and ∇U are written out."""
    q_range = range(spec.n_params)
    ind1 = " " * 4
    L = [
        "def _trajectory(pos, r, g, drift, kick, n_lf, box, xdata, ydata, out_x, out_r, out_u, out_g):",
        f"{ind1}c = cuda.grid(1)",
        f"{ind1}if c >= pos.shape[0]:",
        f"{ind1}    return",
        f"{ind1}n = xdata.shape[0]",
        f"{ind1}k = kick[c, 0]",
        f"{ind1}hk = HALF * k",
    ]
    for q in q_range:
        L += [f"{ind1}x{q} = pos[c, {q}]", f"{ind1}d{q} = drift[c, {q}]", f"{ind1}r{q} = r[c, {q}] - hk * g[c, {q}]"]
    _emit_leapfrog(spec, L, ind1)
    L.append(f"{ind1}out_u[c] = u")
    for q in q_range:
        L += [f"{ind1}out_x[c, {q}] = x{q}", f"{ind1}out_r[c, {q}] = r{q}", f"{ind1}out_g[c, {q}] = g{q}"]
    return "\n".join(L) + "\n"


#: Arguments of the ``_iterations`` kernel, in order (arrays first, then the schedule's scalars, then data and outputs).
ITERATION_ARGS = ("pos", "ucur_in", "grad", "log_step", "ls_bar", "h_bar", "mu", "inv_mass", "w_mean", "w_m2",
                  "n_acc", "n_bad", "normal", "unif", "nlf", "ends", "it0", "wn0", "da0", "k0", "warmup", "start",
                  "stop", "thin", "adapt_mass", "inv_t", "target", "box", "xdata", "ydata", "out_theta",
                  "out_energy", "out_acc")


def iterations_source(spec: MLPSpec) -> str:
    """Python source of the kernel ``_iterations`` for ``spec``: one thread per chain runs whole HMC iterations of
    :func:`mcmc_landscape.samplers.hmc.run_block`, one per row of ``normal``: momentum from the drawn normals, the
    trajectory, the accept step against the drawn uniform, Stan's warm-up (dual averaging of the step size, Welford
    estimate of the diagonal mass matrix, windows closing at ``ends``) and the kept draws written from index ``k0``.
    The chain state is read at the start and written back at the end; nothing returns to the host in between."""
    q_range = range(spec.n_params)
    i1, i2, i3, i4 = (" " * (4 * j) for j in range(1, 5))
    L = [f"def _iterations({', '.join(ITERATION_ARGS)}):",
         f"{i1}c = cuda.grid(1)",
         f"{i1}if c >= pos.shape[0]:",
         f"{i1}    return",
         f"{i1}n = xdata.shape[0]",
         f"{i1}ucur = ucur_in[c]",
         f"{i1}ls = log_step[c]",
         f"{i1}lsb = ls_bar[c]",
         f"{i1}hb = h_bar[c]",
         f"{i1}muc = mu[c]",
         f"{i1}na = n_acc[c]",
         f"{i1}nb = n_bad[c]",
         f"{i1}it = it0",
         f"{i1}wn = wn0",
         f"{i1}da = da0",
         f"{i1}ko = k0",
         f"{i1}for kk in range(normal.shape[0]):",
         f"{i2}n_lf = nlf[kk]",
         f"{i2}eps = math.exp(ls)",
         f"{i2}k = eps * inv_t",
         f"{i2}hk = HALF * k",
         f"{i2}s0 = ZERO"]
    for q in q_range:  # r = z / sqrt(M^-1); h0's kinetic term; the step scale; the first half kick
        L += [f"{i2}im = inv_mass[c, {q}]",
              f"{i2}r{q} = normal[kk, c, {q}] / math.sqrt(im)",
              f"{i2}s0 += r{q} * r{q} * im",
              f"{i2}d{q} = eps * im",
              f"{i2}x{q} = pos[c, {q}]",
              f"{i2}r{q} = r{q} - hk * grad[c, {q}]"]
    L.append(f"{i2}h0 = ucur * inv_t + HALF * s0")
    _emit_leapfrog(spec, L, i2)
    L += [f"{i2}s1 = ZERO", f"{i2}fin = math.isfinite(u)"]
    for q in q_range:
        L += [f"{i2}s1 += r{q} * r{q} * inv_mass[c, {q}]", f"{i2}fin = fin and math.isfinite(g{q})"]
    L += [f"{i2}h1 = u * inv_t + HALF * s1",
          f"{i2}fin = fin and math.isfinite(h1)",
          f"{i2}a = ZERO",
          f"{i2}if fin:",
          f"{i3}la = h0 - h1",
          f"{i3}if la > ZERO:",
          f"{i3}    la = ZERO",
          f"{i3}a = math.exp(la)",
          f"{i2}else:",
          f"{i3}nb += 1",
          f"{i2}acc = fin and unif[kk, c] < a",
          f"{i2}if acc:",
          f"{i3}ucur = u"]
    L += [f"{i3}pos[c, {q}] = x{q}\n{i3}grad[c, {q}] = g{q}" for q in q_range]
    L += [f"{i2}if it < warmup:",  # hmc.run_block's warm-up, with its scalars rounded to the dtype as torch does
          f"{i3}da += 1",
          f"{i3}m = float(da)",
          f"{i3}w = 1.0 / (m + T0)",
          f"{i3}hb = DT(1.0 - w) * hb + DT(w) * (target - a)",
          f"{i3}ls = muc - DT(math.sqrt(m) / GAMMA) * hb",
          f"{i3}eta = m ** -KAPPA",
          f"{i3}lsb = DT(eta) * ls + DT(1.0 - eta) * lsb",
          f"{i3}if adapt_mass and it >= start and it < stop:",
          f"{i4}wn += 1",
          f"{i4}for q in range(pos.shape[1]):",
          f"{i4}    delta = pos[c, q] - w_mean[c, q]",
          f"{i4}    w_mean[c, q] = w_mean[c, q] + delta / DT(wn)",
          f"{i4}    w_m2[c, q] = w_m2[c, q] + delta * (pos[c, q] - w_mean[c, q])",
          f"{i3}closes = False",
          f"{i3}for e in range(ends.shape[0]):",
          f"{i3}    closes = closes or ends[e] == it + 1",
          f"{i3}if adapt_mass and closes and wn > 1:",
          f"{i4}c1 = DT(wn / (wn + 5.0))",
          f"{i4}c2 = DT(1e-3 * (5.0 / (wn + 5.0)))",
          f"{i4}for q in range(pos.shape[1]):",
          f"{i4}    inv_mass[c, q] = c1 * (w_m2[c, q] / DT(wn - 1)) + c2",
          f"{i4}    w_mean[c, q] = ZERO",
          f"{i4}    w_m2[c, q] = ZERO",
          f"{i4}wn = 0",
          f"{i4}da = 0",
          f"{i4}muc = ls + LOG10",
          f"{i4}hb = ZERO",
          f"{i4}lsb = ZERO",
          f"{i3}if it == warmup - 1:",
          f"{i4}ls = lsb",
          f"{i2}else:",
          f"{i3}if acc:",
          f"{i4}na += 1",
          f"{i3}if (it - warmup + 1) % thin == 0:",
          f"{i4}for q in range(pos.shape[1]):",
          f"{i4}    out_theta[c, ko, q] = pos[c, q]",
          f"{i4}out_energy[c, ko] = ucur",
          f"{i4}out_acc[c, ko] = 1 if acc else 0",
          f"{i4}ko += 1",
          f"{i2}it += 1",
          f"{i1}ucur_in[c] = ucur",
          f"{i1}log_step[c] = ls",
          f"{i1}ls_bar[c] = lsb",
          f"{i1}h_bar[c] = hb",
          f"{i1}mu[c] = muc",
          f"{i1}n_acc[c] = na",
          f"{i1}n_bad[c] = nb"]
    return "\n".join(L) + "\n"


_KERNELS: dict[tuple[Any, ...], Any] = {}


def adaptation_globals(dt: Any) -> dict[str, Any]:
    """Dual averaging's constants as the kernel source's globals, from :mod:`.adaptation` (the CPU's own source)."""
    return {"GAMMA": adaptation.GAMMA, "T0": adaptation.T0, "KAPPA": adaptation.KAPPA, "LOG10": dt(adaptation.MU_SHIFT)}


_SOURCES = {"trajectory": trajectory_source, "iterations": iterations_source}


def compile_kernel(spec: MLPSpec, dtype: Any, kind: str = "trajectory") -> Any:
    """The numba-cuda kernel ``kind`` (``trajectory`` or ``iterations``) for ``spec`` in ``dtype`` (np.float32 or
    np.float64), compiled once per process (on the first launch; under the simulator it runs as Python)."""
    cuda = _numba_cuda()

    key = (kind, spec.widths, spec.activation, np.dtype(dtype).name)
    if key not in _KERNELS:
        dt = np.dtype(dtype).type
        ns: dict[str, Any] = {"cuda": cuda, "math": math, "DT": dt, "ZERO": dt(0.0), "HALF": dt(0.5),
                              "ONE": dt(1.0), **adaptation_globals(dt),
                              "fold_coordinate": cuda.jit(device=True, inline="always")(walls.fold_coordinate)}
        src = _SOURCES[kind](spec)
        exec(compile(src, f"<hmc_gpu {kind} {'-'.join(map(str, spec.widths))} {spec.activation} {key[3]}>", "exec"),
             ns)
        _KERNELS[key] = cuda.jit(ns[f"_{kind}"])
    return _KERNELS[key]


def kernel_ptx(spec: MLPSpec, dtype: Any, cc: tuple[int, int] = (9, 0), kind: str = "trajectory") -> str:
    """PTX of the kernel ``kind`` for ``spec`` in ``dtype`` for compute capability ``cc``, compiled without a GPU
    (numba-cuda needs NVVM and NVRTC for this): to check that a chain's state stays in registers (no ``.local``)."""
    from numba import types

    cuda = _numba_cuda()

    ft = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    f1, f2, f3 = (types.Array(ft, nd, "C") for nd in (1, 2, 3))
    i1, i64 = types.Array(types.int64, 1, "C"), types.int64
    y = types.Array(types.int32, 1, "C")
    if kind == "trajectory":
        sig = (f2, f2, f2, f2, f2, i64, ft, f2, y, f2, f2, f1, f2)
    else:
        sig = (f2, f1, f2, f1, f1, f1, f1, f2, f2, f2, i1, i1, f3, f2, i1, i1, *([i64] * 9), ft, ft, ft, f2, y, f3,
               f2, types.Array(types.uint8, 2, "C"))
    ptx, _ = cuda.compile_ptx(compile_kernel(spec, dtype, kind).py_func, sig, cc=cc)
    return ptx


def _np_float(t: Any) -> type:
    """The NumPy scalar type of a float tensor, for the kernels' scalar arguments and their compiled dtype."""
    import torch

    return np.float32 if t.dtype == torch.float32 else np.float64


def _on_gpu(t: Any) -> bool:
    """Whether ``t`` lives on a CUDA device (else the kernels run only under numba-cuda's simulator)."""
    return bool(t.is_cuda)


def _launch(kernel: Any, n_chains: int, args: list[Any], device_arrays: bool) -> None:
    """Launch ``kernel`` with one thread per chain. Tensors on a CUDA device go without copies on torch's current
    stream; CPU tensors only under numba-cuda's simulator (as host arrays, written in place)."""
    import torch

    cuda = _numba_cuda()
    tpb = THREADS_PER_BLOCK if n_chains >= SMALL_BATCH else SMALL_BLOCK
    blocks = (n_chains + tpb - 1) // tpb
    with warnings.catch_warnings():  # a small batch is a small grid, by choice
        warnings.filterwarnings("ignore", message="Grid size .* under-utilization")
        if device_arrays:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            arrs = [cuda.as_cuda_array(a, sync=False) if isinstance(a, torch.Tensor) else a for a in args]
            stream = cuda.external_stream(torch.cuda.current_stream(tensors[0].device).cuda_stream)
            kernel[blocks, tpb, stream](*arrs)
        else:
            kernel[blocks, tpb](*[a.numpy() if isinstance(a, torch.Tensor) else a for a in args])


def mlp_cuda_trajectory_fn(spec: MLPSpec, data: Dataset,
                           torch_grad: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, ...]] | None:
    """The fused trajectory for :func:`mcmc_landscape.samplers.hmc.run_block` (the signature of ``hmc.leapfrog``
    after its first argument), or None where numba-cuda is absent or the network too large for registers.
    ``torch_grad(theta, spec, x, y)`` is the batched torch gradient the fallback loop uses
    (:func:`mcmc_landscape.models.energy.mlp_energy_and_grad_torch`; passed in so that the energy module can hand this out).

    It carries ``iterations(chains, noise, schedule, out_theta, out_energy, out_acc) -> bool``: whole HMC iterations,
    one kernel launch for a run of them (:func:`iterations_source`), so that the host's work per iteration (a
    dispatch, ~30 small torch launches) no longer bounds small batches; ``run_block`` uses it where present.

    Tensors on a CUDA device go to the kernels without copies on torch's current stream. CPU tensors are accepted
    only under numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``): that is how the tests run the kernels' code.
    If a kernel's first launch fails (no CUDA toolkit for numba-cuda to compile with), the slower path takes over for
    that kernel, with a warning: whole iterations hand over to the iteration loop, the trajectory to the torch loop."""
    if not available() or spec.n_params > MAX_PARAMS:
        return None
    import torch

    from mcmc_landscape.samplers import hmc

    tensors: dict[tuple[Any, ...], tuple[Any, Any]] = {}
    # per kernel: a kernel that fails at its first launch is not tried again (the other may still run)
    status = {kind: {"launched": False, "broken": False} for kind in _SOURCES}

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

    def launch_or_fall_back(kind: str, like: Any, args: list[Any]) -> bool:
        """Launch; False (and the slower path from then on) if this kernel's very first launch on a GPU fails."""
        st = status[kind]
        if st["broken"]:
            return False
        on_gpu = _on_gpu(like)
        try:
            _launch(compile_kernel(spec, _np_float(like), kind), like.shape[0], args, on_gpu)
        except Exception as exc:  # noqa: BLE001 - a missing toolkit shows up only at the first launch
            if not on_gpu or st["launched"]:
                raise
            st["broken"] = True
            instead = "the torch loop" if kind == "trajectory" else "a launch of the trajectory kernel an iteration"
            log.warning("the fused GPU kernel %r could not run (%s); HMC uses %s instead", kind, exc, instead)
            return False
        st["launched"] = True
        return True

    def trajectory(pos: Any, r: Any, g: Any, drift: Any, kick: Any, n_lf: int, box: float) -> tuple[Any, ...]:
        ins = [t.contiguous() for t in (pos, r, g, drift, kick)]
        out_x, out_r, out_g = (torch.empty_like(ins[0]) for _ in range(3))
        out_u = torch.empty(pos.shape[0], dtype=pos.dtype, device=pos.device)
        npdt = _np_float(pos)
        xd, yd = data_on(pos.device, pos.dtype)
        if launch_or_fall_back("trajectory", pos, [*ins, np.int64(n_lf), npdt(box), xd, yd, out_x, out_r, out_u,
                                                   out_g]):
            return out_x, out_r, out_u, out_g
        return torch_loop(pos, r, g, drift, kick, n_lf, box)

    ends_on: dict[tuple[Any, ...], Any] = {}

    def iterations(chains: hmc.FusedChains, noise: hmc.Noise, sched: hmc.FusedSchedule, out_theta: Any,
                   out_energy: Any, out_acc: Any) -> bool:
        pos = chains.position
        npdt = _np_float(pos)
        s = sched.settings
        key = (str(pos.device), tuple(sched.ends))
        if key not in ends_on:
            ends_on[key] = torch.tensor(sched.ends or [-1], dtype=torch.int64, device=pos.device)
        if out_theta.shape[1] == 0:  # no kept draws in this block: the kernel writes none, but wants arrays
            out_theta, out_energy = pos.new_empty((pos.shape[0], 1, pos.shape[1])), pos.new_empty((pos.shape[0], 1))
            out_acc = torch.empty((pos.shape[0], 1), dtype=torch.bool, device=pos.device)
        xd, yd = data_on(pos.device, pos.dtype)
        ints = (sched.iteration, sched.welford_n, sched.da_count, sched.k_out, s.warmup, sched.start, sched.stop,
                s.thin, int(s.adapt_mass))
        args = [*chains, noise.normal, noise.uniform, noise.n_leapfrog, ends_on[key], *map(np.int64, ints),
                npdt(sched.inv_t), npdt(s.target_accept), npdt(s.box), xd, yd, out_theta, out_energy,
                out_acc.view(torch.uint8)]
        return launch_or_fall_back("iterations", pos, args)

    trajectory.fused = True  # type: ignore[attr-defined]
    trajectory.iterations = iterations  # type: ignore[attr-defined]
    return trajectory
