"""The energy U(θ) = Σ_i CE(softmax(f_θ(x_i)), y_i) of an MLP classifier, in two implementations with one meaning.

* :func:`mlp_energy_nb`: a Numba ``cfunc`` for one θ, used inside the random-walk sampler's parallel loop. Data points sit
  in the innermost loop so the compiler vectorizes it; all work arrays are passed in, nothing is allocated.
* :func:`mlp_energy_torch`: a PyTorch function for a batch of θ of shape (chains, p) on any device and dtype.

The sampler targets exp(-U/T) on the box [-L, L]^p; the "loss" is the mean cross-entropy U/n.
An :class:`EnergyModel` bundles what a sampler needs: the dimension, the compiled function with its data, and the size
of the per-chain scratch buffer. Any ``cfunc`` of :data:`ENERGY_SIG` can be wrapped, e.g. a Gaussian for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba as nb
import numpy as np
from numba import types

from mcmc_landscape.data.datasets import Dataset
from mcmc_landscape.models.nets import MLPSpec

RELU, TANH, SIGMOID = 0, 1, 2

#: The one signature of every CPU energy: ``U = f(theta, fdata, idata, scratch)``. Energies are compiled as Numba
#: ``cfunc``s of this type and passed to the sampler as first-class functions, so the sampler compiles once and is
#: cached on disk whatever the energy.
ENERGY_SIG = types.float64(types.float64[::1], types.float64[:, ::1], types.int64[::1], types.float64[:, ::1])
ENERGY_FN_TYPE = types.FunctionType(ENERGY_SIG)


@nb.njit(fastmath=True, cache=True, inline="always")
def _dense_layer(theta, off, inp, out, act, apply_act):  # pragma: no cover - compiled
    """One layer over all points: ``out[j] = act(b_j + Σ_k W[k, j]·inp[k])`` with W (fan-in × fan-out, row-major)
    and b read from θ at ``off``; ``inp`` is (fan-in, n), ``out`` (fan-out, n), points innermost so the loops
    vectorize. Returns the offset of the next layer."""
    fan_in = inp.shape[0]
    fan_out = out.shape[0]
    n = inp.shape[1]
    boff = off + fan_in * fan_out
    for j in range(fan_out):
        z = out[j]
        bj = theta[boff + j]
        for i in range(n):
            z[i] = bj
        for k in range(fan_in):
            w = theta[off + k * fan_out + j]
            src = inp[k]
            for i in range(n):
                z[i] += w * src[i]
        if apply_act:
            if act == 0:
                for i in range(n):
                    z[i] = max(z[i], 0.0)
            elif act == 1:
                for i in range(n):
                    z[i] = np.tanh(z[i])
            else:
                for i in range(n):
                    z[i] = 1.0 / (1.0 + np.exp(-z[i]))
    return boff + fan_out


@nb.cfunc(ENERGY_SIG, cache=True, fastmath=True)
def mlp_energy_nb(theta, xT, idata, scratch):
    """U(θ) for one flat θ. ``xT`` is (d, n); ``idata = [activation, n_widths, widths..., y...]``; ``scratch`` is
    (2·wmax, n)."""
    act = idata[0]
    n_w = idata[1]
    widths = idata[2 : 2 + n_w]
    y = idata[2 + n_w :]
    n = xT.shape[1]
    n_layers = n_w - 1
    wmax = scratch.shape[0] // 2
    off = 0
    src = 0  # which half of scratch holds the current activations; layer 0 reads xT directly
    for layer in range(n_layers):
        fan_in = widths[layer]
        dst = wmax if src == 0 else 0
        inp = xT if layer == 0 else scratch[src : src + fan_in]
        off = _dense_layer(theta, off, inp, scratch[dst : dst + widths[layer + 1]], act, layer < n_layers - 1)
        src = dst
    n_out = widths[n_layers]
    total = 0.0
    if n_out == 2:
        # CE with two classes is softplus(z_other - z_true): one exp and one log per point.
        z0 = scratch[src]
        z1 = scratch[src + 1]
        for i in range(n):
            d = z1[i] - z0[i]
            if y[i] == 1:
                d = -d
            total += max(d, 0.0) + np.log1p(np.exp(-abs(d)))
    else:
        for i in range(n):
            m = scratch[src, i]
            for c in range(1, n_out):
                m = max(m, scratch[src + c, i])
            s = 0.0
            for c in range(n_out):
                s += np.exp(scratch[src + c, i] - m)
            total += m + np.log(s) - scratch[src + y[i], i]
    return total


@dataclass(frozen=True)
class EnergyModel:
    """Everything a CPU sampler needs to evaluate U: ``fn(theta, fdata, idata, scratch) -> U`` (a cfunc of
    :data:`ENERGY_SIG`) with its data, the dimension p and the shape of the per-chain scratch buffer."""

    p: int
    fn: Any
    fdata: np.ndarray
    idata: np.ndarray
    scratch_shape: tuple[int, int]
    n_data: int = 1
    description: str = ""

    def energy(self, theta: np.ndarray) -> np.ndarray:
        """U at one θ (p,) or a batch (..., p), evaluated with the Numba kernel."""
        theta = np.asarray(theta, dtype=np.float64)
        flat = np.ascontiguousarray(theta.reshape(-1, self.p))
        out = np.empty(flat.shape[0])
        _energy_batch(self.fn, flat, self.fdata, self.idata, np.zeros(self.scratch_shape), out)
        return out.reshape(theta.shape[:-1])


@nb.njit(types.void(ENERGY_FN_TYPE, types.float64[:, ::1], types.float64[:, ::1], types.int64[::1],
                    types.float64[:, ::1], types.float64[::1]), cache=True)
def _energy_batch(fn, thetas, fdata, idata, scratch, out):
    for c in range(thetas.shape[0]):
        out[c] = fn(thetas[c], fdata, idata, scratch)


def mlp_energy_model(spec: MLPSpec, data: Dataset) -> EnergyModel:
    """The classifier energy of ``spec`` on ``data`` as an :class:`EnergyModel`."""
    if data.n_in != spec.n_in or data.n_classes > spec.n_out:
        raise ValueError(f"data ({data.n_in} inputs, {data.n_classes} classes) does not fit {spec.widths}")
    xT = np.ascontiguousarray(data.x.T, dtype=np.float64)
    idata = np.concatenate([[spec.activation_code, len(spec.widths)], spec.widths, data.y]).astype(np.int64)
    wmax = max(spec.widths)
    return EnergyModel(spec.n_params, mlp_energy_nb, xT, idata, (2 * wmax, data.n), data.n, spec.describe())


def mlp_energy_torch(theta, spec: MLPSpec, x, y):
    """U for a batch of flat θ of shape (chains, p); ``x`` (n, d) and ``y`` (n,) tensors on the same device.

    Uses the same flat layout as the Numba kernel; differentiable, so HMC and DSS can take its gradient.
    """
    import torch

    h = x.unsqueeze(0).expand(theta.shape[0], -1, -1)
    layers = spec.offsets()
    for li, (w_off, b_off, fan_in, fan_out) in enumerate(layers):
        W = theta[:, w_off:b_off].reshape(-1, fan_in, fan_out)
        b = theta[:, b_off : b_off + fan_out]
        h = torch.baddbmm(b.unsqueeze(1), h, W)
        if li < len(layers) - 1:
            if spec.activation == "relu":
                h = torch.relu(h)
            elif spec.activation == "tanh":
                h = torch.tanh(h)
            else:
                h = torch.sigmoid(h)
    logp = torch.log_softmax(h, dim=-1)
    idx = y.view(1, -1, 1).expand(theta.shape[0], -1, 1)
    return -logp.gather(-1, idx).squeeze(-1).sum(dim=-1)


def mlp_energy_and_grad_torch(theta, spec: MLPSpec, x, y):
    """U and ∇U for a batch of flat θ (chains, p), with the backward pass written out: no autograd graph.

    Same numbers as ``torch.autograd`` on :func:`mlp_energy_torch` (tested to 1e-10 in float64), at a fraction of the
    per-operation overhead that dominates small networks with many chains.
    """
    import torch

    B = theta.shape[0]
    layers = spec.offsets()
    Ws, hs, zs = [], [x.unsqueeze(0).expand(B, -1, -1)], []
    for li, (w_off, b_off, fan_in, fan_out) in enumerate(layers):
        W = theta[:, w_off:b_off].reshape(B, fan_in, fan_out)
        z = torch.baddbmm(theta[:, b_off : b_off + fan_out].unsqueeze(1), hs[-1], W)
        Ws.append(W)
        zs.append(z)
        if li < len(layers) - 1:
            if spec.activation == "relu":
                hs.append(torch.relu(z))
            elif spec.activation == "tanh":
                hs.append(torch.tanh(z))
            else:
                hs.append(torch.sigmoid(z))
    logp = torch.log_softmax(zs[-1], dim=-1)
    idx = y.view(1, -1, 1).expand(B, -1, 1)
    energy = -logp.gather(-1, idx).squeeze(-1).sum(dim=-1)
    dz = logp.exp()
    dz.scatter_add_(-1, idx, torch.full_like(idx, -1, dtype=dz.dtype))  # softmax - onehot(y)
    grads = [None] * len(layers)
    for li in range(len(layers) - 1, -1, -1):
        dW = torch.bmm(hs[li].transpose(1, 2), dz)
        grads[li] = (dW.reshape(B, -1), dz.sum(dim=1))
        if li > 0:
            dh = torch.bmm(dz, Ws[li].transpose(1, 2))
            if spec.activation == "relu":
                dz = dh * (zs[li - 1] > 0)
            elif spec.activation == "tanh":
                dz = dh * (1 - hs[li] ** 2)
            else:
                dz = dh * hs[li] * (1 - hs[li])
    grad = torch.cat([t for pair in grads for t in pair], dim=1)
    return energy, grad


@nb.njit(fastmath=True, cache=True, inline="always")
def _mlp_energy_grad_one(theta, grad, xT, idata, acts, delta, delta2):  # pragma: no cover - compiled
    """U(θ) returned and ∇U written into ``grad`` for one θ; ``acts`` (Σ widths[1:], n) keeps every layer's output
    (points innermost so loops vectorize) for the backward pass, which walks them in reverse with two delta buffers
    (wmax, n). Same layout and idata as :func:`mlp_energy_nb`."""
    act = idata[0]
    n_w = idata[1]
    widths = idata[2 : 2 + n_w]
    y = idata[2 + n_w :]
    n = xT.shape[1]
    n_layers = n_w - 1
    n_out = widths[n_layers]
    rows = acts.shape[0]
    # forward
    off = 0
    row = 0
    for layer in range(n_layers):
        fan_in = widths[layer]
        fan_out = widths[layer + 1]
        inp = xT if layer == 0 else acts[row - fan_in : row]
        off = _dense_layer(theta, off, inp, acts[row : row + fan_out], act, layer < n_layers - 1)
        row += fan_out
    # loss and its gradient with respect to the logits, into delta
    top = rows - n_out
    total = 0.0
    if n_out == 2:
        for i in range(n):
            d = acts[top + 1, i] - acts[top, i]
            if y[i] == 1:
                d = -d
            e = np.exp(-abs(d))
            total += max(d, 0.0) + np.log1p(e)
            sig = 1.0 / (1.0 + e) if d >= 0 else e / (1.0 + e)  # d CE / d z_other
            if y[i] == 1:
                delta[0, i] = sig
                delta[1, i] = -sig
            else:
                delta[0, i] = -sig
                delta[1, i] = sig
    else:
        for i in range(n):
            m = acts[top, i]
            for k in range(1, n_out):
                m = max(m, acts[top + k, i])
            s = 0.0
            for k in range(n_out):
                delta[k, i] = np.exp(acts[top + k, i] - m)
                s += delta[k, i]
            total += m + np.log(s) - acts[top + y[i], i]
            for k in range(n_out):
                delta[k, i] /= s
            delta[y[i], i] -= 1.0
    # backward
    for layer in range(n_layers - 1, -1, -1):
        fan_in = widths[layer]
        fan_out = widths[layer + 1]
        off -= fan_in * fan_out + fan_out
        boff = off + fan_in * fan_out
        row -= fan_out
        for j in range(fan_out):
            s = 0.0
            for i in range(n):
                s += delta[j, i]
            grad[boff + j] = s
        for k in range(fan_in):
            inp = xT[k] if layer == 0 else acts[row - fan_in + k]
            for j in range(fan_out):
                s = 0.0
                for i in range(n):
                    s += inp[i] * delta[j, i]
                grad[off + k * fan_out + j] = s
        if layer > 0:
            for k in range(fan_in):
                h = acts[row - fan_in + k]
                d2 = delta2[k]
                for i in range(n):
                    d2[i] = 0.0
                for j in range(fan_out):
                    w = theta[off + k * fan_out + j]
                    dj = delta[j]
                    for i in range(n):
                        d2[i] += w * dj[i]
                if act == 0:
                    for i in range(n):
                        if h[i] <= 0.0:
                            d2[i] = 0.0
                elif act == 1:
                    for i in range(n):
                        d2[i] *= 1.0 - h[i] * h[i]
                else:
                    for i in range(n):
                        d2[i] *= h[i] * (1.0 - h[i])
            delta, delta2 = delta2, delta
    return total


@nb.njit(cache=True)
def _scratch_sizes(idata):  # pragma: no cover - compiled
    n_w = idata[1]
    rows, wmax = 0, 0
    for layer in range(1, n_w):
        rows += idata[2 + layer]
        wmax = max(wmax, idata[2 + layer])
    return rows, wmax


@nb.njit(parallel=True, fastmath=True, cache=True)
def _mlp_energy_grad_batch(thetas, xT, idata, n_chunks, out_u, out_g):  # pragma: no cover - compiled
    """U and ∇U for every row of ``thetas`` (C, p), chains split over threads in chunks that each own their scratch."""
    rows, wmax = _scratch_sizes(idata)
    n = xT.shape[1]
    C = thetas.shape[0]
    for chunk in nb.prange(n_chunks):
        acts = np.empty((rows, n), dtype=thetas.dtype)
        delta = np.empty((wmax, n), dtype=thetas.dtype)
        delta2 = np.empty((wmax, n), dtype=thetas.dtype)
        for c in range(chunk * C // n_chunks, (chunk + 1) * C // n_chunks):
            out_u[c] = _mlp_energy_grad_one(thetas[c], out_g[c], xT, idata, acts, delta, delta2)


def _thread_chunks(n_chains: int) -> int:
    """Chunks of chains for the parallel kernels: a few per thread, each chunk owning its scratch arrays."""
    return max(1, min(n_chains, 8 * nb.get_num_threads()))


def mlp_energy_and_grad_nb(theta: np.ndarray, model: EnergyModel) -> tuple[np.ndarray, np.ndarray]:
    """U (C,) and ∇U (C, p) of an MLP :class:`EnergyModel` for a batch θ (C, p), float64 or float32, by Numba over
    threads: on the CPU this is several times faster than the batched torch pass for small networks."""
    theta = np.ascontiguousarray(theta)
    if theta.dtype not in (np.float64, np.float32):
        theta = theta.astype(np.float64)
    u = np.empty(theta.shape[0], dtype=theta.dtype)
    g = np.empty_like(theta)
    _mlp_energy_grad_batch(theta, model.fdata.astype(theta.dtype, copy=False), model.idata,
                           _thread_chunks(theta.shape[0]), u, g)
    return u, g


def mlp_torch_energy_grad_fn(spec: MLPSpec, data: Dataset, device: Any, dtype: Any):
    """The (C, p) tensor -> (U, ∇U) function HMC uses for the classifier: Numba threads on the CPU (zero-copy through
    numpy), the batched torch pass with the written-out backward on any other device."""
    import torch

    if torch.device(device).type == "cpu":
        model = mlp_energy_model(spec, data)

        def on_cpu(theta: Any) -> tuple[Any, Any]:
            u, g = mlp_energy_and_grad_nb(theta.detach().numpy(), model)
            return torch.from_numpy(u), torch.from_numpy(g)

        return on_cpu
    x = torch.as_tensor(data.x, dtype=dtype, device=device)
    y = torch.as_tensor(data.y, dtype=torch.int64, device=device)
    return lambda theta: mlp_energy_and_grad_torch(theta, spec, x, y)
