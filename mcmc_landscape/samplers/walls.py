"""The one wall reflection of HMC on the box [-L, L]^p (Neal 2011, §5.1): a coordinate that leaves the box is
reflected at the wall and its momentum negated, which keeps the leapfrog map reversible and volume-preserving.

Any number of crossings is one fold: unfold the coordinate on a circle of length 4L, whose far half is the mirrored
box (an odd number of crossings). :func:`fold` does it for tensors, :func:`fold_coordinate` for one float inside a
Numba kernel, on the CPU and on the GPU; :func:`reflect` takes the one-wall fast path first.
"""

from __future__ import annotations

import torch
from numba.extending import register_jitable


def reflect(x: torch.Tensor, r: torch.Tensor, box: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold positions back into [-L, L] by reflection at the walls, negating momentum once per wall crossed.

    A leapfrog step crosses at most one wall unless it is longer than the box, so that case is done with two
    comparisons; the general fold handles whatever is still outside after it. Both are computed and one is chosen
    by a tensor condition, so nothing waits for the device.
    """
    inside = torch.clamp(x, -box, box)
    r = torch.where(inside != x, -r, r)
    x = torch.add(-x, inside, alpha=2.0)  # 2·wall - x outside, x itself inside
    far = x.abs().amax() > box  # a step longer than the box
    fx, fr = fold(x, r, box)
    return torch.where(far, fx, x), torch.where(far, fr, r)


def fold(x: torch.Tensor, r: torch.Tensor, box: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflection for any number of wall crossings; ``remainder`` keeps even a huge step inside the box."""
    width = box + box
    y = torch.remainder(x + box, 2.0 * width)
    odd = y > width
    return torch.where(odd, 2.0 * width - y, y) - box, torch.where(odd, -r, r)


@register_jitable
def fold_coordinate(x: float, r: float, box: float) -> tuple[float, float]:
    """:func:`fold` for one coordinate outside the box and its momentum: in the CPU's Numba trajectory
    (:mod:`.hmc_mlp`) and, compiled as a device function, in the GPU's (:mod:`.hmc_gpu`). No float literal: a float32
    coordinate stays float32 on the GPU (``box + box`` is ``2.0 * box`` exactly)."""
    width = box + box
    y = (x + box) % (width + width)
    if y > width:
        return (width + width) - y - box, -r
    return y - box, r
