"""Known answers for the per-chain streams every bit-identical claim rests on (mcmc_landscape/samplers/rng.py).

The expected values come from outside the module: SplitMix64's published outputs (Vigna's reference splitmix64.c,
the sequence Java's SplittableRandom also gives, for seed 1234567), and a pure-Python transcription of the reference
algorithm for everything built on it (uniforms, Marsaglia's polar normals, the chains' seeds from SeedSequence)."""

import math

import numpy as np

from mcmc_landscape.samplers import rng

M64 = (1 << 64) - 1
#: splitmix64.c with x = 1234567: the first five outputs of next().
PUBLISHED_1234567 = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
                     16408922859458223821]


def splitmix64(x: int):
    """The reference algorithm, in Python integers."""
    while True:
        x = (x + 0x9E3779B97F4A7C15) & M64
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        yield z ^ (z >> 31)


def test_the_python_reference_gives_the_published_outputs():
    gen = splitmix64(1234567)
    assert [next(gen) for _ in range(5)] == PUBLISHED_1234567


def test_next_u64_gives_the_published_outputs_and_advances_only_its_chain():
    state = np.array([7, 1234567, 99], dtype=np.uint64)
    out = [int(rng.next_u64(state, 1)) for _ in range(5)]
    assert out == PUBLISHED_1234567
    assert state[0] == 7 and state[2] == 99
    assert int(state[1]) == (1234567 + 5 * 0x9E3779B97F4A7C15) & M64


def test_uniforms_and_normals_follow_the_reference():
    seed = 0xDEADBEEF
    gen = splitmix64(seed)

    def u():
        return ((next(gen) >> 11) + 1.0) * 2.0**-53

    def normal_pair():
        while True:
            a, b = 2.0 * u() - 1.0, 2.0 * u() - 1.0
            s = a * a + b * b
            if 0.0 < s < 1.0:
                f = math.sqrt(-2.0 * math.log(s) / s)
                return a * f, b * f

    expected = [v for _ in range(3) for v in normal_pair()][:5]
    state = np.array([seed], dtype=np.uint64)
    out = np.empty(5)
    rng.fill_normal(state, 0, out)
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)
    first = rng.uniform(state, 0)
    assert first == u() and 0.0 < first <= 1.0


def test_chain_seeds_are_the_seed_sequence_children_in_chain_order():
    seeds = rng.chain_seeds(42, 4, purpose=1)
    expected = [np.random.SeedSequence([42, 1], spawn_key=(i,)).generate_state(1, np.uint64)[0] for i in range(4)]
    assert seeds.dtype == np.uint64 and list(seeds) == expected
    assert len(set(seeds.tolist())) == 4
    assert not np.array_equal(seeds, rng.chain_seeds(42, 4, purpose=2))
    # a chain's stream depends on the seed and its index only, not on how many chains there are
    assert list(rng.chain_seeds(42, 2, purpose=1)) == expected[:2]
