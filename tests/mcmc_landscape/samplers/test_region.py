"""The sampled region: a parallelepiped {θ : |M θ|_∞ ≤ L} in place of the box, for the transported-box runs."""

import numpy as np

from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.models.energy import mlp_energy_model
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.samplers import rw, tempering
from mcmc_landscape.samplers.region import region_matrix

SPEC = MLPSpec((2, 2), 2, 2, "relu")


def _draws(module, settings, seed=3):
    model = mlp_energy_model(SPEC, load_dataset("points10"))
    state = module.init(model, 4, seed, settings)
    return module.run_block(model, state, 200, settings)[1]


def test_the_identity_region_is_the_box_bit_for_bit():
    for module, settings in ((rw, rw.RWSettings(warmup=100, thin=3)),
                             (tempering, tempering.PTSettings(warmup=100, thin=3, n_temps=3))):
        plain = _draws(module, settings)
        boxed = _draws(module, settings._replace(region=np.eye(SPEC.n_params)))
        np.testing.assert_array_equal(plain, boxed)


def test_draws_stay_in_the_parallelepiped_and_use_it():
    M = region_matrix("shear:0.8", SPEC.offsets(), 2)
    for module, settings in ((rw, rw.RWSettings(warmup=200, thin=5, box=3.0)),
                             (tempering, tempering.PTSettings(warmup=200, thin=5, n_temps=3, box=3.0))):
        theta = _draws(module, settings._replace(region=M)).reshape(-1, SPEC.n_params)
        assert np.abs(theta @ M.T).max() <= 3.0
        assert np.abs(theta).max() > 3.0  # the sheared region reaches outside the plain box, and the walk goes there


def test_a_box_transform_without_a_parameter_map_is_one_sentence(tmp_path, capsys):
    from landscape_cli.main import main

    out = tmp_path / "x.h5"
    assert main(["sample", "--sampler", "pt", "--box-transform", "noise:0.1", "--chains", "2", "--draws", "5",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--box-transform noise:0.1" in err[0] and not out.exists()
