"""Energies with known answers for sampler tests, compiled as cfuncs of the shared energy signature."""

import numba as nb
import numpy as np
import pytest
import torch

from mcmc_landscape.models.energy import ENERGY_SIG, EnergyModel


@nb.cfunc(ENERGY_SIG, cache=True)
def gaussian_energy(theta, fdata, idata, scratch):
    """U = ½ (θ-μ)ᵀ P (θ-μ); fdata row 0 is μ, rows 1.. are the precision P."""
    p = theta.shape[0]
    total = 0.0
    for i in range(p):
        di = theta[i] - fdata[0, i]
        for j in range(p):
            total += 0.5 * di * fdata[1 + i, j] * (theta[j] - fdata[0, j])
    return total


@nb.cfunc(ENERGY_SIG, cache=True)
def linear_energy(theta, fdata, idata, scratch):
    """U = a·θ_0 (a = fdata[0, 0]): on a box the density a e^{-a x} is cut by the walls."""
    return fdata[0, 0] * theta[0]


@nb.cfunc(ENERGY_SIG, cache=True)
def holey_energy(theta, fdata, idata, scratch):
    """½|θ|², but NaN where θ_0 > 0.5 and +inf where θ_0 < -0.5: non-finite proposals must be rejected."""
    if theta[0] > 0.5:
        return np.nan
    if theta[0] < -0.5:
        return np.inf
    s = 0.0
    for i in range(theta.shape[0]):
        s += 0.5 * theta[i] * theta[i]
    return s


def gaussian_model(mean, cov):
    mean = np.asarray(mean, float)
    prec = np.linalg.inv(np.asarray(cov, float))
    fdata = np.ascontiguousarray(np.vstack([mean[None, :], prec]))
    return EnergyModel(len(mean), gaussian_energy, fdata, np.zeros(1, np.int64), (1, 1), description="gaussian")


def linear_model(a):
    return EnergyModel(1, linear_energy, np.array([[float(a)]]), np.zeros(1, np.int64), (1, 1))


def holey_model(p):
    return EnergyModel(p, holey_energy, np.zeros((1, 1)), np.zeros(1, np.int64), (1, 1))


@pytest.fixture(autouse=True)
def one_thread():
    """Small Hessians on one torch thread (the default pool is ~10× slower for them on a shared 2-core machine);
    autouse in the test modules that import it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
