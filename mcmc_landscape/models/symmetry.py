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
:mod:`mcmc_landscape.models.nets`.
"""

from __future__ import annotations

import math

import numpy as np

from mcmc_landscape.models.nets import MLPSpec


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


# -- identity of minima modulo the symmetries ------------------------------------------------------------------------

def center_logits(theta: np.ndarray, spec: MLPSpec) -> np.ndarray:
    """θ with the output layer's weights and bias centred over the classes: softmax is unchanged when the same number
    is added to every logit, so this is an exact symmetry (a flat direction of U that gradient descent never moves)."""
    theta = np.array(theta, dtype=np.float64, copy=True)
    w_off, b_off, fan_in, fan_out = spec.offsets()[-1]
    lead = theta.shape[:-1]
    V = theta[..., w_off:b_off].reshape(*lead, fan_in, fan_out)
    theta[..., w_off:b_off] = (V - V.mean(axis=-1, keepdims=True)).reshape(*lead, -1)
    c = theta[..., b_off : b_off + fan_out]
    theta[..., b_off : b_off + fan_out] = c - c.mean(axis=-1, keepdims=True)
    return theta


def dead_units(theta: np.ndarray, spec: MLPSpec, x: np.ndarray) -> list[np.ndarray]:
    """For each hidden layer, which ReLU units output 0 on every point of ``x``: (n, width) masks. Such a unit's
    weights are flat directions of U on this data (nothing downstream sees them); other activations have none."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    h = np.broadcast_to(np.asarray(x, dtype=np.float64), (theta.shape[0], *np.shape(x)))
    out = []
    for W, b in spec.unflatten(theta)[:-1]:
        z = np.einsum("nki,nij->nkj", h, W) + b[:, None, :]
        if spec.activation == "relu":
            out.append((z <= 0).all(axis=1))
            h = np.maximum(z, 0)
        else:
            out.append(np.zeros(z.shape[::2], dtype=bool))
            h = np.tanh(z) if spec.activation == "tanh" else 1 / (1 + np.exp(-z))
    return out


def silence_dead_units(theta: np.ndarray, spec: MLPSpec, x: np.ndarray) -> np.ndarray:
    """θ with every dead ReLU unit's incoming weights, bias and outgoing weights set to 0, then (from the last hidden
    layer down) every unit whose outgoing weights are all 0 silenced too: the same outputs on ``x``, so minima that
    differ only along those flat directions get one representative."""
    theta = np.array(np.atleast_2d(theta), dtype=np.float64, copy=True)
    offsets = spec.offsets()
    for layer, dead in enumerate(dead_units(theta, spec, x)):
        w_off, b_off, fan_in, width = offsets[layer]
        nw_off, nb_off, _, fan_out = offsets[layer + 1]
        n = theta.shape[0]
        W = theta[:, w_off:b_off].reshape(n, fan_in, width)
        V = theta[:, nw_off:nb_off].reshape(n, width, fan_out)
        W[np.broadcast_to(dead[:, None, :], W.shape)] = 0.0
        theta[:, b_off : b_off + width][dead] = 0.0
        V[np.broadcast_to(dead[:, :, None], V.shape)] = 0.0
        theta[:, w_off:b_off] = W.reshape(n, -1)
        theta[:, nw_off:nb_off] = V.reshape(n, -1)
    for layer in range(len(spec.hidden) - 1, -1, -1):        # units nothing downstream listens to are irrelevant too
        w_off, b_off, fan_in, width = offsets[layer]
        nw_off, nb_off, _, fan_out = offsets[layer + 1]
        n = theta.shape[0]
        mute = (theta[:, nw_off:nb_off].reshape(n, width, fan_out) == 0).all(axis=2)      # (n, width)
        W = theta[:, w_off:b_off].reshape(n, fan_in, width)
        W[np.broadcast_to(mute[:, None, :], W.shape)] = 0.0
        theta[:, w_off:b_off] = W.reshape(n, -1)
        theta[:, b_off : b_off + width][mute] = 0.0
    return theta


def function_form(theta: np.ndarray, spec: MLPSpec, x: np.ndarray | None = None) -> np.ndarray:
    """The representative used to tell minima apart: logits centred, dead units silenced (when ``x`` is given), then
    :func:`canonicalize` (signs, scales, order)."""
    t = center_logits(np.atleast_2d(theta), spec)
    if x is not None:
        t = silence_dead_units(t, spec, x)
    return canonicalize(t, spec)


def _unit_features(theta: np.ndarray, spec: MLPSpec, layer: int, in_perm: np.ndarray | None,
                   out_perm: np.ndarray | None) -> np.ndarray:
    """Each unit of hidden ``layer`` as a vector: incoming weights (rows in ``in_perm`` order), bias, outgoing
    weights (columns in ``out_perm`` order)."""
    w_off, b_off, fan_in, width = spec.offsets()[layer]
    nw_off, nb_off, _, fan_out = spec.offsets()[layer + 1]
    W = theta[w_off:b_off].reshape(fan_in, width)
    if in_perm is not None:
        W = W[in_perm]
    V = theta[nw_off:nb_off].reshape(width, fan_out)
    if out_perm is not None:
        V = V[:, out_perm]
    return np.concatenate([W.T, theta[b_off : b_off + width, None], V], axis=1)


def align(reference: np.ndarray, theta: np.ndarray, spec: MLPSpec, max_passes: int = 5) -> np.ndarray:
    """``theta`` with its hidden units permuted, layer by layer, to best match ``reference`` (weight matching: for each
    layer a linear assignment on the similarity of incoming weights, bias and outgoing weights, the neighbouring
    layers' matches applied; passes repeat until no layer changes). Both should be in canonical form (signs and
    scales); the result is a symmetric copy of ``theta``, the same function."""
    from scipy.optimize import linear_sum_assignment

    ref = np.asarray(reference, dtype=np.float64)
    out = np.array(theta, dtype=np.float64, copy=True)
    n_hidden = len(spec.hidden)
    if n_hidden == 0:
        return out
    for _ in range(max_passes):
        changed = False
        for layer in range(n_hidden):
            a = _unit_features(ref, spec, layer, None, None)
            b = _unit_features(out, spec, layer, None, None)
            _, cols = linear_sum_assignment(a @ b.T, maximize=True)
            if np.any(cols != np.arange(len(cols))):
                out = permute_hidden(out, spec, layer, cols)
                changed = True
        if not changed:
            break
    return out


def aligned_distance(reference: np.ndarray, theta: np.ndarray, spec: MLPSpec) -> float:
    """‖reference − align(reference, θ)‖: the distance between two canonical forms modulo hidden-unit order."""
    return float(np.linalg.norm(np.asarray(reference) - align(reference, theta, spec)))


def group_order(spec: MLPSpec) -> int:
    """Size of the discrete symmetry group: ∏ n_l! hidden-unit permutations, × 2^n_l sign flips for tanh/sigmoid
    (positive ReLU rescalings form a continuous family and are not counted)."""
    order = 1
    for width in spec.hidden:
        order *= math.factorial(width) * (2**width if spec.activation in ("tanh", "sigmoid") else 1)
    return order


def symmetric_copies(theta: np.ndarray, spec: MLPSpec, rtol: float = 1e-6) -> int:
    """How many distinct networks the discrete symmetries map a canonical ``theta`` to: the group order over the
    stabilizer (identical units of a layer, including silenced dead ones, swap onto themselves; an all-zero unit is
    its own sign flip)."""
    theta = np.asarray(theta, dtype=np.float64)
    scale = rtol * max(1.0, float(np.abs(theta).max()))
    copies = 1
    for layer, width in enumerate(spec.hidden):
        feats = _unit_features(theta, spec, layer, None, None)
        labels = -np.ones(width, dtype=int)
        for u in range(width):
            if labels[u] < 0:
                same = (np.abs(feats - feats[u]).max(axis=1) <= scale) & (labels < 0)
                labels[same] = u
        multiplicities = np.bincount(labels[labels >= 0])
        perms = math.factorial(width)
        for m in multiplicities[multiplicities > 0]:
            perms //= math.factorial(int(m))
        copies *= perms
        if spec.activation in ("tanh", "sigmoid"):
            nonzero = int((np.abs(feats).max(axis=1) > scale).sum())
            copies *= 2**nonzero
    return copies


# -- acting with the group, and a quench start that every symmetric copy shares ---------------------------------------

def _unit_blocks(theta: np.ndarray, spec: MLPSpec, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Views of hidden ``layer``'s incoming weights (fan_in, width), bias (width), outgoing weights (width, fan_out)
    and the next layer's bias (fan_out) inside one flat θ (p,)."""
    w_off, b_off, fan_in, width = spec.offsets()[layer]
    nw_off, nb_off, _, fan_out = spec.offsets()[layer + 1]
    return (theta[w_off:b_off].reshape(fan_in, width), theta[b_off : b_off + width],
            theta[nw_off:nb_off].reshape(width, fan_out), theta[nb_off : nb_off + fan_out])


def flip_unit(theta: np.ndarray, spec: MLPSpec, layer: int, unit: int) -> np.ndarray:
    """θ with one unit's sign flipped (tanh, sigmoid): the same function. For sigmoid, σ(−z) = 1 − σ(z), so the next
    layer's bias takes the unit's old outgoing weights."""
    if spec.activation not in ("tanh", "sigmoid"):
        raise ValueError(f"sign flips are no symmetry of a {spec.activation} network")
    out = np.array(theta, dtype=np.float64, copy=True)
    W, b, V, c = _unit_blocks(out, spec, layer)
    if spec.activation == "sigmoid":
        c += V[unit]
    W[:, unit] *= -1
    b[unit] *= -1
    V[unit] *= -1
    return out


def rescale_unit(theta: np.ndarray, spec: MLPSpec, layer: int, unit: int, s: float) -> np.ndarray:
    """θ with a ReLU unit's incoming weights and bias divided by ``s`` > 0 and its outgoing weights multiplied by it:
    relu(z/s)·s = relu(z), the same function."""
    if spec.activation != "relu" or not s > 0:
        raise ValueError("positive rescaling is a symmetry of ReLU units only, with s > 0")
    out = np.array(theta, dtype=np.float64, copy=True)
    W, b, V, _ = _unit_blocks(out, spec, layer)
    W[:, unit] /= s
    b[unit] /= s
    V[unit] *= s
    return out


def rescale_range(theta: np.ndarray, spec: MLPSpec, layer: int, unit: int, box: float) -> tuple[float, float]:
    """The scales s for which :func:`rescale_unit` keeps θ inside [−box, box]^p: max|in|/box ≤ s ≤ box/max|out|
    (never empty when θ is inside the box)."""
    W, b, V, _ = _unit_blocks(np.asarray(theta, dtype=np.float64), spec, layer)
    a = max(float(np.abs(W[:, unit]).max()), abs(float(b[unit])))
    c = float(np.abs(V[unit]).max())
    return a / box, (box / c if c > 0 else np.inf)


def random_symmetry(theta: np.ndarray, spec: MLPSpec, rng: np.random.Generator, box: float | None = None,
                    permute: bool = True, flip: bool = True, rescale: bool = True, max_log_scale: float = 1.0
                    ) -> np.ndarray:
    """A random element of the network's symmetry group applied to one θ (p,): every hidden layer's units permuted,
    each unit's sign flipped with probability ½ (tanh, sigmoid), each ReLU unit rescaled by a log-uniform factor in
    e^±``max_log_scale``. With ``box`` the copy stays inside [−box, box]^p: scales are clipped to the range that keeps
    it there, and a sigmoid flip that would push the next bias out is not made."""
    out = np.array(theta, dtype=np.float64, copy=True)
    for layer, width in enumerate(spec.hidden):
        if permute:
            out = permute_hidden(out, spec, layer, rng.permutation(width))
        for u in range(width):
            if flip and spec.activation in ("tanh", "sigmoid") and rng.random() < 0.5:
                cand = flip_unit(out, spec, layer, u)
                if box is None or np.abs(cand).max() <= box:
                    out = cand
            if rescale and spec.activation == "relu":
                s = float(np.exp(rng.uniform(-max_log_scale, max_log_scale)))
                if box is not None:
                    lo, hi = rescale_range(out, spec, layer, u, box)
                    s = float(np.clip(s, lo * (1 + 1e-12), hi * (1 - 1e-12))) if lo < hi else 1.0
                out = rescale_unit(out, spec, layer, u, s)
    return out


def balance(theta: np.ndarray, spec: MLPSpec, power: float = 16.0, sweeps: int = 2000,
            tol: float = 1e-14) -> np.ndarray:
    """Each row of θ (n, p) moved along its ReLU rescaling orbit to its point of least Σ|θ_i|^power (a smooth
    stand-in for the largest |θ_i|, so that the result stays inside the box whenever some point of the orbit does,
    nearly): unit by unit, s^(2·power) = Σ|in|^power / Σ|out|^power, sweeping the layers until no scale moves.
    The problem is smooth and strictly convex in log s
    (units with weights on both sides), so the sweeps reach its one minimizer from anywhere on the orbit: every
    rescaled copy of a draw balances to the same θ. Other activations are returned unchanged. (With the box as a
    constraint the sweeps can stall at different points of the orbit, since a face couples the scales of two
    layers; :func:`quench_start` therefore balances without it and clips afterwards.) A unit with nothing on one side
    has no balanced point; it computes nothing the network uses, so the other side is zeroed too (the same function,
    one point for every copy); each side is normalized by its own largest entry, so no ratio underflows."""
    theta = np.array(np.atleast_2d(theta), dtype=np.float64, copy=True)
    if spec.activation != "relu" or not spec.hidden:
        return theta
    offsets = spec.offsets()
    n = theta.shape[0]

    def blocks(layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:     # views of W (n, in, width), b, V
        w_off, b_off, fan_in, width = offsets[layer]
        nw_off, nb_off, _, fan_out = offsets[layer + 1]
        W, V = theta[:, w_off:b_off].reshape(n, fan_in, width), theta[:, nw_off:nb_off].reshape(n, width, fan_out)
        assert np.shares_memory(W, theta) and np.shares_memory(V, theta)    # written in place below
        return W, theta[:, b_off : b_off + width], V

    changed = True
    while changed:                 # dead units, to a fixed point (zeroing one side can leave a neighbour with none)
        changed = False
        for layer in range(len(spec.hidden)):
            W, b, V = blocks(layer)
            keep_in, keep_out = dead_unit_sides(W.transpose(0, 2, 1), b, V)
            if keep_in is not None:
                W *= keep_in[:, None, :]
                b *= keep_in
                V *= keep_out[:, :, None]
                changed = True
    for _ in range(sweeps):
        moved = 0.0
        for layer in range(len(spec.hidden)):
            W, b, V = blocks(layer)
            s = balancing_scales(W.transpose(0, 2, 1), b, V, power)
            W /= s[:, None, :]
            b /= s
            V *= s[:, :, None]
            moved = max(moved, float(np.abs(np.log(s)).max()) if s.size else 0.0)
        if moved < tol:
            break
    return theta


def balancing_scales(w_in: np.ndarray, bias: np.ndarray, w_out: np.ndarray, power: float) -> np.ndarray:
    """Per ReLU unit (rows n, units), the s that minimizes Σ|w_in/s|^power + |bias/s|^power + Σ|w_out·s|^power:
    s^(2·power) = Σ|in|^power / Σ|out|^power, each side normalized by its own largest entry so no ratio underflows;
    1 where a side is empty (no balanced point). ``w_in`` (n, units, k), ``bias`` (n, units), ``w_out`` (n, units, m):
    the one formula of :func:`balance` (MLP) and :func:`mcmc_landscape.models.zoo_symmetry.balance_channels`."""
    big_in = np.maximum(np.abs(w_in).max(axis=2), np.abs(bias))
    big_out = np.abs(w_out).max(axis=2)
    ok = (big_in > 0) & (big_out > 0)
    bi, bo = np.where(ok, big_in, 1.0), np.where(ok, big_out, 1.0)
    na = (np.abs(w_in / bi[..., None]) ** power).sum(axis=2) + np.abs(bias / bi) ** power     # ≥ 1
    nc = (np.abs(w_out / bo[..., None]) ** power).sum(axis=2)
    return np.where(ok, np.sqrt(bi / bo) * (na / np.where(ok, nc, 1.0)) ** (0.5 / power), 1.0)


def dead_unit_sides(w_in: np.ndarray, bias: np.ndarray, w_out: np.ndarray) \
        -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Factors (keep_in, keep_out), each (n, units) of 0 and 1, that zero the other side of every ReLU unit with
    nothing on one side (it computes 0, or nothing reads it: the function does not change), or (None, None) when no
    unit has one side empty and the other not. Shapes as :func:`balancing_scales`."""
    has_in, has_bias, has_out = np.abs(w_in).max(axis=2) > 0, np.abs(bias) > 0, np.abs(w_out).max(axis=2) > 0
    dead, deaf = ~has_in & ~has_bias, ~has_out
    if not ((dead & has_out) | (deaf & (has_in | has_bias))).any():
        return None, None
    return np.where(deaf, 0.0, 1.0), np.where(dead, 0.0, 1.0)


#: Quench starts are rounded to multiples of 1/START_GRID: symmetric copies that reach one start up to roundoff
#: (1e-14) then reach it bit for bit, and the quench (chaotic along flat valleys) cannot tell them apart.
START_GRID = 2.0**20


def quench_start(theta: np.ndarray, spec: MLPSpec, box: float | None = None) -> np.ndarray:
    """The point a census quenches instead of a draw: signs made canonical (tanh, sigmoid), ReLU scales balanced
    (:func:`balance`), units sorted, then clipped to the box. Every symmetric copy of a draw maps to the same start (up to
    roundoff), so the quench, and everything after it, cannot depend on how the draws are labelled. This is needed
    beyond the quench's own equivariance: L-BFGS is equivariant under permutations and tanh sign flips (orthogonal
    maps that keep the box), but not under rescaling or sigmoid flips (non-orthogonal), and the box is not
    rescaling-invariant either. The start is rounded to a grid of 2^-20 (:data:`START_GRID`) so that copies agree
    bit for bit. Where the balanced form (or a sigmoid's canonical signs) leaves the box, the clipped
    start is still one point per orbit, so invariance holds, but it is then a slightly different network from the
    draw (:func:`outside_box_after_start` counts these; the census reports the number)."""
    t = np.array(np.atleast_2d(theta), dtype=np.float64, copy=True)
    if spec.activation in ("tanh", "sigmoid"):
        t = _canonical_signs(t, spec)
    t = np.round(balance(t, spec) * START_GRID) / START_GRID
    t = _sort_units(t, spec)
    return t if box is None else np.clip(t, -box, box)


def outside_box_after_start(theta: np.ndarray, spec: MLPSpec, box: float) -> np.ndarray:
    """Which rows' canonical start (before clipping) leaves [−box, box]^p."""
    t = np.array(np.atleast_2d(theta), dtype=np.float64, copy=True)
    if spec.activation in ("tanh", "sigmoid"):
        t = _canonical_signs(t, spec)
    return np.abs(balance(t, spec)).max(axis=1) > box


def _canonical_signs(theta: np.ndarray, spec: MLPSpec) -> np.ndarray:
    out = theta.copy()
    for i in range(out.shape[0]):
        for layer in range(len(spec.hidden)):
            _, b, _, _ = _unit_blocks(out[i], spec, layer)
            for u in np.flatnonzero(b < 0):
                out[i] = flip_unit(out[i], spec, layer, int(u))
    return out


def _sort_units(theta: np.ndarray, spec: MLPSpec) -> np.ndarray:
    """Each hidden layer's units in the order of their weights (incoming, bias, outgoing; lexicographic), layer after
    layer: units that tie on every key are identical, so their order does not matter."""
    out = theta.copy()
    for i in range(out.shape[0]):
        for layer in range(len(spec.hidden)):
            W, b, V, _ = _unit_blocks(out[i], spec, layer)
            keys = np.vstack([W, b[None], V.T])           # (fan_in + 1 + fan_out, width)
            order = np.lexsort(keys[::-1])
            out[i] = permute_hidden(out[i], spec, layer, order)
    return out


def orbit_tangent(theta: np.ndarray, spec: MLPSpec) -> np.ndarray:
    """Tangent vectors (k, p) at θ of the continuous symmetries: one per ReLU unit (its rescaling: −in, +out) and
    the logit shift (the same vector added to every output column, and the same number to every output bias:
    softmax does not see it). U is constant along each, so at a minimum each is a null direction of the Hessian;
    the discrete symmetries (permutations, sign flips) give none."""
    theta = np.asarray(theta, dtype=np.float64)
    p = theta.shape[-1]
    vecs = []
    if spec.activation == "relu":
        for layer, width in enumerate(spec.hidden):
            for u in range(width):
                v = np.zeros(p)
                W, b, V, _ = _unit_blocks(v, spec, layer)
                W0, b0, V0, _ = _unit_blocks(theta, spec, layer)
                W[:, u], b[u], V[u] = -W0[:, u], -b0[u], V0[u]
                vecs.append(v)
    w_off, b_off, fan_in, fan_out = spec.offsets()[-1]
    for j in range(fan_in + 1):
        v = np.zeros(p)
        if j < fan_in:
            v[w_off:b_off].reshape(fan_in, fan_out)[j] = 1.0
        else:
            v[b_off : b_off + fan_out] = 1.0
        vecs.append(v)
    return np.array(vecs).reshape(-1, p)
