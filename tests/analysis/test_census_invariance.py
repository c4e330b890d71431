"""Issue 22: the census of a file equals the census of a copy in which every draw gets a random element of the symmetry
group (permutations of every hidden layer; sign flips for tanh and sigmoid; positive ReLU rescaling inside the box),
and of a copy with its draws shuffled: the same number of distinct minima, the same frequencies, the same barrier
edges, the same disconnectivity tree up to names."""

import json

import numpy as np
import pytest
from chain_copies import rewrite_draws

from dss.barriers import BarrierSettings
from landscape_cli.census import run_census
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import random_symmetry

RTOL = 1e-6


def _spec(cfg):
    w = cfg["widths"]
    return MLPSpec.from_widths(w, cfg["activation"])


def _act_on_draws(src, dst, how, seed):
    """A copy of the chain file with every draw's θ acted on (``"group"``) or the draws shuffled (``"shuffle"``)."""
    def group(cfg, flat, rng):
        return np.array([random_symmetry(t, _spec(cfg), rng, box=float(cfg["box"])) for t in flat])

    return rewrite_draws(src, dst, seed, group if how == "group" else None)


def _census(chains, out):
    return run_census(chains, out, count=10_000, max_iter=400, batch=64, max_barrier_minima=3, neighbours=2,
                      device="cpu", force=True, barrier_settings=BarrierSettings(steps=100, climb_steps=100))


def _signature(c):
    """What must not move: the count, each minimum's energy and frequency, the barrier edges (as pairs of minimum
    energies) and the tree's joins (level and the energies of the leaves under it)."""
    minima = sorted((m["energy"], m["members"]) for m in c["minima"])
    e = {m["id"]: m["energy"] for m in c["minima"]}
    edges = sorted((*sorted((e[r["i"]], e[r["j"]])), r["barrier"]) for r in c["barriers"])
    tree = json.loads((c["_out"] / "disconnectivity.json").read_text())["tree"]
    kids = {}
    for link in tree["edges"]:
        kids.setdefault(link["source"], []).append(link["target"])
    nodes = {nd["id"]: nd for nd in tree["nodes"]}

    def leaves(node):
        return [nodes[node]["energy"]] if node not in kids else sum((leaves(k) for k in kids[node]), [])

    joins = sorted((nd["level"], tuple(sorted(leaves(i)))) for i, nd in nodes.items() if nd["kind"] == "join")
    return c["n_distinct"], c["n_minima"], minima, edges, joins


def _assert_same(a, b):
    (na, ma, mina, ea, ja), (nb, mb, minb, eb, jb) = _signature(a), _signature(b)
    assert (na, ma) == (nb, mb)
    assert [m for _, m in mina] == [m for _, m in minb]                      # the same frequencies
    np.testing.assert_allclose([e for e, _ in mina], [e for e, _ in minb], rtol=RTOL, atol=1e-9)
    assert len(ea) == len(eb) and len(ja) == len(jb)
    np.testing.assert_allclose(np.array(ea, float).reshape(-1), np.array(eb, float).reshape(-1), rtol=1e-4,
                               atol=1e-6)
    for (la, leaves_a), (lb, leaves_b) in zip(ja, jb, strict=True):
        assert la == pytest.approx(lb, rel=1e-4, abs=1e-6)
        np.testing.assert_allclose(leaves_a, leaves_b, rtol=RTOL, atol=1e-9)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small chain files, one per activation: 4 chains × 12 draws of the [2,2] network on the 10 points."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from landscape_cli.main import main

    root = tmp_path_factory.mktemp("inv")
    out = {}
    for act in ("relu", "tanh", "sigmoid"):
        path = root / f"{act}.h5"
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            assert main(["-q", "sample", "--activation", act, "--chains", "4", "--draws", "12", "--warmup", "300",
                         "--thin", "20", "--seed", "3", "--out", str(path)]) == 0
        out[act] = path
    return root, out


@pytest.fixture(scope="module")
def originals(files):
    root, paths = files
    res = {}
    for act, path in paths.items():
        c = _census(path, root / f"census_{act}")
        c["_out"] = root / f"census_{act}"
        res[act] = c
    return res


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_census_unchanged_by_a_random_group_element_on_every_draw(files, originals, activation):
    """relu: every hidden layer permuted and every unit rescaled (inside the box); tanh, sigmoid: permuted and
    sign-flipped."""
    root, paths = files
    copy = root / f"{activation}_group.h5"
    assert _act_on_draws(paths[activation], copy, "group", seed=11) > 0.1
    c = _census(copy, root / f"census_{activation}_group")
    c["_out"] = root / f"census_{activation}_group"
    assert originals[activation]["n_minima"] >= 10
    _assert_same(originals[activation], c)


def test_census_unchanged_by_shuffling_the_draws(files, originals):
    root, paths = files
    copy = root / "relu_shuffled.h5"
    assert _act_on_draws(paths["relu"], copy, "shuffle", seed=2) > 0
    c = _census(copy, root / "census_relu_shuffled")
    c["_out"] = root / "census_relu_shuffled"
    _assert_same(originals["relu"], c)
