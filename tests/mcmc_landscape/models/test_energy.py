import numpy as np
import pytest
import torch

from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.models.energy import mlp_energy_model, mlp_energy_torch
from mcmc_landscape.models.nets import MLPSpec


def numpy_energy(spec, theta, x, y):
    """A third, plain implementation: forward pass and log-sum-exp cross-entropy."""
    act = {"relu": lambda z: np.maximum(z, 0), "tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}
    h = x
    layers = spec.unflatten(theta)
    for i, (W, b) in enumerate(layers):
        h = h @ W + b
        if i < len(layers) - 1:
            h = act[spec.activation](h)
    m = h.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(h - m).sum(axis=1, keepdims=True)))[:, 0]
    return float(np.sum(lse - h[np.arange(len(y)), y]))


@pytest.mark.parametrize("arch,act", [("2,2", "relu"), ("4", "tanh"), ("10,10,10", "sigmoid"), ("", "relu"),
                                      ("3,5", "tanh")])
def test_numba_and_torch_agree(points10, arch, act):
    spec = MLPSpec.from_string(arch, activation=act)
    model = mlp_energy_model(spec, points10)
    thetas = np.random.default_rng(1).uniform(-10, 10, size=(64, spec.n_params))
    u_nb = model.energy(thetas)
    u_t = mlp_energy_torch(torch.tensor(thetas), spec, torch.tensor(points10.x), torch.tensor(points10.y)).numpy()
    np.testing.assert_allclose(u_nb, u_t, rtol=0, atol=1e-10)
    for k in range(5):
        assert abs(u_nb[k] - numpy_energy(spec, thetas[k], points10.x, points10.y)) < 1e-10


def test_multiclass_energy():
    rng = np.random.default_rng(3)
    from mcmc_landscape.data.datasets import validate_dataset

    ds = validate_dataset(rng.normal(size=(20, 3)), rng.integers(0, 4, size=20), name="m")
    spec = MLPSpec.from_string("5", n_in=3, n_out=4, activation="tanh")
    thetas = rng.normal(size=(8, spec.n_params)) * 3
    u_nb = mlp_energy_model(spec, ds).energy(thetas)
    u_t = mlp_energy_torch(torch.tensor(thetas), spec, torch.tensor(ds.x), torch.tensor(ds.y)).numpy()
    np.testing.assert_allclose(u_nb, u_t, atol=1e-10)


def test_zero_weights_give_n_log_2(points10):
    spec = MLPSpec.from_string("2,2")
    assert mlp_energy_model(spec, points10).energy(np.zeros(18)) == pytest.approx(10 * np.log(2), abs=1e-12)


def test_rotation_is_an_isometry_of_parameter_space(points10):
    """U(θ; R x) = U(θ'; x) with W1' = Rᵀ W1: rotating the data moves the landscape rigidly."""
    spec = MLPSpec.from_string("2,2")
    from mcmc_landscape.data.datasets import rotation_matrix

    R = rotation_matrix(120)
    thetas = np.random.default_rng(2).uniform(-10, 10, size=(32, 18))
    mapped = thetas.copy()
    W1 = thetas[:, :4].reshape(-1, 2, 2)
    mapped[:, :4] = (R.T @ W1).reshape(-1, 4)
    rotated = mlp_energy_model(spec, load_dataset("points10", 120)).energy(thetas)
    original = mlp_energy_model(spec, points10).energy(mapped)
    np.testing.assert_allclose(rotated, original, atol=1e-10)


@pytest.mark.parametrize("arch,act", [("2,2", "relu"), ("3", "tanh"), ("4,3", "sigmoid"), ("", "relu")])
def test_handwritten_gradient_equals_autograd(points10, arch, act):
    from mcmc_landscape.models.energy import mlp_energy_and_grad_torch
    from mcmc_landscape.samplers.hmc import energy_and_grad

    spec = MLPSpec.from_string(arch, activation=act)
    x, y = torch.tensor(points10.x), torch.tensor(points10.y)
    theta = torch.tensor(np.random.default_rng(5).uniform(-5, 5, size=(16, spec.n_params)))
    u_ref, g_ref = energy_and_grad(lambda t: mlp_energy_torch(t, spec, x, y), theta)
    u, g = mlp_energy_and_grad_torch(theta, spec, x, y)
    torch.testing.assert_close(u, u_ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(g, g_ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("arch,act,classes", [("2,2", "relu", 2), ("3", "tanh", 2), ("4,3", "sigmoid", 3),
                                              ("", "relu", 2), ("5", "relu", 4)])
def test_numba_gradient_equals_autograd(arch, act, classes):
    """The CPU gradient HMC runs on: equal to autograd in float64, close in float32, for 2 and more classes."""
    from mcmc_landscape.data.datasets import Dataset
    from mcmc_landscape.models.energy import mlp_energy_and_grad_nb, mlp_torch_energy_grad_fn
    from mcmc_landscape.samplers.hmc import energy_and_grad

    rng = np.random.default_rng(7)
    data = Dataset(x=rng.normal(size=(13, 2)), y=np.arange(13) % classes, name="t")
    spec = MLPSpec.from_string(arch, activation=act, n_out=classes)
    x, y = torch.tensor(data.x), torch.tensor(data.y)
    theta = rng.uniform(-5, 5, size=(37, spec.n_params))
    u_ref, g_ref = energy_and_grad(lambda t: mlp_energy_torch(t, spec, x, y), torch.tensor(theta))
    u, g = mlp_energy_and_grad_nb(theta, mlp_energy_model(spec, data))
    np.testing.assert_allclose(u, u_ref.numpy(), atol=1e-10, rtol=0)
    np.testing.assert_allclose(g, g_ref.numpy(), atol=1e-10, rtol=0)
    u32, g32 = mlp_torch_energy_grad_fn(spec, data, "cpu", torch.float32)(torch.tensor(theta, dtype=torch.float32))
    assert u32.dtype == torch.float32 and g32.dtype == torch.float32
    np.testing.assert_allclose(u32.numpy(), u_ref.numpy(), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(g32.numpy(), g_ref.numpy(), rtol=1e-4, atol=1e-3)
