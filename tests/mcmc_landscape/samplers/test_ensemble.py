"""emcee's ensemble as a kernel: a known Gaussian recovered, blocks of any size (a resume) give the same draws, the
walker-count rule, and a run through the CLI, the store and diagnose."""

import numpy as np
import pytest
from helpers import gaussian_model

from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.errors import SpecError
from mcmc_landscape.samplers import ensemble


def test_correlated_gaussian_moments_within_4_mcse():
    mean, cov = np.array([1.0, -2.0]), np.array([[1.0, 0.8], [0.8, 2.0]])
    s = ensemble.EnsembleSettings(box=50.0, warmup=500)
    state = ensemble.init(gaussian_model(mean, cov), 16, 4, s)
    state, theta, energy, acc = ensemble.run_block(gaussian_model(mean, cov), state, 4000, s)
    feats = np.concatenate([theta, (theta[..., :1] - mean[0]) ** 2, (theta[..., 1:] - mean[1]) ** 2], axis=-1)
    summary = summary_arrays(feats, energy)["theta"]
    err = np.abs(feats.mean(axis=(0, 1)) - np.array([*mean, cov[0, 0], cov[1, 1]]))
    assert np.all(err < 4 * summary["mcse_mean"]), (err, summary["mcse_mean"])
    assert 0.3 < acc.mean() < 0.9  # the stretch move on a 2-D Gaussian accepts about half its proposals
    assert state.n_accepted.sum() == acc.sum()


def test_blocks_of_any_size_and_a_state_round_trip_give_the_same_draws():
    model = gaussian_model(np.zeros(3), np.eye(3))
    s = ensemble.EnsembleSettings(box=2.0, warmup=30, thin=2)
    kernel = ensemble.EnsembleKernel(model, s)
    s0 = kernel.init(8, 11)
    _, whole, e_whole, _ = kernel.run_block(s0, 50)
    st, parts = s0, []
    st, t, _, _ = kernel.run_block(st, 0, max_warmup_steps=10)
    assert t.shape[1] == 0 and st.iteration == 10
    for n in (7, 43):
        st = kernel.state_from_arrays(kernel.state_arrays(st))  # what a resume reads back from the file
        st, t, _, _ = kernel.run_block(st, n)
        parts.append(t)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert np.all(np.abs(whole) <= 2.0)


def test_walkers_must_be_even_and_at_least_twice_the_dimension():
    with pytest.raises(SpecError, match="at least 2·p = 6"):
        ensemble.init(gaussian_model(np.zeros(3), np.eye(3)), 4, 0, ensemble.EnsembleSettings())
    with pytest.raises(SpecError, match="even"):
        ensemble.init(gaussian_model(np.zeros(3), np.eye(3)), 7, 0, ensemble.EnsembleSettings())


def test_emcee_from_the_cli_resumes_and_refuses_other_samplers_flags(tmp_path, capsys):
    from cli_helpers import assert_one_sentence_error, run_cli

    from mcmc_landscape.storage.store import ChainReader

    out = tmp_path / "e.h5"
    code, _, err = run_cli(capsys, "sample", "--sampler", "emcee", "--draws", "300", "--warmup", "100", "--out",
                           str(out))
    assert code == 0, err
    assert run_cli(capsys, "sample", "--resume", str(out), "--draws", "500")[0] == 0
    ref = tmp_path / "ref.h5"
    assert run_cli(capsys, "sample", "--sampler", "emcee", "--draws", "500", "--warmup", "100", "--out",
                   str(ref))[0] == 0
    with ChainReader(out) as a, ChainReader(ref) as b:
        assert a.config["sampler"] == "emcee" and a.config["chains"] == 36
        np.testing.assert_array_equal(a.get_chain(), b.get_chain())
    assert run_cli(capsys, "diagnose", str(out))[0] in (0, 1)
    code, _, err = run_cli(capsys, "sample", "--sampler", "emcee", "--leapfrog", "8", "--out", str(tmp_path / "x.h5"))
    assert_one_sentence_error(code, err)
    assert "--leapfrog applies to --sampler hmc only" in err
