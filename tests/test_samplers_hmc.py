import numpy as np
import pytest
import torch

from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.errors import SpecError
from mcmc_landscape.samplers import hmc


def _within_4_mcse(draws, truth):
    s = summary_arrays(draws, draws[..., 0])["theta"]
    err = np.abs(draws.mean(axis=(0, 1)) - truth)
    assert np.all(err < 4 * s["mcse_mean"]), (err, s["mcse_mean"])
    assert np.all(s["mcse_mean"] < 0.05 * np.maximum(1, np.abs(truth)))


def gaussian_energy(mean, cov):
    prec = torch.tensor(np.linalg.inv(cov))
    m = torch.tensor(mean)

    def energy(theta):
        d = theta - m.to(theta)
        return 0.5 * ((d @ prec.to(theta)) * d).sum(dim=1)

    return energy


def _run(energy, p, chains, draws, seed=0, **kw):
    settings = hmc.HMCSettings(**kw)
    state = hmc.init(energy, chains, p, seed, settings)
    return hmc.run_block(energy, state, draws, settings)


def test_correlated_gaussian_moments():
    mean = np.array([1.0, -2.0, 0.5])
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, -0.3], [0.0, -0.3, 0.5]])
    state, theta, _, _ = _run(gaussian_energy(mean, cov), 3, 16, 1500, seed=1, box=50.0, warmup=500, n_leapfrog=8)
    c = theta - mean
    feats = np.concatenate([theta, c[..., :1] ** 2, c[..., 1:2] ** 2, c[..., :1] * c[..., 1:2]], axis=-1)
    _within_4_mcse(feats, np.concatenate([mean, [cov[0, 0], cov[1, 1], cov[0, 1]]]))
    acc = state.n_accepted.double().mean().item() / 1500
    assert 0.65 < acc < 0.95  # adapted toward 0.8


def test_walls_matter_reflection_is_exact():
    """Density ∝ exp(-a x_0) on [-1, 1]^2: half the mass piles up against a wall."""
    a = 1.5

    def energy(theta):
        return a * theta[:, 0] + 0.0 * theta[:, 1]

    grid = np.linspace(-1, 1, 200001)
    w = np.exp(-a * grid)
    m1 = np.trapezoid(grid * w, grid) / np.trapezoid(w, grid)
    m2 = np.trapezoid(grid**2 * w, grid) / np.trapezoid(w, grid)
    _, theta, _, _ = _run(energy, 2, 16, 1500, seed=2, box=1.0, warmup=300, n_leapfrog=10, jitter=True)
    assert np.all(np.abs(theta) <= 1.0)
    _within_4_mcse(np.stack([theta[..., 0], theta[..., 0] ** 2, theta[..., 1] ** 2], axis=-1),
                   np.array([m1, m2, 1.0 / 3.0]))


def test_reflect_folds_and_flips():
    x = torch.tensor([[0.5, 1.2, -1.5, 3.5]])
    r = torch.ones_like(x)
    y, rr = hmc.reflect(x, r, 1.0)
    torch.testing.assert_close(y, torch.tensor([[0.5, 0.8, -0.5, -0.5]]))
    torch.testing.assert_close(rr, torch.tensor([[1.0, -1.0, -1.0, 1.0]]))


def test_blocks_of_any_size_give_the_same_draws():
    energy = gaussian_energy(np.zeros(2), np.eye(2))
    settings = hmc.HMCSettings(warmup=120, thin=2, n_leapfrog=4, jitter=True)
    s0 = hmc.init(energy, 3, 2, 5, settings)
    _, whole, e_whole, _ = hmc.run_block(energy, s0, 40, settings)
    s, parts = s0, []
    s, t, _, _ = hmc.run_block(energy, s, 0, settings, max_warmup_steps=50)
    assert t.shape[1] == 0 and s.iteration == 50
    for n in (5, 35):
        s, t, _, _ = hmc.run_block(energy, s, n, settings)
        parts.append(t)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def test_nonfinite_energy_is_counted_rejection():
    def energy(theta):
        u = 0.5 * (theta**2).sum(dim=1)
        return torch.where(theta[:, 0] > 0.8, torch.full_like(u, float("nan")), u)

    state, theta, _, _ = _run(energy, 2, 8, 300, seed=3, box=5.0, warmup=50, n_leapfrog=5)
    assert int(state.n_nonfinite.sum()) > 0
    assert np.all(theta[..., 0] <= 0.8)


def test_window_schedule_like_stan():
    start, stop, ends = hmc.window_ends(1000)
    assert (start, stop) == (75, 950) and ends[:3] == [100, 150, 250] and ends[-1] == 950
    assert hmc.window_ends(10) == (10, 10, [])


def test_bad_settings():
    with pytest.raises(SpecError):
        hmc.validate_settings(hmc.HMCSettings(n_leapfrog=0))
    with pytest.raises(SpecError):
        hmc.resolve_device("cuda") if not torch.cuda.is_available() else (_ for _ in ()).throw(SpecError("x"))
