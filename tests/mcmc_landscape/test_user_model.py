"""Bring your own model: a factory and an npz drive sample, export and dss like a zoo model; bad input is one
sentence and exit 2."""

import json

import numpy as np
import pytest
import torch
from paths import ROOT

from landscape_cli.main import main
from mcmc_landscape.errors import LandscapeError
from mcmc_landscape.models.zoo import FlatLayout
from mcmc_landscape.storage.store import ChainReader
from mcmc_landscape.user_model import load_npz, load_user_model, stored_module_layout

TINY = str(ROOT / "examples" / "tiny.npz")
MODEL = "examples.tiny_model:make"


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("landscape: error:") and "Traceback" not in err[0], err
    return err[0]


def test_sampling_a_user_model_stores_its_energy_and_exports_its_names(tmp_path, capsys):
    out = tmp_path / "u.h5"
    assert main(["-q", "sample", "--model", MODEL, "--data", TINY, "--chains", "2", "--draws", "30", "--warmup", "20",
                 "--out", str(out), "--device", "cpu"]) == 0
    module, ds = load_user_model(MODEL, TINY)
    with ChainReader(out) as r:
        theta, energy = r.get_chain(), r.get_energy()
        assert r.config["model"] == MODEL and r.config["model_options"] == {"n_classes": 3}
        names = list(r.to_inference_data(module_layout=stored_module_layout).posterior.param.values)
    assert theta.shape == (2, 30, 39)
    # U at a stored draw is the plain module's summed cross-entropy there
    module = module.double()
    params = FlatLayout.of(module).unflatten(torch.from_numpy(theta[1, -1]))
    logits = torch.func.functional_call(module, params, (torch.from_numpy(ds.x),))
    u = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ds.y), reduction="sum").item()
    assert energy[1, -1] == pytest.approx(u, rel=1e-10)
    assert names[:2] == ["0.weight[0,0]", "0.weight[0,1]"] and names[-1] == "2.bias[2]"
    # the census of the user model's run: quenched, counted by its losses on the data, kinds by Lanczos
    census = tmp_path / "census"
    assert main(["-q", "census", str(out), "--out", str(census), "--count", "6", "--device", "cpu"]) == 0
    c = json.loads((census / "census.json").read_text())
    assert c["n_quenched"] == 6 and 1 <= c["n_distinct"] <= 6 and (census / "REPORT.md").exists()
    assert sum(m["members"] for m in c["minima"]) <= 6 and "kind" in c["minima"][0]


def test_dss_connects_two_user_models(tmp_path, capsys):
    out = tmp_path / "s.h5"
    assert main(["-q", "dss", "connect", "--model", MODEL, "--data", TINY, "--l0", "0.2", "--endpoint-steps", "2000",
                 "--device", "cpu", "--out", str(out), "--no-plots"]) == 0
    assert "connected at L0 = 0.2" in capsys.readouterr().out and out.is_file()


def test_bad_factory_data_and_shapes_are_one_sentence(tmp_path, capsys):
    (tmp_path / "bad.py").write_text("from torch import nn\n\ndef two():\n    return nn.Linear(2, 2)\n\n"
                                     "def nothing():\n    return 3\n")
    no_y = tmp_path / "no_y.npz"
    np.savez(no_y, x=np.zeros((4, 2)))
    base = ["sample", "--chains", "2", "--draws", "10", "--out", str(tmp_path / "o.h5"), "--device", "cpu"]
    cases = [
        (["--model", "no_such_package.mod:make", "--data", TINY], "cannot import"),
        (["--model", f"{tmp_path / 'bad.py'}:two", "--data", TINY], "logits of shape (2, 3)"),
        (["--model", f"{tmp_path / 'bad.py'}:nothing", "--data", TINY], "not a torch.nn.Module"),
        (["--model", f"{tmp_path / 'bad.py'}:absent", "--data", TINY], "no callable"),
        (["--model", MODEL, "--data", str(no_y)], "has no array 'y'"),
        (["--model", MODEL], "needs --data"),
    ]
    for extra, words in cases:
        assert main(base + extra) == 2
        assert words in _one_error(capsys)
    assert not (tmp_path / "o.h5").exists()
    assert main(["dss", "connect", "--model", "nope:make", "--data", TINY, "--l0", "0.3", "--out",
                 str(tmp_path / "d.h5")]) == 2
    assert "cannot import" in _one_error(capsys)


def test_npz_checks(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0, 1]))
    with pytest.raises(LandscapeError, match="same n"):
        load_npz(path)
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0, 1, 2]), x_test=np.zeros((2, 2)))
    with pytest.raises(LandscapeError, match="only one of x_test and y_test"):
        load_npz(path)
    np.savez(path, x=np.zeros((3, 2)), y=np.array([0.0, 1.0, 4.0]))
    assert load_npz(path).n_classes == 5 and load_npz(path).y.dtype == np.int64
