"""ArviZ interop: a chain file as an InferenceData (netCDF, zarr, in memory) that ArviZ's own R-hat and ESS read as
`landscape diagnose` does, with θ streamed in bounded blocks."""

import json
import warnings

import h5py
import numpy as np
import pytest

from landscape_cli.main import main
from mcmc_landscape.diagnostics import _arviz
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.runs.sampling import start_run
from mcmc_landscape.storage.inference_data import export_netcdf, parameter_names
from mcmc_landscape.storage.store import ChainReader


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    path = tmp_path_factory.mktemp("idata") / "c.h5"
    start_run({"chains": 4, "draws": 120, "warmup": 100, "seed": 5, "temperature": 2.0}, path, device="cpu").run(
        quiet=True)
    return path


def _from_netcdf(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _arviz().from_netcdf(path)


def test_round_trip_gives_diagnoses_numbers(chains, tmp_path, capsys):
    out = tmp_path / "c.nc"
    assert main(["export", str(chains), "--to", "netcdf", str(out), "--discard", "20"]) == 0
    assert main(["diagnose", str(chains), "--json", "--no-plots", "--discard", "20"]) == 0
    diag = json.loads(capsys.readouterr().out.split("\n", 1)[1])  # after export's one line
    az = _arviz()
    idata = _from_netcdf(out)
    assert idata.posterior.theta.dims == ("chain", "draw", "param") and idata.posterior.theta.shape == (4, 100, 18)
    rhat = az.rhat(idata, method="rank").theta.values
    ess_bulk = az.ess(idata, method="bulk").theta.values
    ess_tail = az.ess(idata, method="tail").theta.values
    np.testing.assert_allclose(rhat, diag["per_coordinate"]["rhat"], rtol=1e-12)
    np.testing.assert_allclose(ess_bulk, diag["per_coordinate"]["ess_bulk"], rtol=1e-12)
    np.testing.assert_allclose(ess_tail, diag["per_coordinate"]["ess_tail"], rtol=1e-12)
    energy = idata.sample_stats.energy.values
    assert az.rhat(energy, method="rank") == pytest.approx(diag["energy"]["rhat"], rel=1e-12)
    np.testing.assert_allclose(idata.sample_stats.lp.values, -energy / 2.0)
    assert json.loads(idata.attrs["config"])["temperature"] == 2.0
    assert idata.sample_stats.accepted.dtype == bool
    assert idata.sample_stats.accepted.values.mean() == pytest.approx(diag["acceptance_mean"])
    assert list(idata.posterior.draw.values) == list(range(20, 120))


def test_in_memory_equals_the_file(chains, tmp_path):
    out = export_netcdf(ChainReader(chains), tmp_path / "a.nc", thin=3)
    with ChainReader(chains) as r:
        mem = r.to_inference_data(thin=3)
        theta = r.get_chain(thin=3)
        x, y = r.extra("data/x"), r.extra("data/y")
    disk = _from_netcdf(out)
    np.testing.assert_array_equal(mem.posterior.theta.values, theta)
    np.testing.assert_array_equal(disk.posterior.theta.values, theta)
    assert list(disk.posterior.param.values) == list(mem.posterior.param.values)
    for name in ("energy", "lp", "accepted", "step_size"):
        np.testing.assert_array_equal(disk.sample_stats[name].values, mem.sample_stats[name].values)
    np.testing.assert_array_equal(disk.observed_data.x.values, x)
    np.testing.assert_array_equal(disk.observed_data.y.values, y)


def test_parameter_names_follow_the_flat_layout():
    spec = MLPSpec((3, 2), n_in=2, n_out=2)
    names = parameter_names({"widths": list(spec.widths)}, spec.n_params)
    all_names = names(0, spec.n_params)
    assert len(set(all_names)) == spec.n_params and names(5, 9) == all_names[5:9]
    theta = np.arange(spec.n_params, dtype=float)
    layers = spec.unflatten(theta)
    assert theta[all_names.index("W2[2,1]")] == layers[1][0][2, 1]
    assert theta[all_names.index("b3[1]")] == layers[2][1][1]


def test_theta_is_read_in_blocks_under_the_budget(chains, tmp_path, monkeypatch):
    budget = 4 * 18 * 8 * 3 - 1  # less than 3 draws of all chains: blocks of a few draws and chains
    sizes = []
    real = h5py.Dataset.__getitem__

    def spy(self, key):
        arr = real(self, key)
        if self.name.endswith("/theta"):
            sizes.append(np.asarray(arr).nbytes)
        return arr

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    out = export_netcdf(ChainReader(chains), tmp_path / "b.nc", block_bytes=budget)
    monkeypatch.undo()
    assert len(sizes) > 10 and max(sizes) <= budget
    with ChainReader(chains) as r:
        np.testing.assert_array_equal(_from_netcdf(out).posterior.theta.values, r.get_chain())


def test_zarr_round_trip(chains, tmp_path):
    pytest.importorskip("zarr")
    import xarray as xr

    out = tmp_path / "c.zarr"
    assert main(["-q", "export", str(chains), "--to", "zarr", str(out)]) == 0
    idata = _arviz().InferenceData.from_datatree(xr.open_datatree(out, engine="zarr"))
    with ChainReader(chains) as r:
        np.testing.assert_array_equal(idata.posterior.theta.values, r.get_chain())
        np.testing.assert_array_equal(idata.sample_stats.energy.values, r.get_energy())
    assert str(idata.posterior.param.values[0]) == "W1[0,0]"


def test_replica_exchange_exports_its_swap_rates(tmp_path):
    path = tmp_path / "pt.h5"
    start_run({"sampler": "pt", "chains": 2, "draws": 20, "warmup": 20, "temps": 3}, path, device="cpu").run(
        quiet=True)
    with ChainReader(path) as r:
        idata = r.to_inference_data()
        state = r.state()
    rates = idata.sample_stats.swap_accept_rate
    assert rates.dims == ("chain", "rung_pair") and rates.shape == (2, 2)
    np.testing.assert_allclose(rates.values, state["swap_accepted"] / state["swap_tried"])
    np.testing.assert_allclose(idata.sample_stats.step_size.values[:, 0], np.exp(state["log_step"][:, 0]))
    assert len(idata.sample_stats.attrs["temperatures"]) == 3


def test_bad_input_is_one_sentence_and_exit_2(chains, tmp_path, capsys):
    out = tmp_path / "x.nc"
    out.write_text("keep me")
    assert main(["export", str(chains), "--to", "netcdf", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "--force" in err and len(err.splitlines()) == 1
    assert out.read_text() == "keep me"
    assert main(["-q", "export", str(chains), "--to", "netcdf", str(out), "--force"]) == 0
    assert _from_netcdf(out).posterior.theta.shape == (4, 120, 18)
    assert main(["export", str(tmp_path / "missing.h5"), "--to", "netcdf", str(tmp_path / "y.nc")]) == 2
    assert main(["export", str(chains), "--to", "netcdf", str(tmp_path / "z.nc"), "--discard", "500"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("landscape: error:") for e in err)
    assert not (tmp_path / "z.nc").exists() and not (tmp_path / "z.nc.partial").exists()
