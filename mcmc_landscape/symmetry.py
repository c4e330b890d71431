"""Canonical representatives of draws modulo the exact symmetries of an MLP, so that each minimum counts once.

For every hidden layer, in order:

* **sign flips** (tanh: tanh(-z) = -tanh(z); sigmoid: σ(-z) = 1 - σ(z), the outgoing bias absorbing the constant):
  a unit whose bias is negative has its incoming weights, bias and outgoing weights negated (and, for sigmoid, the
  next layer's bias shifted by the old outgoing weights);
* **positive rescaling** (relu: relu(s z) = s relu(z) for s > 0): a unit's incoming weights and bias are divided by
  their norm and its outgoing weights multiplied by it;
* **permutations**: the units are sorted by their first incoming weight (after the steps above).

Each step maps θ to a θ' with the same network function, hence the same energy (tested). Rescaled draws may leave the
sampling box; the canonical form is for geometry, not for sampling. The flat layout is the one of
:mod:`mcmc_landscape.nets`.
"""

from __future__ import annotations

import numpy as np

from .nets import MLPSpec


def canonicalize(theta: np.ndarray, spec: MLPSpec) -> np.ndarray:
    """Canonical form of each row of ``theta`` (n, p); returns a new array."""
    theta = np.array(theta, dtype=np.float64, copy=True)
    single = theta.ndim == 1
    if single:
        theta = theta[None]
    offsets = spec.offsets()
    n = theta.shape[0]
    if n == 0:
        return theta[0] if single else theta
    for layer in range(len(offsets) - 1):
        w_off, b_off, fan_in, width = offsets[layer]
        nw_off, nb_off, _, fan_out = offsets[layer + 1]
        W = theta[:, w_off:b_off].reshape(n, fan_in, width)
        b = theta[:, b_off : b_off + width]
        V = theta[:, nw_off:nb_off].reshape(n, width, fan_out)
        c = theta[:, nb_off : nb_off + fan_out]
        if spec.activation in ("tanh", "sigmoid"):
            flip = b < 0  # (n, width)
            sign = np.where(flip, -1.0, 1.0)
            if spec.activation == "sigmoid":
                c += np.einsum("nw,nwo->no", flip.astype(float), V)
            W *= sign[:, None, :]
            b *= sign
            V *= sign[:, :, None]
        if spec.activation == "relu":
            norm = np.sqrt((W**2).sum(axis=1) + b**2)
            scale = np.where(norm > 0, norm, 1.0)
            W /= scale[:, None, :]
            b /= scale
            V *= scale[:, :, None]
        order = np.argsort(W[:, 0, :], axis=1, kind="stable")
        W[:] = np.take_along_axis(W, order[:, None, :], axis=2)
        b[:] = np.take_along_axis(b, order, axis=1)
        V[:] = np.take_along_axis(V, order[:, :, None], axis=1)
        theta[:, w_off:b_off] = W.reshape(n, -1)
        theta[:, nw_off:nb_off] = V.reshape(n, -1)
    return theta[0] if single else theta


def permute_hidden(theta: np.ndarray, spec: MLPSpec, layer: int, perm: np.ndarray) -> np.ndarray:
    """θ with the units of hidden layer ``layer`` permuted by ``perm``: the same function (a symmetry)."""
    theta = np.array(theta, dtype=np.float64, copy=True)
    w_off, b_off, fan_in, width = spec.offsets()[layer]
    nw_off, nb_off, _, fan_out = spec.offsets()[layer + 1]
    theta[..., w_off:b_off] = theta[..., w_off:b_off].reshape(*theta.shape[:-1], fan_in, width)[..., perm] \
        .reshape(*theta.shape[:-1], -1)
    theta[..., b_off : b_off + width] = theta[..., b_off : b_off + width][..., perm]
    theta[..., nw_off:nb_off] = theta[..., nw_off:nb_off].reshape(*theta.shape[:-1], width, fan_out)[..., perm, :] \
        .reshape(*theta.shape[:-1], -1)
    return theta
