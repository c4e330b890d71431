"""Transforms of the data: spec strings, seeded randomness, and the first layer absorbing every affine map exactly."""

import numpy as np
import pytest

from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.data.transforms import absorb, apply_transforms, parse_transform, unabsorb
from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.energy import mlp_energy_model
from mcmc_landscape.models.nets import MLPSpec

AFFINE = ["rotate:120", "rotate:-33.5", "reflect:x", "reflect:y", "scale:0.5", "scale:-2", "translate:0.2,-0.4",
          "shear:0.3"]


@pytest.mark.parametrize("spec", AFFINE)
@pytest.mark.parametrize("arch,activation", [("2,2", "relu"), ("3", "tanh"), ("4,3", "sigmoid")])
def test_first_layer_absorbs_the_transform_exactly(spec, arch, activation, points10):
    t = parse_transform(spec)
    net = MLPSpec.from_string(arch, activation=activation)
    moved = load_dataset(f"points10|{spec}")
    theta = np.random.default_rng(1).uniform(-3, 3, size=(64, net.n_params))
    theta2 = absorb(theta, net.offsets(), *t.affine())
    u = mlp_energy_model(net, points10).energy(theta)
    np.testing.assert_allclose(mlp_energy_model(net, moved).energy(theta2), u, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(unabsorb(theta2, net.offsets(), *t.affine()), theta, atol=1e-12)
    if t.kind not in ("identity",):
        assert not np.allclose(mlp_energy_model(net, moved).energy(theta), u)  # the data really moved


def test_reflection_maps_the_box_onto_itself_and_rotation_is_an_isometry():
    net = MLPSpec.from_string("2,2")
    theta = np.random.default_rng(2).uniform(-10, 10, size=(500, net.n_params))
    refl = absorb(theta, net.offsets(), *parse_transform("reflect:y").affine())
    np.testing.assert_array_equal(np.sort(np.abs(refl), axis=1), np.sort(np.abs(theta), axis=1))
    rot = absorb(theta, net.offsets(), *parse_transform("rotate:77").affine())
    d0 = np.linalg.norm(theta[:, None] - theta[None], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(rot[:, None] - rot[None], axis=-1), d0, atol=1e-9)
    assert np.any(np.abs(rot) > 10)  # the rotated box is not the box: the cut the experiment reports


def test_specs_round_trip_and_rotation_matches_the_angle_path(points10):
    for spec in [*AFFINE, "identity", "permute-labels", "permute-labels@4", "noise:0.05", "noise:0.1@3"]:
        t = parse_transform(spec)
        assert parse_transform(t.spec) == t
    np.testing.assert_array_equal(load_dataset("points10|rotate:120").x, load_dataset("points10", 120).x)
    x, y = apply_transforms(points10.x, points10.y, ["reflect:x", "translate:1,0"])
    np.testing.assert_allclose(x, points10.x * [1, -1] + [1, 0])
    np.testing.assert_array_equal(y, points10.y)
    for bad in ["spin:3", "rotate", "rotate:a", "reflect:z", "scale:0", "translate:1", "noise:-1", "rotate:3@2",
                "permute-labels:2"]:
        with pytest.raises(SpecError):
            parse_transform(bad)


def test_random_transforms_are_seeded_and_not_symmetries(points10):
    x, y = points10.x, points10.y
    a = parse_transform("permute-labels").apply(x, y)
    np.testing.assert_array_equal(a[1], parse_transform("permute-labels@0").apply(x, y)[1])
    assert np.bincount(a[1]).tolist() == np.bincount(y).tolist() and not np.array_equal(a[1], y)
    np.testing.assert_array_equal(a[0], x)
    n1, n2 = parse_transform("noise:0.05").apply(x, y), parse_transform("noise:0.05@1").apply(x, y)
    assert not np.array_equal(n1[0], n2[0])
    np.testing.assert_array_equal(n1[0], parse_transform("noise:0.05").apply(x, y)[0])
    assert 0.01 < np.std(n1[0] - x) < 0.1
    for spec in ("permute-labels", "noise:0.05"):
        t = parse_transform(spec)
        assert not t.predicted_same() and not t.is_affine
        with pytest.raises(SpecError):
            t.affine()
