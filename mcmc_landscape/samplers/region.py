"""The sampled region: the box [-L, L]^p, or a parallelepiped {θ : |M θ|_∞ ≤ L} (the box carried back by a linear
map of parameters, e.g. the first-layer map that absorbs an affine transform of the data).

A random walk restricted to the parallelepiped rejects every proposal outside it, exactly as it rejects proposals
outside the box, so the target exp(-U/T) is sampled under a uniform prior on that region. One Numba check serves
the random walk and every rung of replica exchange; an empty (0 × 0) matrix means the plain box.
"""

from __future__ import annotations

import numba as nb
import numpy as np

NO_REGION = np.zeros((0, 0))


@nb.njit(cache=True, inline="always")
def inside(prop, box, region):
    """Whether ``prop`` lies in the region: every coordinate in [-box, box], or every row of ``region @ prop``."""
    m = region.shape[0]
    if m == 0:
        for j in range(prop.shape[0]):
            if prop[j] > box or prop[j] < -box:
                return False
        return True
    for i in range(m):
        acc = 0.0
        for j in range(prop.shape[0]):
            acc += region[i, j] * prop[j]
        if acc > box or acc < -box:
            return False
    return True


def all_inside(points: np.ndarray, box: float, region: np.ndarray) -> bool:
    """Whether every row of ``points`` lies in the region (the vectorized form of :func:`inside`, for starts)."""
    points = np.asarray(points, dtype=np.float64)
    return bool(np.all(np.abs(points if region.shape[0] == 0 else points @ region.T) <= box))


def region_array(region: np.ndarray | None) -> np.ndarray:
    """A settings' ``region`` as the kernels take it: C-contiguous float64, or the empty matrix for the plain box."""
    return NO_REGION if region is None else np.ascontiguousarray(region, dtype=np.float64)


def region_matrix(spec: str, layout: list[tuple[int, int, int, int]], n_in: int) -> np.ndarray:
    """M with M θ = the transform's carry of θ (:meth:`Transform.carry`), so {θ : |M θ|_∞ ≤ L} is the box of the
    transformed problem carried back to the reference's parameters: Φ⁻¹(B)."""
    from mcmc_landscape.data.transforms import parse_transform
    from mcmc_landscape.errors import SpecError

    t = parse_transform(spec)
    if not t.has_parameter_map:
        raise SpecError(f"--box-transform {spec}: only a transform that a map of parameters absorbs (rotate, reflect, "
                        "scale, translate, shear, swap-classes) carries the box; choose one of those.")
    p = layout[-1][1] + layout[-1][3]
    return np.ascontiguousarray(t.carry(np.eye(p), layout, n_in).T)


def start_in_region(uniform_in_box: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Points uniform in the box mapped to points uniform in the parallelepiped (a linear map keeps uniformity)."""
    if region.shape[0] == 0:
        return uniform_in_box
    return np.ascontiguousarray(np.linalg.solve(region, uniform_in_box.reshape(-1, region.shape[0]).T).T
                                .reshape(uniform_in_box.shape))
