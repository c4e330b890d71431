"""The census of minima: a synthetic landscape with known minima and barriers, saddles never taken for minima,
symmetric copies of a network's draws giving the same minima, and `landscape census` end to end (resume, refusal)."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_sentence_error, run_cli

from analysis.census import cluster_minima, disconnectivity_tree, saturation_curve, tree_leaves_in_order
from analysis.census_run import point_losses as _point_losses
from dss.barriers import BarrierSettings, barriers
from mcmc_landscape.hessian import hessian_spectrum
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import aligned_distance, function_form, group_order, permute_hidden, symmetric_copies
from mcmc_landscape.optimize import autograd_energy_grad, classify, mlp_objective, quench

A, B = 0.3, -0.2            # tilts: four minima of four different energies


def tilted(t):
    """U(x, y) = (x²−1)² + a x + (y²−1)² + b y: separable, so every critical point is known in closed form."""
    return (t[:, 0] ** 2 - 1) ** 2 + A * t[:, 0] + (t[:, 1] ** 2 - 1) ** 2 + B * t[:, 1]


def _critical(c):
    """Roots of 4x³ − 4x + c: (left minimum, maximum, right minimum) of (x²−1)² + c x."""
    return np.sort(np.roots([4.0, 0.0, -4.0, c]).real)


def _f(x, c):
    return (x**2 - 1) ** 2 + c * x


def test_synthetic_landscape_minima_barriers_and_tree_recovered_exactly():
    rx, ry = _critical(A), _critical(B)
    true_min = np.array([[x, y] for x in (rx[0], rx[2]) for y in (ry[0], ry[2])])
    true_e = np.array([_f(x, A) + _f(y, B) for x, y in true_min])
    starts = np.random.default_rng(1).uniform(-2, 2, (120, 2))
    res = quench(autograd_energy_grad(tilted), starts, box=2.0, tol=1e-7, max_iter=300)
    kinds = [classify(s, c) for s, c in zip(hessian_spectrum(tilted, res.theta, res.active), res.converged,
                                            strict=True)]
    is_min = np.array([k.kind == "minimum" for k in kinds])
    assert is_min.sum() >= 110                                   # every start accounted for, nearly all converge
    labels, reps = cluster_minima(res.theta[is_min], res.energy[is_min], theta_tol=1e-4, energy_tol=1e-8)
    assert len(reps) == 4
    found = res.theta[is_min][reps]
    order = [int(np.argmin(np.linalg.norm(true_min - m, axis=1))) for m in found]
    assert sorted(order) == [0, 1, 2, 3]
    assert np.allclose(found, true_min[order], atol=1e-6)
    assert np.allclose(res.energy[is_min][reps], true_e[order], atol=1e-12)
    # barriers between every pair: the lower of the saddle routes (minimax), exactly, and the saddle converged
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    rows = barriers(tilted, true_min, true_e, pairs, BarrierSettings(box=2.0))
    saddle_x = [_f(rx[1], A) + _f(y, B) for y in (ry[0], ry[2])]   # crossing x at y = bottom / top row
    saddle_y = [_f(x, A) + _f(ry[1], B) for x in (rx[0], rx[2])]   # crossing y at x = left / right column
    # minima 0=(L,B) 1=(L,T) 2=(R,B) 3=(R,T)
    direct = {(0, 1): saddle_y[0], (2, 3): saddle_y[1], (0, 2): saddle_x[0], (1, 3): saddle_x[1]}
    minimax = dict(direct)
    minimax[(0, 3)] = min(max(direct[(0, 1)], direct[(1, 3)]), max(direct[(0, 2)], direct[(2, 3)]))
    minimax[(1, 2)] = min(max(direct[(0, 1)], direct[(0, 2)]), max(direct[(1, 3)], direct[(2, 3)]))
    for r in rows:
        assert r["saddle_converged"], r
        assert r["upper_bound"] >= r["saddle_energy"] - 1e-12
        assert r["barrier"] == pytest.approx(minimax[(r["i"], r["j"])], abs=1e-9)
        assert r["upper_bound"] == pytest.approx(minimax[(r["i"], r["j"])], abs=1e-6)
    tree = disconnectivity_tree(true_e, rows)
    joins = sorted(tree.nodes[n]["level"] for n in tree if tree.nodes[n]["kind"] == "join")
    assert np.allclose(joins, sorted(direct.values())[:3], atol=1e-9)   # Kruskal: the three lowest direct saddles
    assert len(tree_leaves_in_order(tree)) == 4


def test_a_saddle_is_never_reported_as_a_minimum():
    rx, ry = _critical(A), _critical(B)
    saddles = np.array([[rx[1], ry[0]], [rx[0], ry[1]], [rx[1], ry[2]], [rx[1], ry[1]]])
    res = quench(autograd_energy_grad(tilted), saddles, box=2.0, tol=1e-7)
    assert res.converged.all() and np.allclose(res.theta, saddles, atol=1e-9)   # ∇U = 0 there: the quench stays
    for method in ("exact", "lanczos"):
        k = [classify(s, True) for s in hessian_spectrum(tilted, res.theta, method=method, k=1)]
        assert [x.kind for x in k] == ["saddle"] * 4
        assert [x.index for x in k[:3]] == [1, 1, 1]
    exact = [classify(s, True) for s in hessian_spectrum(tilted, res.theta, method="exact")]
    assert exact[3].index == 2                                    # the maximum


def test_lanczos_agrees_with_the_exact_spectrum():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(30, 30))
    H = torch.as_tensor(M @ M.T - 5 * np.eye(30))

    def quad(t):
        return 0.5 * torch.einsum("ni,ij,nj->n", t, H, t)

    x = rng.normal(size=(1, 30))
    exact = hessian_spectrum(quad, x, method="exact")[0].eigenvalues
    low = hessian_spectrum(quad, x, method="lanczos", k=4)[0].eigenvalues
    assert np.allclose(low, exact[:4], rtol=1e-7, atol=1e-7)


def _random_copy(theta, spec, rng):
    """A symmetric copy: every hidden layer's units permuted, and for tanh some signs flipped."""
    out = theta.copy()
    for layer, width in enumerate(spec.hidden):
        out = permute_hidden(out, spec, layer, rng.permutation(width))
        if spec.activation == "tanh":
            w_off, b_off, fan_in, _ = spec.offsets()[layer]
            nw_off, nb_off, _, fan_out = spec.offsets()[layer + 1]
            for u in np.flatnonzero(rng.random(width) < 0.5):
                out[w_off:b_off].reshape(fan_in, width)[:, u] *= -1
                out[b_off + u] *= -1
                out[nw_off:nb_off].reshape(width, fan_out)[u] *= -1
    return out


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_symmetric_copies_of_draws_give_the_same_distinct_minima(points10, activation):
    spec = MLPSpec((3, 2), 2, 2, activation)
    energy, fg = mlp_objective(spec, points10.x, points10.y)
    rng = np.random.default_rng(3)
    # draws near minima (as a sampler's draws at low temperature are): quenched random starts, jittered
    first = quench(fg, rng.normal(0, 1.5, (16, spec.n_params)), box=10.0, tol=1e-7, max_iter=300)
    starts = np.clip(first.theta + rng.normal(0, 1e-3, first.theta.shape), -10, 10)
    copies = np.array([_random_copy(t, spec, rng) for t in starts])
    assert np.allclose(energy(torch.as_tensor(copies)), energy(torch.as_tensor(starts)), rtol=1e-10)
    both = quench(fg, np.vstack([starts, copies]), box=10.0, tol=1e-7, max_iter=300)
    n = len(starts)
    ok = both.converged[:n] & both.converged[n:]
    assert ok.sum() >= 5
    a, b = both.theta[:n][ok], both.theta[n:][ok]
    fa, fb = function_form(a, spec, points10.x), function_form(b, spec, points10.x)
    ea, eb = both.energy[:n][ok], both.energy[n:][ok]
    pa, pb = (_point_losses(t, spec, points10.x, points10.y) for t in (a, b))
    dist = lambda u, v: aligned_distance(u, v, spec)  # noqa: E731
    la, ra = cluster_minima(fa, ea, 1e-3, 1e-5, dist, pa)
    lb, rb = cluster_minima(fb, eb, 1e-3, 1e-5, dist, pb)
    lab, _ = cluster_minima(np.vstack([fa, fb]), np.concatenate([ea, eb]), 1e-3, 1e-5, dist, np.vstack([pa, pb]))
    assert len(ra) == len(rb) == lab.max() + 1                  # the copies add no minimum
    assert np.array_equal(lab[: ok.sum()], lab[ok.sum():])      # each draw and its copy: the same minimum
    _, raw = cluster_minima(np.vstack([a, b]), np.concatenate([ea, eb]), 1e-3, 1e-5)
    assert len(raw) > len(ra)                                   # Euclidean clustering counts the copies apart
    assert all(1 <= symmetric_copies(f, spec) <= group_order(spec) for f in fa)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_alignment_recovers_a_symmetric_copy_exactly(activation):
    spec = MLPSpec((4, 3), 2, 3, activation)
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(6, spec.n_params))
    for t in theta:
        copy = _random_copy(t, spec, rng)
        f0, f1 = function_form(t, spec)[0], function_form(copy, spec)[0]
        assert aligned_distance(f0, f1, spec) < 1e-10
        assert aligned_distance(f0, function_form(rng.normal(size=spec.n_params), spec)[0], spec) > 1e-3


def test_saturation_curve_counts_first_appearances():
    labels = np.array([0, 0, 1, -1, 0, 2, 1, 2])
    curve = saturation_curve(labels, n_points=8, n_orders=5)
    assert curve["quenched"] == list(range(1, 9))
    assert curve["distinct_in_order"] == [1, 1, 2, 2, 2, 3, 3, 3]
    assert curve["distinct_mean"][-1] == 3


def test_census_cli_end_to_end_resumes_and_refuses(tmp_path, capsys):
    from landscape_cli.census import run_census

    chains = tmp_path / "c.h5"
    assert run_cli(capsys, "sample", "--chains", "4", "--draws", "60", "--warmup", "200", "--thin", "5",
                   "--out", str(chains))[0] == 0
    out = tmp_path / "census"
    code, text, err = run_cli(capsys, "census", str(chains), "--out", str(out), "--count", "40", "--max-iter", "300",
                              "--batch", "16", "--max-barrier-minima", "3", "--device", "cpu",
                              "--path-steps", "200", "--climb-steps", "200")
    assert code == 0, err
    c = json.loads((out / "census.json").read_text())
    assert c["n_quenched"] == 40 == sum(c["kinds"].values())
    assert c["n_minima"] == c["kinds"]["minimum"] and 1 <= c["n_distinct"] <= c["n_minima"]
    assert sum(m["members"] for m in c["minima"]) == c["n_minima"]
    assert all({"energy", "loss", "frequency", "copies"} <= set(m) for m in c["minima"])
    assert abs(sum(m["frequency"] for m in c["minima"]) - c["n_minima"] / 40) < 1e-12
    for f in ("REPORT.md", "disconnectivity.png", "disconnectivity.json", "disconnectivity.graphml",
              "barriers.graphml", "saturation.png", "flatness.png"):
        assert (out / f).is_file(), f
    assert len(list((out / "quench").glob("batch_*.npz"))) == 3
    # a killed census resumes from its batches: remove the last batch and the results, rerun, same numbers
    (out / "quench" / "batch_00002.npz").unlink()
    (out / "census.json").unlink()
    c2 = run_census(chains, out, count=40, max_iter=300, batch=16, max_barrier_minima=3, device="cpu",
                    barrier_settings=BarrierSettings(steps=200, climb_steps=200))
    assert c2["labels"] == c["labels"] and [m["energy"] for m in c2["minima"]] == [m["energy"] for m in c["minima"]]
    code, _, err = run_cli(capsys, "census", str(chains), "--out", str(out), "--count", "30")
    assert_one_sentence_error(code, err)                        # other settings, no --force


def test_dss_graph_graphml_through_networkx_keeps_every_level(tmp_path):
    import networkx as nx

    from dss.graph import write_graph

    edge = {"i": 0, "j": 1, "normalized_length": 1.2, "n_beads": 3, "max_interpolated_loss": 0.09, "length": 2.0}
    graph = {"levels": [{"l0": 0.1, "edges": [edge]}, {"l0": 0.05, "edges": [{**edge, "n_beads": 5}]}],
             "nodes": [{"loss": 0.01, "draw": 3}, {"loss": 0.02, "draw": 7}, {"loss": 0.03, "draw": 9}]}
    write_graph(graph, np.zeros((3, 4)), tmp_path)
    g = nx.read_graphml(tmp_path / "graph.graphml")
    assert g.nodes["n1"] == {"loss": 0.02, "source_draw": 7} and len(g) == 3
    assert sorted((d["level"], d["n_beads"]) for _, _, d in g.edges(data=True)) == [(0.05, 5), (0.1, 3)]
    assert json.loads((tmp_path / "graph.json").read_text())["minima"] == np.zeros((3, 4)).tolist()
