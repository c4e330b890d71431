"""The one uniform start: every chain's first position drawn uniformly in the box from ``SeedSequence([seed, 0])``.

Random walk, HMC, replica exchange, emcee and the shards of a split run all start here, so a run split into shards
starts each chain exactly where the whole run would.
"""

from __future__ import annotations

import numpy as np


def uniform_start(seed: int, shape: tuple[int, ...], box: float) -> np.ndarray:
    """Positions of ``shape`` (chains first), float64, uniform in [-box, box]."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0]))
    return rng.uniform(-box, box, size=shape)
