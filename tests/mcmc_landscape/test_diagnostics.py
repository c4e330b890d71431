import numpy as np

from mcmc_landscape.diagnostics import chain_mean_normality, diagnose


def _iid(chains=8, draws=2000, p=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(chains, draws, p)), rng.normal(size=(chains, draws)), rng.random((chains, draws)) < 0.3


def test_independent_chains_are_converged():
    theta, energy, acc = _iid()
    d = diagnose(theta, energy, acc)
    assert d.converged, d.reasons
    assert d.verdict().startswith("converged")
    assert abs(d.energy["rhat"] - 1) < 0.01 and d.theta_min_ess_bulk > 8000
    assert 0.25 < d.acceptance_mean < 0.35
    # MCSE of the mean of iid N(0,1) is 1/sqrt(n)
    assert abs(d.per_coordinate["mcse_mean"][0] * np.sqrt(16000) - 1) < 0.1


def test_a_stuck_chain_is_caught_and_named():
    theta, energy, acc = _iid()
    theta[3, :, 2] += 3.0
    d = diagnose(theta, energy, acc)
    assert not d.converged
    assert d.theta_worst_rhat_index == 2
    assert any("R-hat" in r and "theta[2]" in r for r in d.reasons)


def test_autocorrelated_chains_have_low_ess():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(4, 2000, 2))
    x = np.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, 2000):
        x[:, t] = 0.995 * x[:, t - 1] + 0.1 * e[:, t]
    d = diagnose(x, x[..., 0], np.ones((4, 2000), bool))
    assert not d.converged and any("ESS" in r for r in d.reasons)


def test_chain_means_normality_detects_bimodal_means():
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(40, 500, 1))
    assert chain_mean_normality(theta, theta[..., 0]).min() > 0.01
    theta[:20] += 5.0  # half the chains in another mode: the means are bimodal
    assert chain_mean_normality(theta, theta[..., 0])[1] < 1e-4
    assert np.isnan(chain_mean_normality(theta[:2], theta[:2, :, 0])).all()
