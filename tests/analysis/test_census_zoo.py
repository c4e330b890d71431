"""Issue 22, item 5: the census of a zoo model's run; and the convnet's symmetry orbit, which the kind of a minimum
subtracts: U does not change along any of its tangent vectors (∇U·t = 0 at every θ)."""

import numpy as np
import torch
from chain_copies import rewrite_draws
from image_files import write_mnist

from mcmc_landscape.models.zoo import FlatLayout, build_model, module_energy, prepare_images
from mcmc_landscape.models.zoo_symmetry import zoo_orbit_tangent


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
    """Quench, identity on the probe batch, completeness, and the lowest minimum's kind by Lanczos with its trace and
    its SLQ log-determinant (loose Lanczos settings: at p ≈ 6,000 the defaults cost minutes; bench/census.py
    --model small-convnet times them)."""
    from analysis.census_zoo import run_zoo_census
    from landscape_cli.main import main

    write_mnist(tmp_path / "data", n_train=8, n_test=2)
    chains = tmp_path / "z.h5"
    assert main(["-q", "sample", "--model", "small-convnet", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--n-train", "8", "--sampler", "rw", "--chains", "2", "--draws", "2", "--warmup", "4",
                 "--out", str(chains)]) == 0
    c = run_zoo_census(chains, tmp_path / "census", count=4, tol=1e-3, max_iter=60, probe=8,
                       kind_minima=1, lanczos_k=2, lanczos_tol=1e-2, device="cpu")
    assert c["n_quenched"] == 4 and sum(m["members"] for m in c["minima"]) == c["n_converged"]
    assert c["n_distinct"] <= c["n_converged"]
    assert c["completeness"]["chao1"]["s_obs"] == c["n_distinct"]
    shape = c["minima"][0]["shape"]
    assert shape["orbit_dim"] == 8 + 16 + 256 + 1 and shape["top"] > 0 and shape["logdet_method"] == "slq"
    assert np.isfinite(shape["logdet_nonnull"]) and shape["logdet_stderr"] >= 0
    report = (tmp_path / "census" / "REPORT.md").read_text()
    assert c["minima"][0]["kind"] in report and (tmp_path / "census" / "flatness.png").is_file()


def _channel_group(cfg, flat, rng):
    """Each draw of a zoo run acted on by its own channel permutation and rescaling."""
    from mcmc_landscape.models.zoo_symmetry import random_channel_symmetry

    torch.manual_seed(0)
    layout = FlatLayout.of(build_model(cfg["model"], **cfg["model_options"]))
    return random_channel_symmetry(cfg["model"], layout, flat, rng)


def test_zoo_census_is_unchanged_when_the_draws_are_relabelled_or_shuffled(tmp_path):
    """Issue 22 for a convnet: each draw quenched from its orbit's canonical point, so a copy whose draws carry random
    channel permutations and rescalings (factors up to 2), or whose draws are shuffled, gives the same quench end
    energies draw by draw (as a multiset for the shuffle), the same count and the same frequencies."""
    from analysis.census_zoo import run_zoo_census
    from landscape_cli.main import main

    write_mnist(tmp_path / "data", n_train=8, n_test=2)
    chains = tmp_path / "z.h5"
    assert main(["-q", "sample", "--model", "small-convnet", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                 "--n-train", "8", "--sampler", "rw", "--chains", "2", "--draws", "4", "--warmup", "4",
                 "--dtype", "float64", "--theta-dtype", "float64", "--out", str(chains)]) == 0
    censuses = {}
    for how in ("none", "group", "shuffle"):
        src = chains if how == "none" else tmp_path / f"{how}.h5"
        if how != "none":
            assert rewrite_draws(chains, src, 0, _channel_group if how == "group" else None) > 0
        censuses[how] = run_zoo_census(src, tmp_path / f"census_{how}", count=8, tol=1e-3, max_iter=60, probe=8,
                                       kind_minima=0, device="cpu")
    base, group, shuffled = censuses["none"], censuses["group"], censuses["shuffle"]
    assert base["n_quenched"] == 8 and base["starts_clipped"] == 0
    np.testing.assert_allclose(group["quench_energy"], base["quench_energy"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(sorted(shuffled["quench_energy"]), sorted(base["quench_energy"]), rtol=1e-12, atol=0)
    for other in (group, shuffled):
        assert other["n_distinct"] == base["n_distinct"]
        assert sorted(m["members"] for m in other["minima"]) == sorted(m["members"] for m in base["minima"])
