"""Issue 22, item 5: the census of a zoo model's run; and the convnet's symmetry orbit, which the kind of a minimum
subtracts: U does not change along any of its tangent vectors (∇U·t = 0 at every θ)."""

import numpy as np
import pytest
import torch
from image_files import write_mnist

from mcmc_landscape.models.zoo import FlatLayout, build_model, module_energy, prepare_images, zoo_orbit_tangent


def test_small_convnet_orbit_tangent_is_a_flat_direction_everywhere():
    torch.manual_seed(0)
    module = build_model("small-convnet", in_channels=1, side=28).double()
    layout = FlatLayout.of(module)
    rng = np.random.default_rng(0)
    x = prepare_images(rng.integers(0, 255, (6, 28, 28)).astype(np.uint8)).double()
    energy = module_energy(module, x, torch.as_tensor(rng.integers(0, 10, 6)))
    theta = torch.as_tensor(rng.normal(0, 0.3, (1, layout.p)))
    _, g = energy.energy_and_grad(theta)
    t = zoo_orbit_tangent("small-convnet", layout, theta[0].numpy())
    assert t.shape == (8 + 16 + 256 + 1, layout.p)
    scale = float(g.norm()) * np.linalg.norm(t, axis=1)
    assert np.all(np.abs(t @ g[0].numpy()) <= 1e-9 * np.maximum(scale, 1.0))
    # and a finite move along a rescaling leaves U alone (relu(z/s)·s = relu(z))
    e0 = energy(theta)
    moved = theta.clone()
    moved[0] += torch.as_tensor(t[3]) * 0.3
    assert not torch.allclose(energy(moved), e0, rtol=1e-3)        # a first-order step is no group element...
    s = 1.7
    exact = theta[0].numpy().copy()
    view = layout.unflatten(torch.as_tensor(exact))
    view["conv1.weight"][3] /= s
    view["conv1.bias"][3] /= s
    view["conv2.weight"][:, 3] *= s
    assert torch.allclose(energy(torch.as_tensor(exact)[None]), e0, rtol=1e-10)   # ...the group element is exact


def test_zoo_census_runs_end_to_end_on_a_small_convnet(tmp_path):
    """Quench, identity on the probe batch, completeness (the Lanczos kind is tested on its own: at p ≈ 6,000 it
    costs minutes on a loaded CPU; bench/census.py --model small-convnet times it)."""
    from analysis.census_zoo import run_zoo_census
    from landscape_cli.main import main

    write_mnist(tmp_path / "data", n_train=8, n_test=2)
    chains = tmp_path / "z.h5"
    assert main(["-q", "sample", "--model", "small-convnet", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--n-train", "8", "--sampler", "rw", "--chains", "2", "--draws", "2", "--warmup", "4",
                 "--out", str(chains)]) == 0
    c = run_zoo_census(chains, tmp_path / "census", count=4, tol=1e-3, max_iter=60, probe=8,
                       kind_minima=0, device="cpu")
    assert c["n_quenched"] == 4 and sum(m["members"] for m in c["minima"]) == c["n_converged"]
    assert c["n_distinct"] <= c["n_converged"]
    assert c["completeness"]["chao1"]["s_obs"] == c["n_distinct"]
    assert (tmp_path / "census" / "REPORT.md").is_file()


@pytest.mark.parametrize("model,options", [("small-convnet", {"in_channels": 1, "side": 28}),
                                           ("mnist-convnet", {"width": 0.25}),
                                           ("cifar10-convnet", {"width": 0.25})])
def test_every_described_channel_symmetry_leaves_the_loss_alone(model, options):
    """The group that the census and the kinds of minima mod out (RELU_PAIRS: channel permutations and rescalings
    across each ReLU), acted on random parameters: U unchanged, θ moved."""
    from mcmc_landscape.models.zoo import random_channel_symmetry

    torch.manual_seed(0)
    module = build_model(model, **options).double()
    layout = FlatLayout.of(module)
    rng = np.random.default_rng(2)
    side, channels = (32, 3) if model.startswith("cifar") else (28, 1)
    shape = (5, side, side) if channels == 1 else (5, side, side, channels)
    x = prepare_images(rng.integers(0, 255, shape).astype(np.uint8)).double()
    energy = module_energy(module, x, torch.as_tensor(rng.integers(0, 10, 5)))
    theta = rng.normal(0, 0.2, (2, layout.p))
    acted = random_channel_symmetry(model, layout, theta, rng)
    assert np.abs(acted - theta).max() > 0.05
    torch.testing.assert_close(energy(torch.as_tensor(acted)), energy(torch.as_tensor(theta)), rtol=1e-10, atol=1e-9)
