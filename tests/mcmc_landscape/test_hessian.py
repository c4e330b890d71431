"""Hessian numerics against the dense Hessian on small nets: Lanczos extremes, Hutch++ and Hutchinson traces, the SLQ
density's mass and moments, per-block (per-layer) spectra, and batching over points."""

import numpy as np
import pytest
import torch

from mcmc_landscape.hessian import (
    HessianSettings,
    batched_hvp,
    block_operator,
    block_spectra,
    exact_hessians,
    extreme_eigenvalues,
    hutchinson_trace,
    hutchpp_trace,
    slq_density,
    slq_logdet,
)
from mcmc_landscape.models.energy import mlp_energy_torch
from mcmc_landscape.models.nets import MLPSpec

SPEC = MLPSpec((6, 5), 3, 3, "tanh")           # p = 24 + 35 + 18 = 77


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: one thread beats the wake-up of several (on a shared machine, by 10×)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def net():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.normal(size=(40, 3)))
    y = torch.as_tensor(rng.integers(0, 3, 40))
    theta = torch.as_tensor(rng.normal(size=(3, SPEC.n_params)))       # three points: batching is exercised
    energy = lambda t: mlp_energy_torch(t, SPEC, x, y)  # noqa: E731
    H = exact_hessians(energy, theta)
    return energy, theta, H


def test_batched_hvp_equals_dense_hessian_times_vector(net):
    energy, theta, H = net
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=theta.dtype)
    hv = batched_hvp(energy, chunk=2)(theta, v)
    assert torch.allclose(hv, torch.einsum("npq,nq->np", H, v), atol=1e-10)


def test_lanczos_top_and_bottom_k_match_dense_eigh(net):
    energy, theta, H = net
    p = theta.shape[1]
    op = block_operator(batched_hvp(energy), theta, (0, p))
    ext = extreme_eigenvalues(op, len(theta), p, k=3, steps=p, dtype=theta.dtype, device=theta.device)
    dense = torch.linalg.eigvalsh(H).numpy()
    np.testing.assert_allclose(ext["top"], dense[:, ::-1][:, :3], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(ext["bottom"], dense[:, :3], rtol=1e-8, atol=1e-8)
    # fewer steps than p: the extremes still converge, and each is within its residual bound of an eigenvalue
    short = extreme_eigenvalues(op, len(theta), p, k=1, steps=40, dtype=theta.dtype, device=theta.device)
    for i in range(len(theta)):
        gap = np.abs(dense[i][:, None] - short["top"][i][None]).min(0)
        assert (gap <= short["top_residual"][i] + 1e-9).all()
    np.testing.assert_allclose(short["top"][:, 0], dense[:, -1], rtol=1e-6)


def test_hutchpp_trace_matches_dense_trace(net):
    energy, theta, H = net
    p = theta.shape[1]
    op = block_operator(batched_hvp(energy), theta, (0, p))
    exact = torch.diagonal(H, dim1=1, dim2=2).sum(1).numpy()
    scale = torch.linalg.matrix_norm(H).numpy()                 # ‖H‖_F: the natural error scale
    pp = hutchpp_trace(op, len(theta), p, matvecs=60, dtype=theta.dtype, device=theta.device)
    assert (np.abs(pp - exact) <= 0.1 * scale).all()            # stated tolerance: 10% of ‖H‖_F at 60 products
    full = hutchpp_trace(op, len(theta), p, matvecs=3 * p + 3, dtype=theta.dtype, device=theta.device)
    np.testing.assert_allclose(full, exact, rtol=1e-8, atol=1e-8)   # the sketch holds the whole range: exact
    hu, se = hutchinson_trace(op, len(theta), p, samples=400, dtype=theta.dtype, device=theta.device)
    assert (np.abs(hu - exact) <= 5 * se).all()


def test_slq_density_integrates_to_one_and_its_moments_match_the_dense_spectrum(net):
    energy, theta, H = net
    p = theta.shape[1]
    op = block_operator(batched_hvp(energy), theta, (0, p))
    dens = slq_density(op, len(theta), p, vectors=30, steps=p, dtype=theta.dtype, device=theta.device,
                       grid_points=2000)
    mass = np.trapezoid(dens.density, dens.grid, axis=1)
    np.testing.assert_allclose(mass, 1.0, atol=1e-3)
    ev = torch.linalg.eigvalsh(H).numpy()
    np.testing.assert_allclose(dens.weights.sum(-1), 1.0, atol=1e-10)
    for k in (1, 2):                        # Gauss quadrature: each vector's moments are exact; the mean estimates tr/p
        exact = (ev**k).mean(1)
        spread = np.sqrt((ev ** (2 * k)).mean(1))
        assert (np.abs(dens.moment(k) - exact) <= 0.25 * spread).all(), (k, dens.moment(k), exact)
    # exactness per vector: with as many steps as p, Σ τ θ^k = vᵀ H^k v for the start vector
    v0 = torch.randn(len(theta), 30, p, generator=torch.Generator().manual_seed(0), dtype=theta.dtype)
    v0 = v0 / v0.norm(dim=-1, keepdim=True)
    H2 = H @ H
    quad = torch.einsum("nmp,npq,nmq->nm", v0, H2, v0).numpy()
    np.testing.assert_allclose((dens.weights * dens.nodes**2).sum(-1), quad, rtol=1e-7)


def test_block_spectra_dense_and_lanczos_agree_per_layer(net):
    energy, theta, H = net
    blocks = [("layer1", 0, 24), ("layer2", 24, 59), ("all", 0, 77)]
    dense = block_spectra(energy, theta, blocks, HessianSettings(k=2, dense_max=1000))
    iterative = block_spectra(energy, theta, blocks, HessianSettings(k=2, dense_max=0, lanczos_steps=77,
                                                                     trace_matvecs=3 * 77 + 3, slq_steps=30))
    for d, it, (_, s, e) in zip(dense, iterative, blocks, strict=True):
        sub = torch.linalg.eigvalsh(H[:, s:e, s:e]).numpy()
        assert d["method"] == "dense" and it["method"] == "lanczos"
        np.testing.assert_allclose(d["top"], sub[:, ::-1][:, :2], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(it["top"], d["top"], rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(it["bottom"], d["bottom"], rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(it["trace"], sub.sum(1), rtol=1e-7, atol=1e-7)
        np.testing.assert_allclose(np.trapezoid(d["density"], d["grid"], axis=1), 1.0, atol=1e-3)


def test_slq_logdet_of_the_positive_part_matches_dense_within_its_error(net):
    """Σ log λ over λ > cutoff (the non-null part at a minimum; here the positive part at random points) and the
    count of such λ, by SLQ with full Lanczos: unbiased, so within 4 standard errors of the dense figures; on a
    masked set of coordinates it estimates the sub-block's (the census's free coordinates)."""
    energy, theta, H = net
    p = theta.shape[1]
    op = block_operator(batched_hvp(energy), theta, (0, p))
    dense = torch.linalg.eigvalsh(H).numpy()
    cutoff = 1e-3
    exact = np.array([np.log(d[d > cutoff]).sum() for d in dense])
    r = slq_logdet(op, len(theta), p, vectors=64, steps=p, cutoff=cutoff, dtype=theta.dtype, device=theta.device)
    assert np.all(np.abs(r["logdet"] - exact) <= 4 * r["stderr"])
    assert np.all(r["stderr"] < 3.0)                          # 64 starts: about ±2.4 on these 77 eigenvalues
    np.testing.assert_allclose(r["n_nonnull"], (dense > cutoff).sum(1), rtol=0.15)
    keep = torch.zeros(p, dtype=theta.dtype)
    keep[:30] = 1.0

    def masked(V):
        return op(V * keep) * keep

    sub = torch.linalg.eigvalsh(H[:, :30, :30]).numpy()
    exact_sub = np.array([np.log(d[d > cutoff]).sum() for d in sub])
    r = slq_logdet(masked, len(theta), 30, vectors=64, steps=p, cutoff=cutoff, dtype=theta.dtype,
                   device=theta.device, mask=keep)
    assert np.all(np.abs(r["logdet"] - exact_sub) <= 4 * r["stderr"])


def test_slq_logdet_with_fewer_steps_than_eigenvalues_is_within_its_two_errors(net):
    """The census's regime (steps well below p): the quadrature's own error is not in the standard error, so the
    estimate is held within 4 standard errors plus twice its change from half the steps, at two cutoffs."""
    energy, theta, H = net
    p = theta.shape[1]
    op = block_operator(batched_hvp(energy), theta, (0, p))
    dense = torch.linalg.eigvalsh(H).numpy()
    for cutoff in (1e-3, 1e-1):
        exact = np.array([np.log(d[d > cutoff]).sum() for d in dense])
        r = slq_logdet(op, len(theta), p, vectors=64, steps=48, cutoff=cutoff, dtype=theta.dtype, device=theta.device)
        assert np.all(np.abs(r["logdet"] - exact) <= 4 * r["stderr"] + 2 * np.abs(r["quadrature_change"]))
        assert np.all(np.abs(r["quadrature_change"]) > 0)            # a change is measured, not assumed zero
