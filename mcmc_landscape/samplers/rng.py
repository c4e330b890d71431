"""Per-chain random streams whose whole state is one uint64, so it is saved with the run and resumes exactly.

The generator is SplitMix64 (Steele, Lea and Flood 2014; passes BigCrush): a Weyl sequence with step 0x9E3779B97F4A7C15
passed through a 64-bit mixer. Each chain's starting state comes from its own child of one ``numpy.random.SeedSequence``,
so a chain's stream depends on the seed and the chain index only, never on the number of threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
_INV53 = 1.0 / 9007199254740992.0  # 2^-53


def chain_seeds(seed: int, n_chains: int, purpose: int = 0) -> np.ndarray:
    """One uint64 state per chain from ``SeedSequence(seed)``; ``purpose`` separates independent uses of one seed."""
    root = np.random.SeedSequence([int(seed), int(purpose)])
    return np.array([child.generate_state(1, np.uint64)[0] for child in root.spawn(n_chains)], dtype=np.uint64)


@nb.njit(inline="always")
def next_u64(state, c):
    """Advance chain ``c`` of ``state`` (a uint64 array) and return its next 64-bit output."""
    s = state[c] + _GOLDEN
    state[c] = s
    z = (s ^ (s >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@nb.njit(inline="always")
def uniform(state, c):
    """A float in (0, 1]: never 0, so its log is finite."""
    return (float(next_u64(state, c) >> _S11) + 1.0) * _INV53


@nb.njit(inline="always")
def normal_pair(state, c):
    """Two independent standard normals by Marsaglia's polar method (no trigonometry)."""
    while True:
        u = 2.0 * uniform(state, c) - 1.0
        v = 2.0 * uniform(state, c) - 1.0
        s = u * u + v * v
        if 0.0 < s < 1.0:
            f = np.sqrt(-2.0 * np.log(s) / s)
            return u * f, v * f


@nb.njit(cache=True)
def fill_normal(state, c, out):
    """Fill ``out`` with standard normals from chain ``c``'s stream."""
    n = out.shape[0]
    for j in range(0, n - 1, 2):
        a, b = normal_pair(state, c)
        out[j] = a
        out[j + 1] = b
    if n % 2 == 1:
        a, _ = normal_pair(state, c)
        out[n - 1] = a


@nb.njit(cache=True)
def draw_uniform(state, out):
    """One uniform per chain into ``out``: for tests and initialization."""
    for c in range(state.shape[0]):
        out[c] = uniform(state, c)
