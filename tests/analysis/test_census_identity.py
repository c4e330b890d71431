"""Issue 22, the pieces: identity of minima that no order of the points can change, quench starts shared by every
symmetric copy of a draw, the kind of a minimum (point or manifold beyond the symmetry orbit), and the estimate of the
minima not seen yet."""

import numpy as np
import pytest
import torch

from analysis.census import cluster_minima
from analysis.completeness import chao1, frequency_counts, good_turing_new
from mcmc_landscape.hessian import exact_hessians
from mcmc_landscape.minimum_kind import describe_kind, minimum_kind
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import orbit_tangent, quench_start, random_symmetry
from mcmc_landscape.optimize import mlp_objective, quench


def _partition(labels):
    return sorted(tuple(np.flatnonzero(labels == k)) for k in np.unique(labels))


def test_clustering_is_a_function_of_the_set_not_of_the_order():
    """a ~ b ~ c but a ≁ c: leader clustering counts 1 or 2 minima by the order of the points; components, 1."""
    e = np.zeros(3)
    feats = np.array([[0.0], [0.8e-3], [1.6e-3]])          # neighbours within theta_tol = 1e-3, ends apart
    for order in ([0, 1, 2], [1, 0, 2], [0, 2, 1], [2, 0, 1]):
        labels, reps = cluster_minima(feats[order], e[order], theta_tol=1e-3, energy_tol=1e-6)
        assert len(reps) == 1 and (labels == 0).all()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 4))
    pts = np.repeat(centres, 20, axis=0) + rng.normal(0, 1e-5, (120, 4))
    en = np.repeat(rng.normal(size=6), 20) + rng.normal(0, 1e-9, 120)
    labels, reps = cluster_minima(pts, en, theta_tol=1e-3, energy_tol=1e-6)
    assert len(reps) == 6 and _partition(labels) == [tuple(range(20 * k, 20 * k + 20)) for k in range(6)]
    for _ in range(5):
        perm = rng.permutation(120)
        lp, rp = cluster_minima(pts[perm], en[perm], theta_tol=1e-3, energy_tol=1e-6)
        back = np.empty_like(lp)
        back[perm] = lp
        assert np.array_equal(back, labels)                   # the same minima, numbered the same way
        assert np.allclose(en[perm][rp], en[reps])


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_every_symmetric_copy_quenches_from_the_same_start_to_the_same_end(points10, activation):
    spec = MLPSpec((3, 2), 2, 2, activation)
    box = 6.0
    rng = np.random.default_rng(4)
    theta = rng.uniform(-2.5, 2.5, (12, spec.n_params))
    energy, fg = mlp_objective(spec, points10.x, points10.y)
    copies = np.array([random_symmetry(t, spec, rng, box=box) for t in theta])
    assert np.abs(copies).max() <= box and np.abs(copies - theta).max() > 0.1
    assert np.allclose(energy(torch.as_tensor(copies)), energy(torch.as_tensor(theta)), rtol=1e-10, atol=1e-12)
    s0, s1 = quench_start(theta, spec, box), quench_start(copies, spec, box)
    assert np.array_equal(s0, s1)                               # bit for bit
    assert np.allclose(energy(torch.as_tensor(s0)), energy(torch.as_tensor(theta)), rtol=1e-5, atol=1e-5)
    q0, q1 = (quench(fg, s, box=box, tol=1e-6, max_iter=150) for s in (s0, s1))
    assert np.array_equal(q0.theta, q1.theta) and np.array_equal(q0.converged, q1.converged)


def test_dead_deaf_and_tiny_relu_units_still_share_one_start(points10):
    """Units with nothing coming in, nothing going out, or one side 1e-25 of the other (whose |.|^16 underflowed when
    both sides shared one scale) still give every symmetric copy one start, with the draw's function."""
    spec = MLPSpec((3, 3), 2, 2, "relu")
    offsets = spec.offsets()
    rng = np.random.default_rng(8)
    theta = rng.uniform(-2.5, 2.5, (6, spec.n_params))
    w0, b0, fan_in, width = offsets[0]
    w1, b1, _, _ = offsets[1]
    W, V = theta[:, w0:b0].reshape(-1, fan_in, width), theta[:, w1:b1].reshape(-1, width, 3)
    W[0, :, 0], theta[0, b0 + 0] = 0.0, 0.0                     # dead: unit 0 of layer 1 computes 0
    V[1, 1, :] = 0.0                                            # deaf: nothing reads unit 1 of layer 1
    W[2, :, 2] *= 1e-25
    theta[2, b0 + 2] *= 1e-25
    energy, _ = mlp_objective(spec, points10.x, points10.y)
    copies = np.array([random_symmetry(t, spec, rng, box=10.0) for t in theta])
    s0, s1 = quench_start(theta, spec), quench_start(copies, spec)
    assert np.array_equal(s0, s1)
    assert np.allclose(energy(torch.as_tensor(s0)), energy(torch.as_tensor(theta)), rtol=1e-5, atol=1e-5)


def test_relu_orbit_tangent_is_null_and_a_dead_unit_is_a_manifold(points10):
    """[2,2] relu: 4 rescalings + 3 logit shifts; at a minimum H·t = 0 for each, and the null space beyond the orbit
    is what :func:`minimum_kind` reports."""
    spec = MLPSpec((2, 2), 2, 2, "relu")
    energy, fg = mlp_objective(spec, points10.x, points10.y)
    rng = np.random.default_rng(1)
    q = quench(fg, quench_start(rng.normal(0, 1.5, (24, spec.n_params)), spec), tol=1e-8, max_iter=600)
    i = int(np.flatnonzero(q.converged & (q.energy > 1e-3))[0])
    t = orbit_tangent(q.theta[i], spec)
    assert t.shape == (7, spec.n_params)
    H = exact_hessians(energy, torch.as_tensor(q.theta[i:i + 1]))[0].numpy()
    assert np.abs(H @ t.T).max() <= 1e-6 * max(1.0, np.abs(H).max())
    k = minimum_kind(energy, q.theta[i], t)
    assert k["orbit_dim"] == 7 and k["null_dim"] >= 7 and k["manifold_dim"] == k["null_dim"] - 7
    assert k["top"] == pytest.approx(np.linalg.eigvalsh(H).max(), rel=1e-8)


def _circle(t):
    """A ring of minima (x² + y² = 1) times a bowl in z: a 1-dimensional manifold."""
    return (t[:, 0] ** 2 + t[:, 1] ** 2 - 1) ** 2 + 3 * t[:, 2] ** 2


@pytest.mark.parametrize("method", ["exact", "lanczos"])
def test_a_ring_of_minima_is_a_manifold_unless_it_is_the_orbit(method):
    theta = np.array([np.cos(0.3), np.sin(0.3), 0.0])
    k = minimum_kind(_circle, theta, np.zeros((0, 3)), method=method, k=2)
    assert (k["manifold_dim"], describe_kind(k)) == (1, "a 1-dimensional manifold")
    assert k["top"] == pytest.approx(8.0, rel=1e-6)              # radial 8, z 6, tangent 0
    assert k["trace"] == pytest.approx(14.0, rel=1e-6 if method == "exact" else 0.5)
    tangent = np.array([[-np.sin(0.3), np.cos(0.3), 0.0]])     # declared a symmetry: then it is a point
    k = minimum_kind(_circle, theta, tangent, method=method, k=2)
    assert (k["orbit_dim"], k["manifold_dim"], describe_kind(k)) == (1, 0, "a point")
    if method == "exact":
        assert k["logdet_nonnull"] == pytest.approx(np.log(48.0))
    else:                                                       # stochastic Lanczos quadrature, with its error
        assert abs(k["logdet_nonnull"] - np.log(48.0)) <= 4 * k["logdet_stderr"] and k["logdet_stderr"] < 1.0


@pytest.mark.parametrize("method", ["exact", "lanczos"])
def test_curvature_below_the_absolute_floor_is_flat_not_negative(method):
    """A plateau where U's Hessian is roundoff (a zero-loss region in float32: |λ| ~ 1e-13, either sign) is flat to
    working precision, not "not a strict minimum"; the same saddle at unit scale is named one."""
    saddle = lambda t: t[:, 0] ** 2 - t[:, 1] ** 2 + 2 * t[:, 2] ** 2          # noqa: E731
    k = minimum_kind(lambda t: 1e-13 * saddle(t), np.zeros(3), np.zeros((0, 3)), method=method, k=2)
    assert k["negative_beyond_orbit"] == 0 and describe_kind(k).startswith("flat to working precision")
    k = minimum_kind(saddle, np.zeros(3), np.zeros((0, 3)), method=method, k=2)
    assert k["negative_beyond_orbit"] == 1 and describe_kind(k).startswith("not a strict minimum")
    # a strong negative direction among roundoff-sized positive ones is a saddle, whatever the top eigenvalue says
    lopsided = lambda t: -t[:, 0] ** 2 + 1e-12 * (t[:, 1] ** 2 + t[:, 2] ** 2)  # noqa: E731
    k = minimum_kind(lopsided, np.zeros(3), np.zeros((0, 3)), method=method, k=2)
    assert k["negative_beyond_orbit"] == 1 and describe_kind(k).startswith("not a strict minimum")


def test_chao1_and_good_turing_by_hand_and_by_coverage():
    labels = np.array([0, 0, 1, 2, 3, 3, 3, 4, -1])               # f1 = 3 (1, 2, 4), f2 = 1 (0), f3 = 1
    assert frequency_counts(labels)[1:4].tolist() == [3, 1, 1]
    c = chao1(labels)
    assert c["s_obs"] == 5 and c["n"] == 8
    assert c["estimate"] == pytest.approx(5 + 7 / 8 * 3 * 2 / 4)
    assert c["low"] >= 5 and c["low"] < c["estimate"] < c["high"]
    assert good_turing_new(labels) == pytest.approx(3 / 9)
    # coverage: 40 basins of geometric frequencies, 150 quenches; the interval holds the truth most of the time
    rng = np.random.default_rng(0)
    p = 0.9 ** np.arange(40)
    p /= p.sum()
    hits = [chao1(rng.choice(40, 150, p=p)) for _ in range(300)]
    cover = np.mean([h["low"] <= 40 <= h["high"] for h in hits])
    assert cover >= 0.8
    seen, est = np.mean([h["s_obs"] for h in hits]), np.mean([h["estimate"] for h in hits])
    assert seen < est <= 40 + 2                       # a lower bound, but nearer the truth than the count seen
    # Good–Turing: the share of new basins at the next draw, against the truth averaged over replicates
    gt, truth = [], []
    for _ in range(300):
        draws = rng.choice(40, 150, p=p)
        gt.append(good_turing_new(draws))
        truth.append(p[np.setdiff1d(np.arange(40), draws)].sum())
    assert np.mean(gt) == pytest.approx(np.mean(truth), abs=0.01)
