"""The symmetry group of the zoo's convnets, which every count modulo symmetry must not see: for each pair of layers
with a ReLU between them, the channels of the first permuted (the second's inputs alike) and each scaled by s > 0 (the
second's inputs by 1/s); and the read-out's logit shift. Its action on flat vectors, a random element (for tests),
the orbit's tangent (the Hessian's null directions it owns), and one canonical point per orbit (the census's quench
start).
"""

from __future__ import annotations

import warnings

import numpy as np

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.symmetry import START_GRID, balancing_scales, dead_unit_sides
from mcmc_landscape.models.zoo import FlatLayout

#: For each zoo model, the pairs of layers (A, B) with a ReLU between them (pooling, if any, is positively
#: homogeneous too): scaling A's output unit k by 1/s and B's inputs from k by s leaves the function alone. And the
#: read-out layer, whose logits softmax sees only up to a common shift.
RELU_PAIRS: dict[str, tuple[tuple[str, str], ...]] = {
    "small-convnet": (("conv1", "conv2"), ("conv2", "fc")),
    "mnist-convnet": (("conv1", "conv2"), ("conv2", "fc1"), ("fc1", "fc2")),
    "cifar10-convnet": (("conv1", "conv2"), ("conv2", "conv3"), ("conv3", "fc")),
}
READOUT = {"small-convnet": "fc", "mnist-convnet": "fc2", "cifar10-convnet": "fc"}


def _param_slots(layout: FlatLayout) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Each parameter tensor's (first index in the flat vector, shape)."""
    starts = np.concatenate([[0], np.cumsum(layout.sizes)])
    return {n: (int(a), shape) for n, a, shape in zip(layout.names, starts[:-1], layout.shapes, strict=True)}


def _block(layout: FlatLayout, theta: np.ndarray, name: str) -> np.ndarray:
    """The parameter tensor ``name`` of every row of θ (n, p), as a view (n, *shape): writes go into θ."""
    start, shape = _param_slots(layout)[name]
    return theta[:, start : start + int(np.prod(shape))].reshape(len(theta), *shape)


def _widths(model: str, layout: FlatLayout) -> dict[str, int]:
    """Channels (output units) of the first layer of each ReLU pair."""
    return {a: _param_slots(layout)[f"{a}.weight"][1][0] for a, _ in RELU_PAIRS[model]}


def act_on_channels(model: str, layout: FlatLayout, theta: np.ndarray, perms: dict[str, np.ndarray],
                    scales: dict[str, np.ndarray]) -> np.ndarray:
    """θ (n, p) acted on by a group element of a zoo model: for each ReLU pair (A, B) of :data:`RELU_PAIRS`, A's
    output channels permuted by ``perms[A]`` and scaled by ``scales[A]`` (s > 0), B's inputs from them permuted alike
    and scaled by 1/s. The function, and so U, is unchanged (up to roundoff)."""
    if model not in RELU_PAIRS:
        raise SpecError(f"the symmetry of {model!r} is not described; choose one of {', '.join(RELU_PAIRS)}.")
    theta = np.array(theta, dtype=np.float64, ndmin=2)
    for a, b in RELU_PAIRS[model]:
        perm, s = np.asarray(perms[a]), np.asarray(scales[a], dtype=np.float64)
        w, bias, wb = (_block(layout, theta, name) for name in (f"{a}.weight", f"{a}.bias", f"{b}.weight"))
        units = w.shape[1]
        w[:] = w[:, perm] * s.reshape(-1, units, *([1] * (w.ndim - 2)))
        bias[:] = bias[:, perm] * s.reshape(-1, units)
        wide = wb.reshape(len(theta), wb.shape[1], units, -1)   # B's inputs grouped by A's channel
        wide[:] = wide[:, :, perm] / s.reshape(-1, 1, units, 1)
    return theta


def random_channel_symmetry(model: str, layout: FlatLayout, theta: np.ndarray, rng: np.random.Generator,
                            low: float = 0.5, high: float = 2.0) -> np.ndarray:
    """Each row of θ acted on by its own random group element: random channel permutations of every ReLU pair and
    log-uniform scales in [``low``, ``high``] (for tests of what must not change under the symmetry)."""
    theta = np.array(theta, dtype=np.float64, ndmin=2)
    out = np.empty_like(theta)
    widths = _widths(model, layout)
    for i in range(len(theta)):
        perms, scales = {}, {}
        for a, units in widths.items():
            perms[a] = rng.permutation(units)
            scales[a] = np.exp(rng.uniform(np.log(low), np.log(high), units))
        out[i] = act_on_channels(model, layout, theta[i], perms, scales)[0]
    return out


def zoo_orbit_tangent(model: str, layout: FlatLayout, theta: np.ndarray) -> np.ndarray:
    """Tangent vectors (k, p) at θ of a zoo model's continuous symmetries: one per ReLU channel or unit (its
    rescaling) and the logit shift of the read-out (one per input of the read-out, and its bias)."""
    if model not in RELU_PAIRS:
        raise SpecError(f"the symmetry orbit of {model!r} is not described; choose one of {', '.join(RELU_PAIRS)}.")
    theta = np.asarray(theta, dtype=np.float64)
    where = _param_slots(layout)

    def view(v: np.ndarray, name: str) -> np.ndarray:
        a, shape = where[name]
        return v[a : a + int(np.prod(shape))].reshape(shape)

    vecs = []
    for a, b in RELU_PAIRS[model]:
        units = where[f"{a}.weight"][1][0]
        for k in range(units):
            v = np.zeros(layout.p)
            view(v, f"{a}.weight")[k] = -view(theta, f"{a}.weight")[k]
            view(v, f"{a}.bias")[k] = -view(theta, f"{a}.bias")[k]
            wb = view(v, f"{b}.weight")
            tb = view(theta, f"{b}.weight")
            out = wb.shape[0]
            wb.reshape(out, units, -1)[:, k] = tb.reshape(out, units, -1)[:, k]
            vecs.append(v)
    r = READOUT[model]
    classes, fan_in = where[f"{r}.weight"][1]
    for j in range(fan_in + 1):
        v = np.zeros(layout.p)
        if j < fan_in:
            view(v, f"{r}.weight")[:, j] = 1.0
        else:
            view(v, f"{r}.bias")[:] = 1.0
        vecs.append(v)
    return np.array(vecs)


def _channel_blocks(layout: FlatLayout, theta: np.ndarray, pair: tuple[str, str]) \
        -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of a ReLU pair's blocks for rows θ (n, p): A's incoming weights per output channel (n, units, k),
    A's biases (n, units), and B's weights per input channel (n, units, m)."""
    a, b = pair
    n = len(theta)
    w, wb = _block(layout, theta, f"{a}.weight"), _block(layout, theta, f"{b}.weight")
    units = w.shape[1]
    out = wb.reshape(n, wb.shape[1], units, -1).transpose(0, 2, 1, 3).reshape(n, units, -1)
    return w.reshape(n, units, -1).copy(), _block(layout, theta, f"{a}.bias").copy(), out.copy()


def balance_channels(model: str, layout: FlatLayout, theta: np.ndarray, power: float = 16.0, sweeps: int = 2000,
                     tol: float = 1e-14) -> np.ndarray:
    """Each row of θ (n, p) moved along its ReLU channel-rescaling orbit to its point of least Σ|θ_i|^power (a
    smooth stand-in for the largest |θ_i|, so it stays inside the box whenever some point of the orbit nearly does):
    channel by channel s^(2·power) = Σ|in|^power / Σ|out|^power, sweeping the pairs until no scale moves. Strictly
    convex in log s for channels with weights on both sides, so every rescaled copy of a draw balances to one θ (the
    convnets' counterpart of :func:`mcmc_landscape.models.symmetry.balance`). A channel with nothing on one side has
    no balanced point; it computes nothing the network uses, so the other side is zeroed too (the same function, one
    point for every copy). Each side is normalized by its own largest entry, so no ratio underflows."""
    if model not in RELU_PAIRS:
        raise SpecError(f"the symmetry of {model!r} is not described; choose one of {', '.join(RELU_PAIRS)}.")
    theta = np.array(np.atleast_2d(theta), dtype=np.float64, copy=True)
    widths = _widths(model, layout)
    ones = {a: np.ones(u) for a, u in widths.items()}
    perms = {a: np.arange(u) for a, u in widths.items()}
    changed = True
    while changed:                 # dead channels, to a fixed point (zeroing one side can leave a neighbour with none)
        changed = False
        for pair in RELU_PAIRS[model]:
            keep_in, keep_out = dead_unit_sides(*_channel_blocks(layout, theta, pair))
            if keep_in is not None:
                theta = _scale_sides(layout, theta, pair, keep_in, keep_out)
                changed = True
    moved = np.inf
    for _ in range(sweeps):
        moved = 0.0
        for pair in RELU_PAIRS[model]:
            s = balancing_scales(*_channel_blocks(layout, theta, pair), power)                  # (n, units)
            theta = act_on_channels(model, layout, theta, perms, {**ones, pair[0]: 1.0 / s})
            moved = max(moved, float(np.abs(np.log(s)).max()) if s.size else 0.0)
        if moved < tol:
            break
    if moved >= tol:
        warnings.warn(f"balance_channels: scales still moving by {moved:.2g} after {sweeps} sweeps; copies of one "
                      "draw may not reach one point", RuntimeWarning, stacklevel=2)
    return theta


def _scale_sides(layout: FlatLayout, theta: np.ndarray, pair: tuple[str, str], factor_in: np.ndarray,
                 factor_out: np.ndarray) -> np.ndarray:
    """θ with A's incoming weights and bias of each channel multiplied by ``factor_in`` (n, units) and B's weights from
    it by ``factor_out`` (n, units), independently (zeroing a side; no group element)."""
    a, b = pair
    theta = theta.copy()
    n = len(theta)
    w, bias, wb = (_block(layout, theta, name) for name in (f"{a}.weight", f"{a}.bias", f"{b}.weight"))
    units = w.shape[1]
    w *= factor_in.reshape(n, units, *([1] * (w.ndim - 2)))
    bias *= factor_in
    wb.reshape(n, wb.shape[1], units, -1)[:] *= factor_out.reshape(n, 1, units, 1)
    return theta


def _sort_channels(model: str, layout: FlatLayout, theta: np.ndarray) -> np.ndarray:
    """Each pair's channels in the lexicographic order of their weights (incoming, bias, outgoing), pair after pair:
    channels that tie on every key are identical, so their order does not matter."""
    theta = np.array(np.atleast_2d(theta), dtype=np.float64, copy=True)
    widths = _widths(model, layout)
    for pair in RELU_PAIRS[model]:
        w, bias, out = _channel_blocks(layout, theta, pair)
        for i in range(len(theta)):
            keys = np.hstack([w[i], bias[i][:, None], out[i]]).T          # (keys, units)
            perms = {a: np.arange(u) for a, u in widths.items()}
            perms[pair[0]] = np.lexsort(keys[::-1])
            theta[i] = act_on_channels(model, layout, theta[i], perms, {a: np.ones(u) for a, u in widths.items()})[0]
    return theta


def zoo_quench_start(model: str, layout: FlatLayout, theta: np.ndarray, box: float | None = None) -> np.ndarray:
    """The point a census quenches instead of a convnet's draw: channel scales balanced (:func:`balance_channels`),
    rounded to the MLP census's grid of 2^-20 (:data:`~mcmc_landscape.models.symmetry.START_GRID`) so that copies
    that agree up to roundoff agree bit for bit, channels sorted, clipped to the box. Every relabelled or rescaled
    copy of a draw (:func:`random_channel_symmetry`) maps to the same start, so the quench and all after it cannot
    depend on how the draws are labelled; a start that had to be clipped is a slightly different network from its
    draw (the census counts them).

    Bit for bit for draws held in float64. A float32 file holds a rescaled copy only to float32 roundoff (about 3e-8
    against the grid's 9.5e-7), so its start can differ from the original's by one grid step in some coordinates:
    there the census's identity tolerances, not the start, make the copies one minimum. Permutations stay exact."""
    t = np.round(balance_channels(model, layout, theta) * START_GRID) / START_GRID
    t = _sort_channels(model, layout, t)
    return t if box is None else np.clip(t, -box, box)

