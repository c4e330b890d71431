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
    # the one-wall fast path agrees with the general fold everywhere, multi-wall excursions included
    x = torch.tensor(np.random.default_rng(0).uniform(-9.0, 9.0, size=(200, 5)))
    r = torch.tensor(np.random.default_rng(1).normal(size=(200, 5)))
    y, rr = hmc.reflect(x, r, 1.0)
    y_ref, rr_ref = hmc._fold(x, r, 1.0)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(rr, rr_ref)
    huge, _ = hmc.reflect(torch.tensor([[1e30, -3e25, 7e17]], dtype=torch.float64), torch.ones(1, 3), 1.0)
    assert bool((huge.abs() <= 1.0).all()), "a step of any size lands inside the box"


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

    settings = hmc.HMCSettings(box=5.0, warmup=50, n_leapfrog=5)
    state = hmc.init(energy, 8, 2, 3, settings, positions=np.zeros((8, 2)))
    state, theta, _, _ = hmc.run_block(energy, state, 300, settings)
    assert int(state.n_nonfinite.sum()) > 0
    assert np.all(theta[..., 0] <= 0.8)


def test_window_schedule_like_stan():
    start, stop, ends = hmc.window_ends(1000)
    assert (start, stop) == (75, 950) and ends[:3] == [100, 150, 250] and ends[-1] == 950
    assert hmc.window_ends(10) == (10, 10, [])


def test_bad_settings():
    with pytest.raises(SpecError):
        hmc.validate_settings(hmc.HMCSettings(n_leapfrog=0))
    if not torch.cuda.is_available():
        with pytest.raises(SpecError, match="no CUDA"):
            hmc.resolve_device("cuda")
    assert hmc.resolve_device("cpu") == torch.device("cpu")


def test_module_energy_matches_mlp_layout_and_samples_a_convnet():
    from mcmc_landscape.data.datasets import load_dataset
    from mcmc_landscape.models.energy import mlp_energy_torch
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.models.zoo import module_energy

    # An nn.Module MLP gives the same energy as our flat-layout MLP once W is transposed (nn.Linear stores out × in).
    ds = load_dataset("points10")
    x, y = torch.tensor(ds.x), torch.tensor(ds.y)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 2)).double()
    energy = module_energy(net, x, y)
    theta0 = energy.theta0
    ours = torch.cat([net[0].weight.T.reshape(-1), net[0].bias, net[2].weight.T.reshape(-1), net[2].bias])
    spec = MLPSpec.from_string("3", activation="tanh")
    torch.testing.assert_close(energy(theta0[None]), mlp_energy_torch(ours[None], spec, x, y))

    # A small convnet on 6 random 8×8 "images", sampled by HMC through functional_call + vmap.
    g = torch.Generator().manual_seed(1)
    imgs = torch.randn(6, 1, 8, 8, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    conv = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                               torch.nn.Flatten(), torch.nn.Linear(8, 3)).double()
    cenergy = module_energy(conv, imgs, labels)
    cp, c0 = cenergy.p, cenergy.theta0
    # chunks over chains and images give the same U and ∇U as one pass
    chunked = module_energy(conv, imgs, labels, chain_chunk=3, example_chunk=4)
    batch = c0 + 0.1 * torch.randn(5, cp, generator=g, dtype=torch.float64)
    u1, g1 = cenergy.energy_and_grad(batch)
    u2, g2 = chunked.energy_and_grad(batch)
    torch.testing.assert_close(u1, u2)
    torch.testing.assert_close(g1, g2)
    torch.testing.assert_close(chunked(batch), u1)
    leaf = batch.clone().requires_grad_()
    (ga,) = torch.autograd.grad(chunked(leaf).sum(), leaf)
    torch.testing.assert_close(ga, g1)
    assert cp == sum(q.numel() for q in conv.parameters()) == 2 * 9 + 2 + 8 * 3 + 3
    settings = hmc.HMCSettings(box=3.0, warmup=60, n_leapfrog=6)
    start = c0.clamp(-2.9, 2.9).expand(4, -1).numpy()
    state = hmc.init(cenergy, 4, cp, 0, settings, positions=start, grad_fn=chunked.energy_and_grad)
    state, theta, energy_draws, acc = hmc.run_block(cenergy, state, 40, settings, grad_fn=chunked.energy_and_grad)
    assert theta.shape == (4, 40, cp) and np.all(np.abs(theta) <= 3.0) and acc.mean() > 0.3
    np.testing.assert_allclose(cenergy(torch.tensor(theta[:, -1])).numpy(), energy_draws[:, -1], rtol=1e-10)


def test_hmc_and_random_walk_agree_on_the_classifier():
    """Same [2,2] target (box L = 2, where both converge in seconds): the loss distributions pass a two-sample test,
    and a random walk at another temperature fails it (the test has power)."""
    from scipy import stats

    from mcmc_landscape.data.datasets import load_dataset
    from mcmc_landscape.diagnostics import diagnose
    from mcmc_landscape.models.energy import mlp_energy_model, mlp_energy_torch
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.samplers import rw

    ds, spec = load_dataset("points10"), MLPSpec.from_string("2,2")
    model = mlp_energy_model(spec, ds)

    def rw_energies(temperature, seed):
        s = rw.RWSettings(box=2.0, warmup=5000, thin=10, temperature=temperature)
        _, th, e, info = rw.run_block(model, rw.init(model, 32, seed, s), 5000, s)
        return th, e, info.accepted

    xt, yt = torch.tensor(ds.x), torch.tensor(ds.y)

    def energy(theta):
        return mlp_energy_torch(theta, spec, xt, yt)

    h = hmc.HMCSettings(box=2.0, warmup=300, n_leapfrog=8)
    _, th_h, e_h, acc_h = hmc.run_block(energy, hmc.init(energy, 32, 18, 1, h), 700, h)
    th_r, e_r, acc_r = rw_energies(1.0, 0)
    d_h, d_r = diagnose(th_h, e_h, acc_h), diagnose(th_r, e_r, acc_r)
    assert d_h.energy["rhat"] < 1.01 and d_r.energy["rhat"] < 1.01

    def thinned(e, ess):  # about one draw per effective sample, so KS sees nearly independent values
        step = max(1, int(e.size / ess))
        return e.ravel()[::step]

    a, b = thinned(e_h, d_h.energy["ess_bulk"]), thinned(e_r, d_r.energy["ess_bulk"])
    assert stats.ks_2samp(a, b).pvalue > 1e-3
    assert abs(e_h.mean() - e_r.mean()) < 4 * np.hypot(d_h.energy["mcse_mean"], d_r.energy["mcse_mean"])
    th_c, e_c, acc_c = rw_energies(1.3, 2)
    c = thinned(e_c, diagnose(th_c, e_c, acc_c).energy["ess_bulk"])
    assert stats.ks_2samp(a, c).pvalue < 1e-3


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 2e-3)])
def test_fused_cpu_trajectory_equals_the_torch_leapfrog(dtype, tol):
    """The Numba trajectory the CLI runs on the CPU takes the same steps, walls included, as the torch loop."""
    from mcmc_landscape.data.datasets import load_dataset
    from mcmc_landscape.models.energy import mlp_torch_energy_grad_fn
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn

    spec, data = MLPSpec.from_string("2,2", activation="tanh"), load_dataset("points10")
    eg = mlp_torch_energy_grad_fn(spec, data, "cpu", dtype)
    traj = mlp_torch_trajectory_fn(spec, data, "cpu")
    rng = np.random.default_rng(3)
    box, C = 2.0, 64
    pos = torch.tensor(rng.uniform(-box, box, size=(C, spec.n_params)), dtype=dtype)
    r = torch.tensor(rng.normal(size=(C, spec.n_params)), dtype=dtype)
    drift = torch.tensor(rng.uniform(0.01, 0.2, size=(C, spec.n_params)), dtype=dtype)
    kick = torch.tensor(rng.uniform(0.01, 0.05, size=(C, 1)), dtype=dtype)
    _, g = eg(pos)
    ref = hmc.leapfrog(eg, pos, r, g, drift, kick, 7, box)
    got = traj(pos, r, g, drift, kick, 7, box)
    assert not torch.equal(ref[0], pos) and bool((ref[0].abs() <= box).all())
    free = hmc.leapfrog(eg, pos, r, g, drift, kick, 7, 1e9)[0]
    assert bool((free.abs() > box).any()), "the test should send some chains through a wall"
    for a, b in zip(got, ref, strict=True):
        assert a.dtype == dtype
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)
    far = traj(pos, r, g, drift * 1e20, kick, 3, box)[0]  # absurd steps still land inside the box
    assert bool(torch.isfinite(far).all() and (far.abs() <= box).all())
    assert mlp_torch_trajectory_fn(spec, data, "meta") is None
