import numba
import numpy as np
import pytest
from helpers import gaussian_model, holey_model, linear_model

from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.energy import mlp_energy_model
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import rw


def _sample(model, chains, draws, seed=0, **kw):
    settings = rw.RWSettings(**kw)
    state = rw.init(model, chains, seed, settings)
    return rw.run_block(model, state, draws, settings)


def _within_4_mcse(draws, truth):
    """Each column of ``draws`` (chains, n, k) has a mean within 4 MCSE of ``truth`` (k,)."""
    s = summary_arrays(draws, draws[..., 0])["theta"]
    err = np.abs(draws.mean(axis=(0, 1)) - truth)
    assert np.all(err < 4 * s["mcse_mean"]), (err, s["mcse_mean"])
    assert np.all(s["mcse_mean"] < 0.05 * np.maximum(1, np.abs(truth)))  # the test has resolving power


def test_correlated_gaussian_moments():
    mean = np.array([1.0, -2.0, 0.5])
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 2.0, -0.3], [0.0, -0.3, 0.5]])
    _, theta, _, _ = _sample(gaussian_model(mean, cov), 8, 20000, seed=3, box=50.0, warmup=2000)
    centred = theta - mean
    features = np.concatenate([theta, centred[..., :1] ** 2, centred[..., 1:2] ** 2,
                               centred[..., :1] * centred[..., 1:2]], axis=-1)
    _within_4_mcse(features, np.concatenate([mean, [cov[0, 0], cov[1, 1], cov[0, 1]]]))


def test_bounded_density_where_walls_matter():
    a, L = 1.5, 1.0  # density ∝ exp(-a x) on [-1, 1]
    grid = np.linspace(-L, L, 200001)
    w = np.exp(-a * grid)
    m1 = np.trapezoid(grid * w, grid) / np.trapezoid(w, grid)
    m2 = np.trapezoid(grid**2 * w, grid) / np.trapezoid(w, grid)
    _, theta, _, _ = _sample(linear_model(a), 8, 20000, seed=4, box=L, warmup=1000)
    assert np.all(np.abs(theta) <= L)
    _within_4_mcse(np.concatenate([theta, theta**2], axis=-1), np.array([m1, m2]))


def test_temperature_scales_the_target():
    _, theta, _, _ = _sample(gaussian_model([0.0], [[1.0]]), 8, 20000, seed=5, box=50.0, temperature=4.0)
    _within_4_mcse((theta - 0.0) ** 2, np.array([4.0]))  # exp(-x²/2T) has variance T


def test_draws_do_not_depend_on_thread_count(points10):
    model = mlp_energy_model(MLPSpec.from_string("2,2"), points10)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _sample(model, 7, 300, seed=11, warmup=200)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _sample(model, 7, 300, seed=11, warmup=200)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one[1:3], two[1:3], strict=False):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(one[0].rng, two[0].rng)


def test_blocks_of_any_size_give_the_same_draws(points10):
    model = mlp_energy_model(MLPSpec.from_string("2,2"), points10)
    settings = rw.RWSettings(warmup=150, thin=3)
    state0 = rw.init(model, 5, 2, settings)
    _, whole, e_whole, acc_whole = rw.run_block(model, state0, 120, settings)
    state, parts, energies = state0, [], []
    state, t, e, _ = rw.run_block(model, state, 0, settings, max_warmup_steps=100)  # part of warm-up only
    assert t.shape[1] == 0 and state.iteration == 100
    for n in (7, 50, 63):
        state, t, e, _ = rw.run_block(model, state, n, settings)
        parts.append(t)
        energies.append(e)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    np.testing.assert_array_equal(np.concatenate(energies, axis=1), e_whole)


def test_step_size_frozen_after_warmup_and_chains_stay_in_box(points10):
    model = mlp_energy_model(MLPSpec.from_string("2,2"), points10)
    settings = rw.RWSettings(warmup=500, box=2.0)
    state = rw.init(model, 4, 0, settings)
    state, theta, energy, _ = rw.run_block(model, state, 200, settings)
    frozen = state.log_step.copy()
    state, theta2, energy2, _ = rw.run_block(model, state, 200, settings)
    np.testing.assert_array_equal(state.log_step, frozen)
    assert np.all(np.abs(theta2) <= 2.0)
    np.testing.assert_allclose(model.energy(theta2), energy2, rtol=1e-12)  # stored energy is the draw's energy


def test_adaptation_reaches_target_acceptance():
    model = gaussian_model(np.zeros(10), np.eye(10))
    state, _, _, info = _sample(model, 8, 20000, seed=6, box=100.0, warmup=3000, target_accept=0.3)
    assert abs(state.n_accepted.mean() / 20000 - 0.3) < 0.03


def test_nonfinite_energy_is_a_counted_rejection():
    model = holey_model(2)
    settings = rw.RWSettings(warmup=100, box=5.0, initial_step=1.0)
    state = rw.init(model, 4, 0, settings, positions=np.zeros((4, 2)))
    state, theta, energy, _ = rw.run_block(model, state, 2000, settings)
    assert state.n_nonfinite.sum() > 0
    assert np.all(np.isfinite(energy)) and np.all(np.abs(theta[..., 0]) <= 0.5)


def test_init_rejects_bad_settings(points10):
    model = mlp_energy_model(MLPSpec.from_string("2"), points10)
    with pytest.raises(SpecError):
        rw.init(model, 0, 0, rw.RWSettings())
    with pytest.raises(SpecError):
        rw.init(model, 2, 0, rw.RWSettings(thin=0))
    with pytest.raises(SpecError):
        rw.init(model, 2, 0, rw.RWSettings(), positions=np.full((2, model.p), 11.0))
