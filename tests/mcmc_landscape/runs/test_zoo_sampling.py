"""Sampling zoo models: the batched torch random walk on a known target, block and resume invariance, and
``landscape sample --model mnist-convnet`` end to end on small MNIST-format files (p = 206,954 at width 0.25)."""

import h5py
import numpy as np
import pytest
import torch
from image_files import write_mnist

from landscape_cli.main import main
from mcmc_landscape.models.zoo import FlatLayout, MNISTConvNet, prepare_images
from mcmc_landscape.samplers import rw, rw_torch
from mcmc_landscape.storage.store import ChainReader


def gaussian(theta):
    return 0.5 * (theta * theta).sum(dim=1)


def start_uniform(n, seed):
    return torch.rand(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) - 0.5


def test_torch_random_walk_recovers_a_standard_normal():
    s = rw.RWSettings(temperature=1.0, box=10.0, warmup=2000, thin=2)
    k = rw_torch.TorchRWKernel(gaussian, s, start_uniform)
    state = k.init(256, seed=3)
    state, theta, energy, acc = k.run_block(state, 0)
    state, theta, energy, acc = k.run_block(state, 1500)
    x = theta.reshape(-1, 2)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.03)
    np.testing.assert_allclose(x.var(axis=0), 1.0, atol=0.05)
    np.testing.assert_allclose(energy, 0.5 * (theta**2).sum(-1))
    assert abs(acc.mean() - 0.234) < 0.03  # dual averaging reached its target
    assert int(state.n_nonfinite.sum()) == 0


def test_torch_random_walk_respects_the_box_and_counts_nonfinite():
    def holey(theta):  # NaN where θ0 > 0.5: such proposals are rejected and counted
        u = 0.5 * (theta * theta).sum(dim=1)
        return torch.where(theta[:, 0] > 0.5, torch.full_like(u, float("nan")), u)

    s = rw.RWSettings(box=1.0, warmup=50, initial_step=0.5)
    k = rw_torch.TorchRWKernel(holey, s, start_uniform)
    state = k.init(32, seed=0)
    state, theta, _, _ = k.run_block(state, 300, max_warmup_steps=50)
    state, theta, _, _ = k.run_block(state, 300)
    assert np.abs(theta).max() <= 1.0 and theta[..., 0].max() <= 0.5
    assert int(state.n_nonfinite.sum()) > 0


def test_torch_random_walk_blocks_and_saved_state_do_not_change_the_draws():
    s = rw.RWSettings(warmup=250, thin=3)  # the dual-averaging restart (warm-up ≥ 200) falls inside a block
    k = rw_torch.TorchRWKernel(gaussian, s, start_uniform)
    whole = k.init(8, seed=1)
    whole, _, _, _ = k.run_block(whole, 0)
    whole, theta_a, energy_a, acc_a = k.run_block(whole, 40)
    parts, thetas = k.init(8, seed=1), []
    for warm in (100, 60, 90):
        parts, _, _, _ = k.run_block(k.state_from_arrays(k.state_arrays(parts)), 0, max_warmup_steps=warm)
    for n in (15, 25):
        parts, t, _, _ = k.run_block(k.state_from_arrays(k.state_arrays(parts)), n)
        thetas.append(t)
    np.testing.assert_array_equal(np.concatenate(thetas, axis=1), theta_a)
    np.testing.assert_array_equal(parts.log_step.numpy(), whole.log_step.numpy())


ZOO = ["--model", "mnist-convnet", "--width", "0.25", "--n-train", "6", "--chains", "2", "--warmup", "4",
       "--device", "cpu"]


def sample(tmp_path, *args):
    return main(["-q", "sample", *ZOO, "--data-dir", str(tmp_path / "data"), *args])


@pytest.fixture
def mnist_dir(tmp_path):
    write_mnist(tmp_path / "data", n_train=20, n_test=5)
    return tmp_path


def read(path):
    with h5py.File(path, "r") as f:
        g = f[list(f.keys())[0]]
        return g["theta"][()], g["energy"][()], g["accepted"][()]


@pytest.mark.parametrize("sampler", [["--sampler", "rw"], ["--sampler", "hmc", "--leapfrog", "1"]])
def test_convnet_run_resumes_bit_identically_and_stores_the_right_energy(mnist_dir, sampler):
    ref, cut = mnist_dir / "ref.h5", mnist_dir / "cut.h5"
    assert sample(mnist_dir, *sampler, "--draws", "6", "--out", str(ref)) == 0
    assert sample(mnist_dir, *sampler, "--draws", "3", "--out", str(cut)) == 0
    # resumed without the data folder: the images travel with the run
    assert main(["-q", "sample", "--resume", str(cut), "--draws", "6", "--device", "cpu"]) == 0
    for a, b in zip(read(ref), read(cut), strict=True):
        np.testing.assert_array_equal(a, b)
    with ChainReader(ref) as r:
        cfg, theta, energy = r.config, r.get_chain(), r.get_energy()
        x, y = r.extra("data/x"), r.extra("data/y")
    assert cfg["n_params"] == theta.shape[2] == 206_954 and theta.dtype == np.float32
    assert cfg["dtype"] == "float64" and x.dtype == np.uint8 and len(y) == 6
    # U recomputed by a plain nn.Module from the stored θ (float64 state, rounded to float32 on disk)
    net = MNISTConvNet(width=0.25).double()
    layout = FlatLayout.of(net)
    with torch.no_grad():
        for c, d in ((0, 0), (1, 5)):
            params = layout.unflatten(torch.as_tensor(theta[c, d], dtype=torch.float64))
            logits = torch.func.functional_call(net, params, (prepare_images(x).double(),))
            u = torch.nn.functional.cross_entropy(logits, torch.as_tensor(y), reduction="sum").item()
            assert u == pytest.approx(energy[c, d], rel=1e-4)


@pytest.mark.parametrize("args,match", [
    (["--arch", "2,2"], "--arch describes an MLP"),
    (["--sampler", "emcee"], "cannot sample a zoo model"),
    (["--n-train", "500"], "more than the 20 training images"),
    (["--data", "points10"], "not a data set for zoo models"),
])
def test_zoo_settings_errors_are_one_sentence(mnist_dir, capsys, args, match):
    assert sample(mnist_dir, *args, "--out", str(mnist_dir / "x.h5")) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and not (mnist_dir / "x.h5").exists()


def test_width_without_model_is_refused(tmp_path, capsys):
    assert main(["-q", "sample", "--width", "0.5", "--out", str(tmp_path / "x.h5")]) == 2
    assert "--width applies to zoo models only" in capsys.readouterr().err


@pytest.fixture(scope="module")
def convnet_file(tmp_path_factory):
    """A stored convnet run (p = 206,954, θ in float32): 2 chains × 12 kept draws, thinned by 2."""
    tmp = tmp_path_factory.mktemp("convnet")
    write_mnist(tmp / "data", n_train=20, n_test=5)
    path = tmp / "convnet.h5"
    assert sample(tmp, "--sampler", "rw", "--draws", "12", "--thin", "2", "--out", str(path)) == 0
    return path


def test_analysis_of_a_wide_run_reads_bounded_blocks_and_agrees_with_reading_it_whole(convnet_file, monkeypatch):
    from analysis.pipeline import AnalysisSettings, analyze_file

    with ChainReader(convnet_file) as r:
        loss = r.get_energy() / 6
    threshold = float(np.median(loss)) + 1e-9
    base = dict(threshold=threshold, n_boot=20, n_boot_kernel=1)
    whole, arrays_whole = analyze_file(str(convnet_file), AnalysisSettings(**base, memory_budget_mb=4096))
    reads = []
    original = ChainReader.read_block

    def spy(self, name, start, stop):
        block = original(self, name, start, stop)
        reads.append(block.nbytes if name == "theta" else 0)
        return block

    monkeypatch.setattr(ChainReader, "read_block", spy)
    budget_mb = 8.0  # a quarter of it holds one draw of both chains (1.66 MB), not the run (40 MB)
    streamed, arrays = analyze_file(str(convnet_file), AnalysisSettings(**base, memory_budget_mb=budget_mb))
    assert 0 < max(reads) <= budget_mb * 2**20 / 4
    assert "raw" in arrays and "canonical" not in arrays and "MLPs" in streamed["canonicalization"]
    assert streamed["n_selected"] == 24 and streamed["raw"]["n_good"] == whole["raw"]["n_good"] >= 4
    np.testing.assert_allclose(arrays["raw"]["embedding"], arrays_whole["raw"]["embedding"], rtol=1e-6, atol=1e-9)
    assert streamed["raw"]["plane"]["explained_variance_ratio"] == pytest.approx(
        whole["raw"]["plane"]["explained_variance_ratio"])
    assert streamed["raw"]["parameter_space"]["p"] == 206_954


def test_analyze_cli_writes_the_figures_for_a_convnet_run(convnet_file, tmp_path, capsys):
    with ChainReader(convnet_file) as r:
        threshold = float(np.median(r.get_energy() / 6)) + 1e-9
    out = tmp_path / "an"
    assert main(["-q", "analyze", str(convnet_file), "--out", str(out), "--threshold", repr(threshold),
                 "--bootstrap", "20", "--memory-mb", "64"]) == 0
    assert "[raw]" in capsys.readouterr().out
    for name in ("embedding_3d_raw.png", "good_minima_2d_raw.png", "summary.json", "coords_raw.npz"):
        assert (out / name).stat().st_size > 0


@pytest.mark.parametrize("sampler", ["hmc", "rw"])
def test_zoo_runs_default_to_float32_on_a_gpu_and_float64_on_the_cpu(mnist_dir, monkeypatch, sampler):
    # was: the MLP HMC's float64 default reached zoo runs, so `--model ... --sampler hmc --device cuda` ran in float64
    from mcmc_landscape.runs import sampling, zoo_sampling
    from mcmc_landscape.samplers import hmc

    seen = {}

    def no_kernel(cfg, x, y, device):
        seen["dtype"] = cfg.dtype
        raise RuntimeError("stop before building the kernel")

    monkeypatch.setattr(zoo_sampling, "make_zoo_kernel", no_kernel)
    explicit = {"model": "mnist-convnet", "width": 0.25, "n_train": 6, "sampler": sampler}
    for device, given, want in (("cuda", None, "float32"), ("cpu", None, "float64"), ("cuda", "float64", "float64")):
        monkeypatch.setattr(hmc, "resolve_device", lambda d, dev=device: torch.device(dev))
        with pytest.raises(RuntimeError, match="stop before"):
            sampling.new_config({**explicit, **({"dtype": given} if given else {})}, device, mnist_dir / "data")
        assert seen["dtype"] == want, (sampler, device, given)
