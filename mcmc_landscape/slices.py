"""Loss slices: the loss on a line or a plane through parameter space, evaluated on a grid in batched chunks.

* :func:`filter_normalized`: a random direction with each filter (a weight's output neuron or conv filter) rescaled to
  the norm of the same filter of θ (Li, Xu, Taylor, Studer & Goldstein 2018), so slices of networks of different
  scales compare; bias directions are zero unless ``biases="weights"`` (then they copy θ's biases, as their code does).
* :func:`plane_through`: the plane through three models (Garipov et al. 2018): origin w1, first axis toward w2,
  second axis the part of w3 − w1 orthogonal to it; the models sit at known coordinates.
* :func:`pca_plane`: the plane of the two leading principal directions of a set of points (a DSS string, draws of a
  chain), centred at their mean, and the points' coordinates on it.
* :func:`evaluate_grid`: the loss at ``origin + a·d1 (+ b·d2)`` for every grid point, ``chunk`` models per call of a
  batched loss (rows independent), so memory is bounded by the chunk and not by the grid.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mcmc_landscape.errors import SpecError

Tensors = list[tuple[int, int, tuple[int, ...], str]]


def filter_normalized(theta: np.ndarray, tensors: Tensors, rng: np.random.Generator, biases: str = "zero") \
        -> np.ndarray:
    """A Gaussian direction d with ‖d_f‖ = ‖θ_f‖ for every filter f of every weight tensor. ``tensors`` lists
    (start, stop, shape, kind): kind "weight" (filters along axis 0, PyTorch's layout), "weight_in_out" (the MLP's
    W in × out: filters are columns), or "bias"."""
    if biases not in ("zero", "weights"):
        raise SpecError(f"biases must be 'zero' or 'weights', got {biases!r}.")
    theta = np.asarray(theta, dtype=np.float64)
    d = np.zeros_like(theta)
    for s, e, shape, kind in tensors:
        if kind == "bias":
            d[s:e] = 0.0 if biases == "zero" else theta[s:e]
            continue
        w = theta[s:e].reshape(shape)
        filters = w.T if kind == "weight_in_out" else w.reshape(shape[0], -1)
        r = rng.standard_normal(filters.shape)
        r *= np.linalg.norm(filters, axis=1, keepdims=True) / np.maximum(np.linalg.norm(r, axis=1, keepdims=True),
                                                                           1e-300)
        d[s:e] = (r.T if kind == "weight_in_out" else r.reshape(shape)).reshape(-1)
    return d


def plane_through(w1: np.ndarray, w2: np.ndarray, w3: np.ndarray | None = None) \
        -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(û, v̂, coordinates (k, 2)) of the line (two models) or plane (three) through them, origin w1, orthonormal
    axes; a model's coordinates are its projections, so w1 = (0, 0), w2 = (‖w2 − w1‖, 0)."""
    u = np.asarray(w2, np.float64) - w1
    nu = np.linalg.norm(u)
    if nu == 0:
        raise SpecError("the first two models are the same point; a line needs two different models.")
    u = u / nu
    if w3 is None:
        return u, None, np.array([[0.0, 0.0], [nu, 0.0]])
    r = np.asarray(w3, np.float64) - w1
    v = r - (r @ u) * u
    nv = np.linalg.norm(v)
    if nv <= 1e-12 * max(np.linalg.norm(r), 1.0):
        raise SpecError("the three models lie on one line; a plane needs three models not in a line.")
    v = v / nv
    return u, v, np.array([[0.0, 0.0], [nu, 0.0], [r @ u, r @ v]])


def pca_plane(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, d1, d2, coordinates (k, 2), explained variance ratio (2,)) of ``points`` (k, p) on their two leading
    principal directions (scikit-learn's PCA)."""
    from sklearn.decomposition import PCA

    points = np.asarray(points, np.float64)
    if len(points) < 3:
        raise SpecError(f"a PCA plane needs at least 3 points, got {len(points)}.")
    pca = PCA(n_components=2).fit(points)
    return pca.mean_, pca.components_[0], pca.components_[1], pca.transform(points), pca.explained_variance_ratio_


def evaluate_grid(loss: Callable[[torch.Tensor], torch.Tensor], origin: np.ndarray, d1: np.ndarray,
                  a: np.ndarray, d2: np.ndarray | None = None, b: np.ndarray | None = None, chunk: int = 256,
                  dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu") -> np.ndarray:
    """loss(origin + a_i d1 + b_j d2) as (len(a),) or (len(a), len(b)), ``chunk`` models per call, on ``device``;
    the models are built on the device from the two directions, never as a whole grid."""
    dev = torch.device(device)
    o = torch.as_tensor(origin, dtype=dtype, device=dev)
    u = torch.as_tensor(d1, dtype=dtype, device=dev)
    v = torch.as_tensor(d2 if d2 is not None else np.zeros_like(d1), dtype=dtype, device=dev)
    aa = np.asarray(a, np.float64)
    bb = np.zeros(1) if b is None else np.asarray(b, np.float64)
    A = torch.as_tensor(np.repeat(aa, len(bb)), dtype=dtype, device=dev)
    B = torch.as_tensor(np.tile(bb, len(aa)), dtype=dtype, device=dev)
    out = []
    with torch.no_grad():
        for i in range(0, len(A), chunk):
            models = o + A[i : i + chunk, None] * u + B[i : i + chunk, None] * v
            out.append(loss(models).detach())
    values = torch.cat(out).cpu().numpy()
    return values if b is None else values.reshape(len(aa), len(bb))
