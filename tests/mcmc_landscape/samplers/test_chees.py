"""ChEES-HMC (`--trajectory chees`): the jitter, the direction of the adaptation, resume bit for bit, and every HMC
variant against an exact reference of the [2,2] target's distribution of U."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mcmc_landscape.samplers import chees, hmc


def gaussian(theta):
    return 0.5 * (theta**2).sum(dim=1)


def gaussian_eg(theta):
    return 0.5 * (theta**2).sum(dim=1), theta.clone()


def test_halton_jitter_keeps_the_mean_and_every_chain_in_lockstep():
    assert [chees.halton(i) for i in range(4)] == [0.5, 0.25, 0.75, 0.125]
    counts = [chees.steps(10.0, i, 1000) for i in range(1024)]
    assert min(counts) == 1 and max(counts) == 20 and abs(np.mean(counts) - 10.5) < 0.1
    assert chees.steps(1e9, 3, 64) == 64, "the cap holds"


@pytest.mark.parametrize("criterion", ["energy", "spread"])
@pytest.mark.parametrize("n_leapfrog,grows", [(2, True), (200, False)], ids=["from-short", "from-long"])
def test_warmup_moves_the_length_toward_the_optimum_on_a_gaussian(n_leapfrog, grows, criterion):
    """On N(0, I) the best length is O(1) for both criteria: a trajectory of 0.1 lengthens and one of 10 shortens."""
    s = hmc.HMCSettings(box=50.0, warmup=300, trajectory="chees", chees_criterion=criterion)
    state = hmc.init(gaussian, 128, 10, 0, s, grad_fn=gaussian_eg).with_chees(chees.start(n_leapfrog, s.initial_step))
    state, _, _, _ = hmc.run_block(gaussian, state, 0, s, grad_fn=gaussian_eg)
    t0, t1 = n_leapfrog * s.initial_step, math.exp(state.chees_log_length_ma)
    assert (t1 > 3 * t0) if grows else (t1 < t0 / 3)
    assert 0.2 < t1 < 4.0 and state.chees_mean_steps > 0
    _, theta, _, _ = hmc.run_block(gaussian, state, 200, s, grad_fn=gaussian_eg)
    assert abs(theta.var() - 1.0) < 0.1


def test_chees_blocks_and_a_stored_state_continue_bit_for_bit():
    """Split anywhere (mid warm-up included) and passed through the stored arrays, a ChEES run is the same run."""
    s = hmc.HMCSettings(warmup=60, n_leapfrog=4, trajectory="chees", box=5.0)
    kernel = hmc.HMCKernel(gaussian, 3, s, grad_fn=gaussian_eg)
    s0 = kernel.init(8, 4)
    whole, th_whole, _, _ = kernel.run_block(s0, 30)
    state, parts = s0, []
    for warm, draws in ((25, 0), (None, 10), (None, 20)):
        state, th, _, _ = kernel.run_block(state, draws, max_warmup_steps=warm)
        parts.append(th)
        state = kernel.state_from_arrays(kernel.state_arrays(state))
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), th_whole)
    assert state.chees_scalars() == whole.chees_scalars() and whole.chees_halton == 90
    old = {k: v for k, v in kernel.state_arrays(s0).items() if not k.startswith("chees")}
    assert kernel.state_from_arrays(old).chees_halton == 0, "a state stored before ChEES still loads"


def test_chees_run_resumed_from_its_file_is_bit_identical(tmp_path):
    from mcmc_landscape.runs.sampling import resume_run, start_run
    from mcmc_landscape.storage.store import ChainReader

    cfg = {"sampler": "hmc", "trajectory": "chees", "chains": 4, "warmup": 40, "leapfrog": 4, "seed": 2,
           "draws": 30, "box": 3.0}
    start_run(cfg, tmp_path / "ref.h5", "r", device="cpu").run(quiet=True)
    start_run({**cfg, "draws": 12}, tmp_path / "part.h5", "r", device="cpu").run(quiet=True)
    resume_run(tmp_path / "part.h5", {}, draws=30, device="cpu").run(quiet=True)
    with ChainReader(tmp_path / "ref.h5") as a, ChainReader(tmp_path / "part.h5") as b:
        np.testing.assert_array_equal(a.get_chain(), b.get_chain())
        assert a.config["trajectory"] == "chees" and float(b.state()["chees_mean_steps"]) > 0


# --- the exact reference: [2,2] on points10 at L = 2, T = 1 ---------------------------------------------------------
L_BOX, N_REF = 2.0, 100_000


@pytest.fixture(scope="module")
def target():
    from mcmc_landscape.data.datasets import load_dataset
    from mcmc_landscape.models.energy import mlp_torch_energy_grad_fn
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn

    ds, spec = load_dataset("points10"), MLPSpec.from_string("2,2")
    eg = mlp_torch_energy_grad_fn(spec, ds, "cpu", torch.float64)
    traj = mlp_torch_trajectory_fn(spec, ds, "cpu")
    # importance sampling from the uniform box: weights exp(-U/T) give U's exact distribution (IS ESS ~ 25,000)
    rng = np.random.default_rng(12345)
    u_ref = eg(torch.tensor(rng.uniform(-L_BOX, L_BOX, size=(N_REF, spec.n_params))))[0].numpy()
    return eg, traj, u_ref


def _weighted_ks(u_draws: np.ndarray, u_ref: np.ndarray, temperature: float) -> tuple[float, float]:
    """(D, n_eff of the reference): sup |F_draws - F_ref| with F_ref weighted by exp(-U/T)."""
    w = np.exp(-(u_ref - u_ref.min()) / temperature)
    order = np.argsort(u_ref)
    grid = np.sort(np.concatenate([u_ref, u_draws.ravel()]))
    f_ref = np.concatenate([[0.0], np.cumsum(w[order]) / w.sum()])[np.searchsorted(u_ref[order], grid, "right")]
    f_draws = np.searchsorted(np.sort(u_draws.ravel()), grid, "right") / u_draws.size
    return float(np.abs(f_draws - f_ref).max()), float(w.sum() ** 2 / (w**2).sum())


def _hmc_energies(target, temperature: float, **kw) -> np.ndarray:
    eg, traj, _ = target
    s = hmc.HMCSettings(temperature=temperature, box=L_BOX, warmup=200, **kw)
    state = hmc.init(None, 64, 18, 7, s, grad_fn=eg)
    _, _, u, _ = hmc.run_block(None, state, 400, s, grad_fn=eg, trajectory_fn=traj)
    return u


@pytest.mark.parametrize("kw", [{"n_leapfrog": 8}, {"n_leapfrog": 8, "jitter": True},
                                {"trajectory": "chees"}, {"trajectory": "chees", "chees_criterion": "spread"}],
                         ids=["fixed", "jittered", "chees", "chees-spread"])
def test_every_hmc_variant_matches_the_exact_distribution_of_u(target, kw):
    """KS at 1 %, the critical value from the effective sizes (bulk ESS of the HMC draws, Kish's ESS of the
    importance weights); the same test rejects draws made at T = 1.25 (it has power)."""
    from mcmc_landscape.diagnostics import summary_arrays

    def verdict(u):
        d, n_ref = _weighted_ks(u, target[2], 1.0)
        ess = float(summary_arrays(u[..., None], u)["U"]["ess_bulk"])
        n_eff = 1.0 / (1.0 / ess + 1.0 / n_ref)
        return d, math.sqrt(-0.5 * math.log(0.01 / 2)) / math.sqrt(n_eff), ess

    d, crit, ess = verdict(_hmc_energies(target, 1.0, **kw))
    assert ess > 300, "enough effective draws for the test to mean something"
    assert d < crit, f"D = {d:.4f} ≥ {crit:.4f}: the draws do not follow exp(-U/T)"
    d_hot, crit_hot, _ = verdict(_hmc_energies(target, 1.25, **kw))
    assert d_hot > crit_hot, "the test should reject another temperature"
