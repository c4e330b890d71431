"""The zoo convnets' symmetry group (models.zoo_symmetry): its action leaves U alone, and the census's canonical
quench start is one point per orbit (the same bits for every relabelled or rescaled copy of a draw)."""

import numpy as np
import pytest
import torch

from mcmc_landscape.models.zoo import FlatLayout, build_model, module_energy, prepare_images
from mcmc_landscape.models.zoo_symmetry import random_channel_symmetry, zoo_quench_start

MODELS = [("small-convnet", {"in_channels": 1, "side": 28}), ("mnist-convnet", {"width": 0.125}),
          ("cifar10-convnet", {"width": 0.25})]


def _model_and_energy(model: str, options: dict, rng: np.random.Generator):
    torch.manual_seed(0)
    module = build_model(model, **options).double()
    layout = FlatLayout.of(module)
    side, channels = (32, 3) if model.startswith("cifar") else (28, 1)
    shape = (5, side, side) if channels == 1 else (5, side, side, channels)
    x = prepare_images(rng.integers(0, 255, shape).astype(np.uint8)).double()
    return layout, module_energy(module, x, torch.as_tensor(rng.integers(0, 10, 5)))


@pytest.mark.parametrize("model,options", MODELS)
def test_every_described_channel_symmetry_leaves_the_loss_alone(model, options):
    """The group that the census and the kinds of minima mod out (RELU_PAIRS: channel permutations and rescalings
    across each ReLU), acted on random parameters: U unchanged, θ moved."""
    rng = np.random.default_rng(2)
    layout, energy = _model_and_energy(model, options, rng)
    theta = rng.normal(0, 0.2, (2, layout.p))
    acted = random_channel_symmetry(model, layout, theta, rng)
    assert np.abs(acted - theta).max() > 0.05
    torch.testing.assert_close(energy(torch.as_tensor(acted)), energy(torch.as_tensor(theta)), rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("model,options", MODELS)
def test_the_quench_start_is_one_point_per_orbit_and_the_same_network(model, options):
    """Copies of draws acted on by random channel permutations and rescalings (factors up to 2) reach the same start
    bit for bit; the start (before clipping) computes the draw's function up to the 2^-20 grid; the draws themselves
    differ."""
    rng = np.random.default_rng(3)
    layout, energy = _model_and_energy(model, options, rng)
    theta = rng.uniform(-0.3, 0.3, (3, layout.p))
    acted = random_channel_symmetry(model, layout, theta, rng)
    start = zoo_quench_start(model, layout, theta)
    np.testing.assert_array_equal(zoo_quench_start(model, layout, acted), start)
    assert np.abs(acted - theta).max() > 0.05 and np.abs(start - theta).max() > 1e-3
    torch.testing.assert_close(energy(torch.as_tensor(start)), energy(torch.as_tensor(theta)), rtol=1e-4, atol=0)
    assert np.array_equal(zoo_quench_start(model, layout, theta, box=0.2), np.clip(start, -0.2, 0.2))


def test_dead_deaf_and_tiny_channels_still_reach_one_start():
    """Channels with nothing coming in, nothing going out, or one side 1e-25 of the other (whose |.|^16 underflows
    when both sides share one scale) still give every rescaled copy one start, and the same function."""
    model, options = MODELS[0]
    rng = np.random.default_rng(5)
    layout, energy = _model_and_energy(model, options, rng)
    theta = rng.uniform(-0.3, 0.3, (2, layout.p))
    view = layout.unflatten(torch.from_numpy(theta[0]))            # views into θ's first row
    view["conv1.weight"][3], view["conv1.bias"][3] = 0.0, 0.0         # dead: conv1 channel 3 computes 0
    view["conv2.weight"][:, 5] = 0.0                                  # deaf: nothing reads conv1 channel 5
    view["conv1.weight"][6] *= 1e-25
    view["conv1.bias"][6] *= 1e-25
    acted = random_channel_symmetry(model, layout, theta, rng)
    start = zoo_quench_start(model, layout, theta)
    np.testing.assert_array_equal(zoo_quench_start(model, layout, acted), start)
    torch.testing.assert_close(energy(torch.as_tensor(start)), energy(torch.as_tensor(theta)), rtol=1e-4, atol=0)


def test_float32_draws_permuted_reach_one_start_bit_for_bit():
    """Permutations are exact in float32, so a float32 file's relabelled copy starts where its draw does (a rescaled
    copy is exact only in float64: see zoo_quench_start)."""
    model, options = MODELS[0]
    rng = np.random.default_rng(6)
    layout, _ = _model_and_energy(model, options, rng)
    theta = rng.uniform(-0.3, 0.3, (3, layout.p)).astype(np.float32).astype(np.float64)
    permuted = random_channel_symmetry(model, layout, theta, rng, 1.0, 1.0).astype(np.float32).astype(np.float64)
    assert np.abs(permuted - theta).max() > 0.05
    np.testing.assert_array_equal(zoo_quench_start(model, layout, permuted), zoo_quench_start(model, layout, theta))
