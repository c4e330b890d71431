"""A user's own model for ``--model examples.tiny_model:make``: any callable returning an ``nn.Module`` that maps
inputs (n, features) to logits (n, classes). Here a 2-6-3 tanh network (p = 39) for ``examples/tiny.npz``.

Remake the data with ``python -m examples.tiny_model``: three Gaussian blobs in the plane, 30 training and 30
held-out points, seeded.
"""

from __future__ import annotations

import numpy as np
from torch import nn


def make() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3))


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 1.5], [-1.3, -0.75], [1.3, -0.75]])
    y = np.arange(n) % 3
    return centres[y] + 0.6 * rng.normal(size=(n, 2)), y


if __name__ == "__main__":
    from pathlib import Path

    (x, y), (x_test, y_test) = blobs(30, 0), blobs(30, 1)
    np.savez(Path(__file__).with_name("tiny.npz"), x=x, y=y, x_test=x_test, y_test=y_test)
