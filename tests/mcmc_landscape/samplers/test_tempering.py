"""Replica exchange: a known bimodal target recovered, the ladder and swap counts stored, bit-identical resume."""

import numba as nb
import numpy as np
from scipy import integrate

from mcmc_landscape.diagnostics import summary_arrays
from mcmc_landscape.models.energy import ENERGY_SIG, EnergyModel
from mcmc_landscape.runs.sampling import resume_run, start_run
from mcmc_landscape.samplers import rw, tempering
from mcmc_landscape.storage.store import ChainReader

HEIGHT, TILT, BOX = 25.0, 0.6, 2.5  # U = h (x² - 1)² + s x: two wells at ±1, barrier ≈ h = 25 nats


@nb.cfunc(ENERGY_SIG, cache=True)
def double_well(theta, fdata, idata, scratch):
    x = theta[0]
    return fdata[0, 0] * (x * x - 1.0) ** 2 + fdata[0, 1] * x


def _model():
    return EnergyModel(1, double_well, np.array([[HEIGHT, TILT]]), np.zeros(1, np.int64), (1, 1))


def _left_weight() -> float:
    def w(x):
        return np.exp(-(HEIGHT * (x * x - 1) ** 2 + TILT * x))

    left = integrate.quad(w, -BOX, 0, points=[-1])[0]
    return left / (left + integrate.quad(w, 0, BOX, points=[1])[0])


def test_replica_exchange_recovers_the_mode_weights_a_random_walk_cannot():
    truth = _left_weight()  # ≈ 0.77: the tilt favours the left well
    settings = tempering.PTSettings(box=BOX, warmup=2000, n_temps=8, t_max=60.0, initial_step=0.5)
    model = _model()
    state = tempering.init(model, 8, 3, settings)
    state, theta, energy, moved = tempering.run_block(model, state, 20000, settings)
    left = (theta[..., 0] < 0).astype(float)[..., None]
    s = summary_arrays(left, energy)["theta"]
    assert abs(left.mean() - truth) < 4 * s["mcse_mean"][0], (left.mean(), truth, s["mcse_mean"])
    assert s["mcse_mean"][0] < 0.03  # the test can resolve the weight
    assert np.all(np.abs(theta) <= BOX) and moved.any()
    rates = tempering.swap_rates(state)
    assert rates.shape == (7,) and np.all((rates > 0.05) & (rates < 1))
    # the same budget of plain random walk at T = 1 stays in the well each chain started in
    rws = rw.RWSettings(box=BOX, warmup=2000, initial_step=0.5)
    _, th_rw, _, _ = rw.run_block(model, rw.init(model, 8, 3, rws), 20000, rws)
    per_chain = (th_rw[..., 0] < 0).mean(axis=1)
    assert np.all((per_chain < 0.02) | (per_chain > 0.98))


def test_ladder_is_geometric_and_rung_zero_is_the_run():
    ladder = tempering.geometric_ladder(2.0, 5, 16.0)
    np.testing.assert_allclose(ladder, 2.0 * 2.0 ** np.arange(5))
    settings = tempering.PTSettings(box=BOX, warmup=10, n_temps=3, t_max=4.0)
    state = tempering.init(_model(), 2, 0, settings)
    state, theta, energy, _ = tempering.run_block(_model(), state, 7, settings)
    np.testing.assert_array_equal(theta[:, -1], state.position[:, 0])
    np.testing.assert_array_equal(energy[:, -1], state.energy)
    np.testing.assert_allclose(state.ladder_energy, _model().energy(state.position))


CFG = {"sampler": "pt", "chains": 3, "temps": 3, "t_max": 8.0, "warmup": 150, "thin": 2, "seed": 5}


def test_resume_through_the_store_is_bit_identical(tmp_path):
    whole = tmp_path / "whole.h5"
    start_run({**CFG, "draws": 120}, whole).run(block_evals=500, quiet=True)
    part = tmp_path / "part.h5"
    start_run({**CFG, "draws": 50}, part).run(block_evals=700, quiet=True)
    resume_run(part, {}, draws=120).run(block_evals=300, quiet=True)
    with ChainReader(whole) as a, ChainReader(part) as b:
        np.testing.assert_array_equal(a.get_chain(), b.get_chain())
        np.testing.assert_array_equal(a.get_energy(), b.get_energy())
        np.testing.assert_array_equal(a.get("accepted"), b.get("accepted"))
        sa, sb = a.state(), b.state()
        for k in ("temperatures", "swap_tried", "swap_accepted", "rng", "position"):
            np.testing.assert_array_equal(sa[k], sb[k])
        assert sa["temperatures"].shape == (3,) and sa["swap_tried"].sum() > 0
