import json

import h5py
import numpy as np
import pytest
from cli_helpers import assert_one_sentence_error, run_cli

from mcmc_landscape.storage.store import ChainReader

SMALL = ["--chains", "4", "--draws", "300", "--warmup", "200"]


@pytest.mark.parametrize("args,match", [
    (["--arch", "2,,x"], "architecture"),
    (["--arch", "2,0"], "width 0"),
    (["--chains", "0"], "--chains"),
    (["--chains", "-3"], "--chains"),
    (["--draws", "0"], "--draws"),
    (["--draws", "ten"], "--draws"),
    (["--thin", "0"], "--thin"),
    (["--temperature", "-1"], "--temperature"),
    (["--box", "nan"], "--box"),
    (["--target-accept", "1.5"], "target"),
    (["--activation", "softsign"], "--activation"),
])
def test_bad_settings_one_sentence_exit_2(tmp_path, capsys, args, match):
    out = tmp_path / "x.h5"
    code, _, err = run_cli(capsys, "sample", *SMALL, *args, "--out", str(out))
    assert_one_sentence_error(code, err)
    assert match.split("|")[0] in err or match in err
    assert not out.exists()


@pytest.mark.parametrize("content,match", [
    ("x1,x2,label\n0.1,nan,0\n0.3,0.4,1\n", "NaN"),
    ("x1,x2,label\n0.1,0.2\n0.3,0.4,1\n", "CSV|shape"),
    ("label\n0\n1\n", "shape"),
])
def test_bad_data_files(tmp_path, capsys, content, match):
    data = tmp_path / "d.csv"
    data.write_text(content)
    code, _, err = run_cli(capsys, "sample", *SMALL, "--data", str(data), "--out", str(tmp_path / "x.h5"))
    assert_one_sentence_error(code, err)
    assert any(m in err for m in match.split("|")), err
    assert not (tmp_path / "x.h5").exists()


def test_sample_writes_self_describing_file_and_refuses_overwrite(tmp_path, capsys):
    out = tmp_path / "run.h5"
    code, _, err = run_cli(capsys, "sample", *SMALL, "--seed", "3", "--out", str(out))
    assert code == 0, err
    with ChainReader(out) as r:
        assert r.committed_draws == 300
        cfg = r.config
        assert cfg["arch"] == "2,2" and cfg["n_params"] == 18 and cfg["seed"] == 3 and cfg["chains"] == 4
        assert r.attrs["package_version"] and r.attrs["created"]
        theta = r.get_chain()
        assert theta.shape == (4, 300, 18) and np.all(np.abs(theta) <= 10)
        np.testing.assert_array_equal(r.extra("data/y"), [0, 0, 0, 1, 0, 1, 1, 0, 1, 1])
    before = out.read_bytes()
    code, _, err = run_cli(capsys, "sample", *SMALL, "--out", str(out))
    assert_one_sentence_error(code, err)
    assert "--force" in err and out.read_bytes() == before
    code, _, err = run_cli(capsys, "sample", *SMALL, "--seed", "4", "--out", str(out), "--force")
    assert code == 0 and ChainReader(out).config["seed"] == 4


def test_resume_with_different_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert run_cli(capsys, "sample", *SMALL, "--out", str(out))[0] == 0
    before = out.read_bytes()
    code, _, err = run_cli(capsys, "sample", "--resume", str(out), "--chains", "8", "--arch", "3", "--draws", "600")
    assert_one_sentence_error(code, err)
    assert "--chains 8" in err and "'2,2'" in err and "16" not in err.replace("--chains 8", "")
    assert out.read_bytes() == before
    code, _, err = run_cli(capsys, "sample", "--resume", str(out), "--draws", "100")
    assert_one_sentence_error(code, err)
    code, _, err = run_cli(capsys, "sample", "--resume", str(out), "--chains", "4", "--draws", "600")
    assert code == 0, err
    assert ChainReader(out).committed_draws == 600


def test_rotated_and_custom_data_runs(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("x1,x2,x3,label\n0,0,1,0\n1,0,0,1\n0,1,0,2\n1,1,1,1\n")
    out = tmp_path / "c.h5"
    code, _, err = run_cli(capsys, "sample", *SMALL, "--data", str(data), "--arch", "3", "--out", str(out))
    assert code == 0, err
    assert ChainReader(out).config["widths"] == [3, 3, 3]
    code, _, err = run_cli(capsys, "sample", *SMALL, "--data", str(data), "--angle", "30", "--out", str(out), "--force")
    assert_one_sentence_error(code, err)  # rotation needs 2-D inputs


@pytest.mark.parametrize("kind", ["missing", "corrupt", "foreign"])
def test_diagnose_bad_files(tmp_path, capsys, kind):
    path = tmp_path / "f.h5"
    if kind == "corrupt":
        path.write_bytes(b"not hdf5 at all" * 10)
    elif kind == "foreign":
        with h5py.File(path, "w") as f:
            f["a"] = 1
    code, _, err = run_cli(capsys, "diagnose", str(path))
    assert_one_sentence_error(code, err)


def test_diagnose_verdict_json_and_plots(tmp_path, capsys):
    out = tmp_path / "run.h5"
    assert run_cli(capsys, "sample", *SMALL, "--out", str(out))[0] == 0
    code, text, err = run_cli(capsys, "diagnose", str(out), "--plots", str(tmp_path / "plots"))
    assert code == 0, err
    assert text.strip().splitlines()[-1].startswith(("converged", "not converged"))
    assert (tmp_path / "plots" / "trace.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "rank.png").stat().st_size > 1000
    code, text, err = run_cli(capsys, "diagnose", str(out), "--json", "--no-plots", "--discard", "100")
    d = json.loads(text)
    assert d["n_draws"] == 200 and d["n_chains"] == 4 and isinstance(d["converged"], bool)
    assert len(d["per_coordinate"]["rhat"]) == 18 and d["verdict"]
    code, _, err = run_cli(capsys, "diagnose", str(out), "--discard", "299")
    assert_one_sentence_error(code, err)


def test_diagnose_a_wide_run_on_a_random_subset_read_in_blocks(tmp_path, capsys, monkeypatch):
    # a convnet's 2e5 coordinates do not fit in memory: --max-coords diagnoses U and a random subset, θ read in blocks
    out = tmp_path / "run.h5"
    assert run_cli(capsys, "sample", *SMALL, "--out", str(out))[0] == 0
    code, text, _ = run_cli(capsys, "diagnose", str(out), "--json", "--no-plots", "--thin", "3")
    whole = json.loads(text)
    with ChainReader(out) as r:
        cols = np.array([1, 4, 5, 11, 17])
        for block_bytes in (1, 4 * 18 * 8 * 7, 2**30):  # one draw, 7 draws, everything at a time
            np.testing.assert_array_equal(r.get_coordinates(cols, 5, 3, block_bytes), r.get_chain(5, 3)[..., cols])
    seen = []
    real_get = h5py.Dataset.__getitem__

    def spy(self, key):
        got = real_get(self, key)
        if self.name.endswith("theta"):
            seen.append(got.nbytes)
        return got

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    code, text, err = run_cli(capsys, "diagnose", str(out), "--json", "--no-plots", "--thin", "3", "--max-coords", "5",
                              "--memory-mb", "1")
    assert code == 0, err
    part = json.loads(text)
    assert seen and max(seen) <= 2**20  # no read of θ larger than the 1 MB asked for
    cols = part["coordinates"]
    assert len(cols) == 5 and part["n_params"] == 18 and "5 of the 18 coordinates" in part["verdict"]
    for key in ("rhat", "ess_bulk", "mean"):
        np.testing.assert_allclose(part["per_coordinate"][key], np.asarray(whole["per_coordinate"][key])[cols])
    assert part["energy"] == whole["energy"]
    code, text, err = run_cli(capsys, "diagnose", str(out), "--max-coords", "5", "--plots", str(tmp_path / "p"))
    assert code == 0 and "5 of 18, at random" in text and (tmp_path / "p" / "rank.png").exists(), err
