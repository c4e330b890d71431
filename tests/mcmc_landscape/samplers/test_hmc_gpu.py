"""The fused GPU trajectory (numba-cuda) against the torch loop, run on the CPU through numba-cuda's simulator.

The simulator must be switched on before numba is imported, so the cases run in a child process
(``python tests/mcmc_landscape/samplers/test_hmc_gpu.py OUT.npz`` with ``NUMBA_ENABLE_CUDASIM=1``) that executes
the very kernel source the GPU compiles and saves both paths' results; the tests here compare them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mcmc_landscape.data.datasets import Dataset, load_dataset
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import hmc, hmc_gpu

needs_numba_cuda = pytest.mark.skipif(not hmc_gpu.available(), reason="numba-cuda (the dev/gpu extra) is absent")

#: (arch, activation, classes, dtype): two-class softplus path with each activation, a wider multi-class net, float32.
CASES = [("2,2", "relu", 2, "float64"), ("2,2", "tanh", 2, "float64"), ("3", "sigmoid", 2, "float64"),
         ("4,3", "relu", 3, "float64"), ("2,2", "relu", 2, "float32")]
BOX, N_LF = 2.0, 5


def _data(classes: int) -> Dataset:
    if classes == 2:
        return load_dataset("points10")
    rng = np.random.default_rng(7)
    return Dataset(rng.normal(size=(12, 2)), np.arange(12) % classes, "three")


def _case_inputs(spec: MLPSpec, dtype: torch.dtype, chains: int = 9):
    rng = np.random.default_rng(3)
    p = spec.n_params
    pos = torch.tensor(rng.uniform(-BOX, BOX, size=(chains, p)), dtype=dtype)
    r = torch.tensor(rng.normal(size=(chains, p)), dtype=dtype)
    drift = torch.tensor(rng.uniform(0.01, 0.3, size=(chains, p)), dtype=dtype)
    kick = torch.tensor(rng.uniform(0.01, 0.05, size=(chains, 1)), dtype=dtype)
    return pos, r, drift, kick


def _torch_eg(spec: MLPSpec, data: Dataset, dtype: torch.dtype):
    from mcmc_landscape.models.energy import mlp_energy_and_grad_torch

    x, y = torch.tensor(data.x, dtype=dtype), torch.tensor(data.y)
    return lambda t: mlp_energy_and_grad_torch(t, spec, x, y)


def simulate(out: str) -> None:
    """Child process: every case through the kernel (simulated) and the torch loop; a short HMC run both ways."""
    from numba import cuda

    from mcmc_landscape.models.energy import mlp_energy_torch
    from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn

    assert cuda.is_available(), "run with NUMBA_ENABLE_CUDASIM=1 (numba-cuda's simulator)"
    res: dict[str, np.ndarray] = {}
    for arch, act, classes, dt in CASES:
        dtype = getattr(torch, dt)
        data = _data(classes)
        spec = MLPSpec.from_string(arch, activation=act, n_out=classes)
        traj = mlp_torch_trajectory_fn(spec, data, "cuda")  # the path `--device cuda` takes
        assert getattr(traj, "fused", False)
        eg = _torch_eg(spec, data, dtype)
        pos, r, drift, kick = _case_inputs(spec, dtype)
        _, g = eg(pos)
        tag = f"{arch}-{act}-{classes}-{dt}"
        got = traj(pos, r, g, drift, kick, N_LF, BOX)
        ref = hmc.leapfrog(eg, pos, r, g, drift, kick, N_LF, BOX)
        free = hmc.leapfrog(eg, pos, r, g, drift, kick, N_LF, 1e9)[0]  # the same trajectory without walls
        for name, a, b in zip(("x", "r", "u", "g"), got, ref, strict=True):
            res[f"{tag}/got_{name}"], res[f"{tag}/ref_{name}"] = a.numpy(), b.numpy()
        res[f"{tag}/free_x"] = free.numpy()
        res[f"{tag}/far_x"] = traj(pos, r, g, drift * 1e20, kick, 3, BOX)[0].numpy()  # absurd steps
        res[f"{tag}/pos"] = pos.numpy()
    # a whole HMC block, warm-up adaptation included: fused trajectory against the torch loop, float64
    data, spec = load_dataset("points10"), MLPSpec.from_string("2,2")
    eg = _torch_eg(spec, data, torch.float64)
    x, y = torch.tensor(data.x), torch.tensor(data.y)

    def energy(t):
        return mlp_energy_torch(t, spec, x, y)

    settings = hmc.HMCSettings(box=3.0, warmup=12, n_leapfrog=6, initial_step=0.2)
    for label, traj in (("fused", mlp_torch_trajectory_fn(spec, data, "cuda")), ("loop", None)):
        state = hmc.init(energy, 6, spec.n_params, 5, settings, grad_fn=eg)
        state, theta, u, acc = hmc.run_block(energy, state, 6, settings, grad_fn=eg, trajectory_fn=traj)
        res[f"run/{label}_theta"], res[f"run/{label}_u"], res[f"run/{label}_acc"] = theta, u, acc
        res[f"run/{label}_step"] = state.log_step.numpy()
    # Stan's warm-up (a mass-matrix window opening and closing, the step size freezing), thinning and jittered
    # trajectories: from the torch loop's state at three points of the schedule, a dozen iterations both ways, the
    # kernel's in launches of 4 iterations (rounding differences grow chaotically over long runs; a dozen is exact)
    settings = hmc.HMCSettings(box=3.0, warmup=150, thin=2, n_leapfrog=4, jitter=True, initial_step=0.2)
    state = hmc.init(energy, 4, spec.n_params, 9, settings, grad_fn=eg)
    hmc.NOISE_BYTES = 4 * (spec.n_params + 1) * 8 * 4
    done = 0
    for seg, (at, warm_steps, draws) in enumerate(((70, 12, 0), (95, 12, 0), (144, 6, 4))):
        state, _, _, _ = hmc.run_block(energy, state, 0, settings, max_warmup_steps=at - done, grad_fn=eg)
        done = at
        for label, traj in (("fused", mlp_torch_trajectory_fn(spec, data, "cuda")), ("loop", None)):
            launches = []
            if traj is not None:
                kernel_iterations = traj.iterations
                traj.iterations = lambda *a, f=kernel_iterations, n=launches: n.append(1) or f(*a)
            end, theta, u, acc = hmc.run_block(energy, state, draws, settings, max_warmup_steps=warm_steps,
                                               grad_fn=eg, trajectory_fn=traj)
            tag = f"warm{seg}/{label}"
            res[f"{tag}_launches"] = np.array(len(launches))
            res[f"{tag}_theta"], res[f"{tag}_u"], res[f"{tag}_acc"] = theta, u, acc
            for k, v in HMC_STATE_ARRAYS(end).items():
                res[f"{tag}_state_{k}"] = v
    # ChEES: warm-up through the trajectory kernel (the length needs every chain between iterations), then the
    # frozen, Halton-jittered length through the kernel of whole iterations; against the torch loop
    settings = hmc.HMCSettings(box=3.0, warmup=10, n_leapfrog=3, initial_step=0.2, trajectory="chees")
    for label, traj in (("fused", mlp_torch_trajectory_fn(spec, data, "cuda")), ("loop", None)):
        launches = []
        if traj is not None:
            kernel_iterations = traj.iterations
            traj.iterations = lambda *a, f=kernel_iterations, n=launches: n.append(1) or f(*a)
        state = hmc.init(energy, 4, spec.n_params, 5, settings, grad_fn=eg)
        state, theta, u, acc = hmc.run_block(energy, state, 4, settings, grad_fn=eg, trajectory_fn=traj)
        res[f"chees/{label}_theta"], res[f"chees/{label}_acc"] = theta, acc
        res[f"chees/{label}_launches"] = np.array(len(launches))
        res[f"chees/{label}_scalars"] = np.array(state.chees_scalars(), dtype=np.float64)
    # float32 through the kernel of whole iterations: the dtype kept, every draw in the box
    eg32 = _torch_eg(spec, data, torch.float32)
    settings = hmc.HMCSettings(box=3.0, warmup=20, n_leapfrog=4)
    state = hmc.init(energy, 4, spec.n_params, 3, settings, dtype=torch.float32, grad_fn=eg32)
    state, theta, u, acc = hmc.run_block(energy, state, 10, settings, grad_fn=eg32,
                                         trajectory_fn=mlp_torch_trajectory_fn(spec, data, "cuda"))
    res["f32/theta"], res["f32/u"], res["f32/acc"] = theta, u, acc
    res["f32/u_check"] = eg32(torch.from_numpy(theta[:, -1]))[0].numpy()
    res["f32/state_dtypes"] = np.array([str(getattr(state, k).dtype) for k in ("position", "log_step", "inv_mass")])
    np.savez(out, **res)


def HMC_STATE_ARRAYS(state: hmc.HMCState) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in hmc.HMCKernel.state_arrays(state).items() if k != "rng_state"}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("hmc_gpu") / "sim.npz"
    root = Path(__file__).resolve().parents[3]  # the repository: tests/mcmc_landscape/samplers/this file
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1",
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(out) as f:
        return dict(f)


@needs_numba_cuda
@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)) for c in CASES])
def test_fused_gpu_trajectory_equals_the_torch_loop(simulated, case):
    """Same end point, momentum, U and ∇U as hmc.leapfrog with the batched torch gradient, walls crossed included."""
    arch, act, classes, dt = case
    tag = f"{arch}-{act}-{classes}-{dt}"
    tol = 1e-11 if dt == "float64" else 2e-4
    for name in "xrug":
        got, ref = simulated[f"{tag}/got_{name}"], simulated[f"{tag}/ref_{name}"]
        assert got.dtype == np.dtype(dt)
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol, err_msg=name)
    free, pos = simulated[f"{tag}/free_x"], simulated[f"{tag}/pos"]
    assert (np.abs(free) > BOX).sum() >= 5, "the test should send chains through the walls"
    assert not np.allclose(simulated[f"{tag}/got_x"], pos)
    assert np.all(np.abs(simulated[f"{tag}/got_x"]) <= BOX)
    far = simulated[f"{tag}/far_x"]
    assert np.all(np.isfinite(far)) and np.all(np.abs(far) <= BOX), "a step of any size lands inside the box"


@needs_numba_cuda
def test_hmc_block_with_the_fused_trajectory_equals_the_torch_loop(simulated):
    """A warm-up with step-size adaptation and kept draws: the same draws and accept decisions either way."""
    np.testing.assert_array_equal(simulated["run/fused_acc"], simulated["run/loop_acc"])
    assert 0 < simulated["run/fused_acc"].mean() < 1, "both accepts and rejects should occur"
    for k in ("theta", "u", "step"):
        np.testing.assert_allclose(simulated[f"run/fused_{k}"], simulated[f"run/loop_{k}"], rtol=1e-9, atol=1e-9)


@needs_numba_cuda
@pytest.mark.parametrize("seg", [0, 1, 2], ids=["slow-window-opens", "window-closes", "warm-up-ends-thinned-draws"])
def test_whole_iterations_in_the_kernel_equal_the_torch_iterations(simulated, seg):
    """The fused iterations (one launch for several whole iterations) against run_block's torch iterations, across
    the events of Stan's warm-up, thinning, jitter and launches that split blocks: the same draws, accept decisions
    and state (step sizes, mass matrix, Welford sums, counters)."""
    got, ref = f"warm{seg}/fused", f"warm{seg}/loop"
    assert simulated[f"{got}_launches"] >= 3 and simulated[f"{ref}_launches"] == 0
    np.testing.assert_array_equal(simulated[f"{got}_acc"], simulated[f"{ref}_acc"])
    keys = [k[len(ref) + 1:] for k in simulated if k.startswith(ref) and not k.endswith("launches")]
    assert "state_inv_mass" in keys and "state_welford_n" in keys
    for k in keys:
        np.testing.assert_allclose(simulated[f"{got}_{k}"], simulated[f"{ref}_{k}"], rtol=1e-9, atol=1e-9, err_msg=k)
    before_after = {0: ("state_welford_n", 7), 1: ("state_da_count", 7), 2: ("state_iteration", 158)}[seg]
    assert int(simulated[f"{ref}_{before_after[0]}"]) == before_after[1], "the segment should cross its event"
    if seg == 1:
        assert not np.allclose(simulated[f"{ref}_state_inv_mass"], 1.0), "the window should re-estimate the mass"
    if seg == 2:
        assert simulated[f"{got}_theta"].shape == (4, 4, 18) and 0 < simulated[f"{got}_acc"].mean() <= 1


@needs_numba_cuda
def test_chees_with_the_gpu_kernels_equals_the_torch_loop(simulated):
    """ChEES's warm-up through the trajectory kernel and its sampling through whole iterations: the same length,
    draws and accept decisions as the torch loop."""
    assert simulated["chees/fused_launches"] >= 1 and simulated["chees/loop_launches"] == 0
    np.testing.assert_array_equal(simulated["chees/fused_acc"], simulated["chees/loop_acc"])
    for k in ("theta", "scalars"):
        np.testing.assert_allclose(simulated[f"chees/fused_{k}"], simulated[f"chees/loop_{k}"], rtol=1e-9, atol=1e-9)


@needs_numba_cuda
def test_a_kernel_that_cannot_launch_on_a_gpu_hands_over_to_the_slower_path(monkeypatch, caplog):
    """No toolkit to compile with shows at a kernel's first launch: whole iterations hand over to the iteration loop,
    the trajectory kernel to the torch loop, each once and with a warning, and the draws are the torch loop's."""
    from mcmc_landscape.models.energy import mlp_energy_and_grad_torch, mlp_energy_torch

    data, spec = load_dataset("points10"), MLPSpec.from_string("2,2")
    traj = hmc_gpu.mlp_cuda_trajectory_fn(spec, data, mlp_energy_and_grad_torch)
    tried = []

    def cannot_compile(kernel, n_chains, args, device_arrays):
        tried.append(kernel)
        raise RuntimeError("libnvvm not found")

    monkeypatch.setattr(hmc_gpu, "compile_kernel", lambda spec, dtype, kind="trajectory": kind)
    monkeypatch.setattr(hmc_gpu, "_launch", cannot_compile)
    monkeypatch.setattr(hmc_gpu, "_on_gpu", lambda t: True)  # as if the tensors were on a GPU
    eg = _torch_eg(spec, data, torch.float64)
    x, y = torch.tensor(data.x), torch.tensor(data.y)

    def energy(t):
        return mlp_energy_torch(t, spec, x, y)

    settings = hmc.HMCSettings(box=3.0, warmup=30, n_leapfrog=4)
    runs = []
    for t in (traj, None):
        state = hmc.init(energy, 5, spec.n_params, 2, settings, grad_fn=eg)
        state, theta, u, acc = hmc.run_block(energy, state, 0, settings, max_warmup_steps=10, grad_fn=eg,
                                             trajectory_fn=t)
        runs.append(hmc.run_block(energy, state, 8, settings, grad_fn=eg, trajectory_fn=t)[1:])
    assert tried == ["iterations", "trajectory"]
    assert sum("could not run" in r.message for r in caplog.records) == 2
    for got, want in zip(*runs, strict=True):
        np.testing.assert_array_equal(got, want)


@needs_numba_cuda
def test_whole_iterations_in_float32_keep_the_dtype_and_the_box(simulated):
    theta, u, acc = simulated["f32/theta"], simulated["f32/u"], simulated["f32/acc"]
    assert theta.dtype == np.float32 and u.dtype == np.float32 and theta.shape == (4, 10, 18)
    assert np.all(np.abs(theta) <= 3.0) and 0 < acc.mean() <= 1
    assert set(simulated["f32/state_dtypes"]) == {"torch.float32"}
    np.testing.assert_allclose(u[:, -1], simulated["f32/u_check"], rtol=1e-5)  # U stored is U at the stored θ


def test_the_torch_loop_runs_where_the_kernel_cannot(monkeypatch):
    from mcmc_landscape.models.energy import mlp_energy_and_grad_torch
    from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn

    data = load_dataset("points10")
    small = MLPSpec.from_string("2,2")
    assert mlp_torch_trajectory_fn(small, data, "cuda", kind="torch") is None
    big = MLPSpec.from_string("20,20")
    assert big.n_params > hmc_gpu.MAX_PARAMS
    assert hmc_gpu.mlp_cuda_trajectory_fn(big, data, mlp_energy_and_grad_torch) is None
    monkeypatch.setattr(hmc_gpu, "available", lambda: False)
    assert mlp_torch_trajectory_fn(small, data, "cuda") is None
    with pytest.raises(ValueError):
        mlp_torch_trajectory_fn(small, data, "cuda", kind="triton")


def test_generated_kernel_holds_every_parameter_in_its_own_variable():
    """Registers, not arrays: the source names each parameter once per role and indexes no local array."""
    spec = MLPSpec.from_string("2,2")
    src = hmc_gpu.trajectory_source(spec)
    compile(src, "<kernel>", "exec")
    for q in (0, spec.n_params - 1):
        assert f"x{q} = pos[c, {q}]" in src and f"out_g[c, {q}] = g{q}" in src
    assert "local.array" not in src and f"x{spec.n_params} " not in src


def _can_compile_ptx() -> bool:
    if not hmc_gpu.available():
        return False
    try:
        from numba.cuda.cudadrv import nvrtc, nvvm

        return bool(nvvm.is_available() and nvrtc.get_supported_ccs())
    except Exception:  # noqa: BLE001 - any missing piece of the toolkit means: cannot compile here
        return False


@pytest.mark.skipif(not _can_compile_ptx(), reason="NVVM/NVRTC absent (the gpu extra brings them)")
def test_compiled_float32_kernel_keeps_the_chain_in_registers():
    """Where the toolkit is installed: the real compile (sm_90) reads each input once, uses no local memory and no
    float64 arithmetic in float32."""
    import re

    spec = MLPSpec.from_string("2,2")
    ptx = hmc_gpu.kernel_ptx(spec, np.float32)
    assert ".local" not in ptx and ".f64" not in ptx
    assert len(re.findall(r"ld\.global", ptx)) == 4 * spec.n_params + 1 + spec.n_in + 1
    # whole iterations: the chain stays in registers there too (float64 only in the once-an-iteration adaptation)
    assert ".local" not in hmc_gpu.kernel_ptx(spec, np.float32, kind="iterations")


if __name__ == "__main__":
    simulate(sys.argv[1])
