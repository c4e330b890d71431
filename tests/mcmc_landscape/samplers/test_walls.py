"""One wall reflection: the tensor fold of the torch samplers and the scalar fold that the CPU's Numba trajectory and
the GPU kernel both call agree, and the GPU kernel's source carries no wall arithmetic of its own."""

import re

import numba as nb
import numpy as np
import pytest
import torch

from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import hmc_gpu, walls


@nb.njit
def _fold_all(x, r, box):
    out_x, out_r = np.empty_like(x), np.empty_like(r)
    for i in range(x.shape[0]):
        out_x[i], out_r[i] = walls.fold_coordinate(x[i], r[i], box)
    return out_x, out_r


@nb.njit
def _fold_one(x, r, box):
    return walls.fold_coordinate(x, r, box)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_scalar_fold_equals_the_tensor_fold_and_keeps_the_float_type(dtype):
    rng = np.random.default_rng(0)
    x = rng.uniform(-9.0, 9.0, 500).astype(dtype)
    x = x[np.abs(x) > 1.0]  # outside the box [-1, 1]: where the samplers call it
    r = rng.normal(size=len(x)).astype(dtype)
    fx, fr = _fold_all(x, r, dtype(1.0))
    _fold_one(dtype(1.5), dtype(1.0), dtype(1.0))  # float32 in, float32 out: no float64 registers on the GPU
    ret = [sig.return_type for sig in _fold_one.nopython_signatures if sig.args[0] == nb.from_dtype(dtype)][0]
    assert ret == nb.types.UniTuple(nb.from_dtype(dtype), 2), ret
    tx, tr = walls.fold(torch.as_tensor(x), torch.as_tensor(r), 1.0)
    np.testing.assert_allclose(fx, tx.numpy(), atol=4 * np.finfo(dtype).eps, rtol=0)
    np.testing.assert_array_equal(fr, tr.numpy())
    assert np.all(np.abs(fx) <= 1.0)
    # by hand: 1.5 → 0.5 (one wall, momentum flipped); 3.5 → -0.5 (two walls, momentum kept)
    hx, hr = _fold_all(np.array([1.5, 3.5, -1.25], dtype), np.ones(3, dtype), dtype(1.0))
    np.testing.assert_allclose(hx, [0.5, -0.5, -0.75])
    np.testing.assert_array_equal(hr, [-1.0, 1.0, -1.0])


def test_the_gpu_kernel_folds_with_the_cpu_function():
    spec = MLPSpec.from_string("2", n_in=2, n_out=2, activation="tanh")
    for src in (hmc_gpu.trajectory_source(spec), hmc_gpu.iterations_source(spec)):
        assert src.count("fold_coordinate(") == spec.n_params  # one call per parameter in the leapfrog step
        assert not re.search(r"fmod|w4|FOUR|TWO \* box", src), "the kernel writes a reflection of its own again"
