"""``landscape experiment`` at a tiny size: every stage written, the right test per transform, exact box properties."""

import json

import numpy as np
import pytest

from landscape_cli.main import main
from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.storage.store import ChainReader

TINY_TOML = """chains = 4
draws = 200
warmup = 200
thin = 2
temps = 3
threshold = 1.0
n_boot = 10
n_boot_kernel = 1
n_test = 60
n_perm = 30
max_draws = 800
control = false
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exp")
    (folder / "tiny.toml").write_text(TINY_TOML)
    out = folder / "out"
    rc = main(["experiment", "-q", "--out", str(out), "--config", str(folder / "tiny.toml"), "-t", "reflect:x",
               "-t", "scale:0.5", "-t", "noise:0.05"])
    assert rc == 0
    return out, json.loads((out / "results.json").read_text())


def test_every_run_is_written_with_the_transformed_data(tiny):
    out, result = tiny
    assert list(result["runs"]) == ["identity", "reflect_x", "scale_0.5", "noise_0.05", "scale_0.5_transported_box"]
    # the transported box: the reference data sampled under Φ⁻¹(B), tested against the scaled run carried back
    from mcmc_landscape.samplers.region import region_matrix

    with ChainReader(out / "scale_0.5_transported_box" / "chains.h5") as r:
        assert r.config["box_transform"] == "scale:0.5" and r.config["data"] == "points10"
        theta = r.get_chain(flat=True)
        M = region_matrix("scale:0.5", MLPSpec.from_widths(r.config["widths"]).offsets(), 2)
    assert np.abs(theta @ M.T).max() <= 10.0 and np.abs(theta).max() <= 10.0
    assert "transported" in result["comparison"]["tests"]["scale_0.5_transported_box"]
    for name, spec in (("identity", "points10"), ("reflect_x", "points10|reflect:x"), ("scale_0.5", "points10|scale:0.5"),
                       ("noise_0.05", "points10|noise:0.05@0")):
        assert (out / name / "data.png").exists() and (out / name / "analysis" / "summary.json").exists()
        with ChainReader(out / name / "chains.h5") as r:
            np.testing.assert_array_equal(r.extra("data/x"), load_dataset(spec).x)
            assert r.config["sampler"] == "pt" and r.state()["temperatures"].shape == (3,)
        d = result["runs"][name]["diagnosis"]
        assert "modulo the network's symmetries" in d["verdict"] and "raw_coordinates" in d
    report = (out / "REPORT.md").read_text()
    assert "| run | transform | test | prediction | p (Holm)" in report and "figures.png" in report
    assert (out / "figures.png").exists()
    for name, spec in (("reflect_x", "reflect:x"), ("scale_0.5", "scale:0.5"), ("noise_0.05", "noise:0.05@0")):
        assert f"| {name} | {spec} |" in report


def test_each_transform_gets_its_test_and_the_box_cuts_what_theory_says(tiny):
    _, result = tiny
    tests = result["comparison"]["tests"]
    assert set(tests["reflect_x"]) == {"mapped", "unmapped", "box_cut_share", "weight_space"}
    assert set(tests["noise_0.05"]) == {"direct", "weight_space"}
    # a reflection maps the box onto itself: nothing is cut, on either side; halving the inputs doubles W1's range
    assert tests["reflect_x"]["box_cut_share"]["all"] == {"reference": 0.0, "run": 0.0}
    assert tests["scale_0.5"]["box_cut_share"]["all"]["reference"] > 0.2
    assert all(0 < t["p_value"] <= 1 for t in tests["reflect_x"]["mapped"].values() if t)


def test_a_bad_transform_is_one_sentence_and_exit_2(tmp_path, capsys):
    assert main(["experiment", "--out", str(tmp_path / "x"), "-t", "spin:3"]) == 2
    err = capsys.readouterr().err
    assert "transform 'spin:3' is not known" in err and "Traceback" not in err


def test_units_per_chain_cut_each_chain_into_consecutive_blocks(tmp_path):
    """The energy test's exchangeable units: whole chains by default, or consecutive blocks of each chain."""
    from analysis.experiment import _load
    from mcmc_landscape.storage.store import ChainWriter

    rng = np.random.default_rng(0)
    theta = rng.normal(size=(3, 10, 2))
    with ChainWriter.create(tmp_path / "c.h5", "r", {}, 3, 2, {"iteration": np.int64(0)},
                            extra={"data/y": np.arange(5)}) as w:
        w.append(theta, np.arange(30.0).reshape(3, 10), np.ones((3, 10), bool), {"iteration": np.int64(1)})
    th, loss, chain = _load(tmp_path / "c.h5")
    np.testing.assert_array_equal(th, theta.reshape(-1, 2))
    np.testing.assert_array_equal(loss, np.arange(30.0) / 5)
    np.testing.assert_array_equal(chain, np.repeat([0, 1, 2], 10))
    _, _, unit = _load(tmp_path / "c.h5", units_per_chain=4)
    assert len(np.unique(unit)) == 12
    for c in range(3):  # each chain's draws fall in its own 4 units, in order, as equal as 10 draws allow
        mine = unit[c * 10 : (c + 1) * 10]
        assert set(mine) == set(range(4 * c, 4 * c + 4)) and np.all(np.diff(mine) >= 0)
        assert np.bincount(mine - 4 * c).max() - np.bincount(mine - 4 * c).min() <= 1
