"""`landscape dss connect|sweep` from the command line: outputs, resume, and one-sentence errors."""

import json

from cli_helpers import assert_one_sentence_error, run_cli

from dss.store import load_string


def test_connect_writes_string_figures_and_resumes(tmp_path, capsys):
    out = tmp_path / "quad.h5"
    code, text, err = run_cli(capsys, "dss", "connect", "--task", "quadratic", "--l0", "0.025", "--out", str(out),
                              "--no-gif")
    assert code == 0, err
    assert "connected at L0 = 0.025" in text and "straight line" in text
    state, config, outcome = load_string(out)
    assert state.finished and outcome["connected"] and outcome["n_beads"] == len(state.order)
    assert config["settings"]["l0"] == 0.025 and config["task"]["task"] == "quadratic"
    figures = tmp_path / "quad_figures"
    assert (figures / "string_pca3d.png").is_file() and (figures / "string_profile.png").is_file()
    assert json.loads((figures / "string_outcome.json").read_text())["connected"]
    # resuming a finished string changes nothing
    code, text2, _ = run_cli(capsys, "dss", "connect", "--resume", str(out), "--no-plots")
    assert code == 0 and load_string(out)[0].order == state.order


def test_connect_errors_are_one_sentence(tmp_path, capsys):
    out = tmp_path / "q.h5"
    assert run_cli(capsys, "dss", "connect", "--l0", "0.1", "--out", str(out), "--no-plots")[0] == 0
    before = out.read_bytes()
    for args in (["--l0", "0.1", "--out", str(out)],                      # exists, no --force
                 ["--resume", str(out), "--l0", "0.2"],                    # resume mismatch
                 ["--resume", str(out), "--alpha", "0.5"],
                 ["--l0", "0.1", "--out", str(tmp_path / "x.h5"), "--arch", "2,2"],   # flag of another task
                 ["--task", "classifier", "--arch", "2,,x", "--l0", "1", "--out", str(tmp_path / "y.h5")],
                 ["--l0", "-1", "--out", str(tmp_path / "z.h5")],
                 ["--out", str(tmp_path / "z.h5")]):                        # no --l0
        code, _, err = run_cli(capsys, "dss", "connect", *args)
        assert_one_sentence_error(code, err)
    assert out.read_bytes() == before
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    code, _, err = run_cli(capsys, "dss", "connect", "--resume", str(bad))
    assert_one_sentence_error(code, err)


def test_sweep_table_and_figure(tmp_path, capsys):
    code, text, err = run_cli(capsys, "dss", "sweep", "--task", "cubic", "--l0", "0.158,0.05", "--pairs", "2",
                              "--out", str(tmp_path / "sw"), "--baselines")
    assert code == 0, err
    rows = (tmp_path / "sw" / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("l0,") and len(rows) == 3
    result = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["l0"] for r in result["levels"]] == [0.158, 0.05]
    assert result["levels"][1]["connected"] == 2 and "bezier_found" in result["levels"][1]
    level = result["levels"][1]
    n = level["trained_pairs"]
    assert isinstance(level["autoneb_found"], int) and "AutoNEB found" in text
    # the table prints what the JSON holds: Bézier and AutoNEB found out of the pairs trained
    assert f"{level['bezier_found']:>6}/{n:<6} {level['autoneb_found']:>6}/{n}" in text
    assert "warm" in text or "level above" in text
    assert (tmp_path / "sw" / "sweep.png").is_file()
    assert len(list((tmp_path / "sw" / "strings").glob("*.h5"))) == 4


def test_minima_graph_from_a_chain_file(tmp_path, capsys):
    import numpy as np
    import torch

    from dss.graph import task_from_chain
    from mcmc_landscape.storage.store import ChainReader

    chains = tmp_path / "theta0.h5"
    assert run_cli(capsys, "sample", "--chains", "16", "--draws", "5000",
                   "--out", str(chains))[0] == 0
    with ChainReader(chains) as r:                # the DSS task evaluates the sampler's own energy
        task = task_from_chain(r.config, r.extra("data/x"), r.extra("data/y"))
        theta, energy = r.get_chain(flat=True)[:200], r.get_energy(flat=True)[:200]
    assert np.allclose(task.loss_eval(torch.as_tensor(theta)).numpy() * len(task.y_eval), energy, rtol=1e-9)
    out = tmp_path / "graph"
    code, text, err = run_cli(capsys, "dss", "minima", str(chains), "--l0", "0.1,0.05", "--count", "6",
                              "--symmetric", "1", "--max-depth", "4", "--out", str(out))
    assert code == 0, err
    graph = json.loads((out / "graph.json").read_text())
    assert [lv["l0"] for lv in graph["levels"]] == [0.1, 0.05]
    n = graph["n_minima"]
    for lv in graph["levels"]:
        assert sum(lv["sizes"]) == n and lv["dss_runs"] < 3 * n
        assert len(lv["edges"]) == n - lv["n_components"]
        assert all(e["max_interpolated_loss"] <= lv["l0"] for e in lv["edges"])
    assert all(node["loss"] <= 0.95 * 0.05 for node in graph["nodes"])
    assert len(graph["symmetric_copies"]) == 2
    assert (out / "REPORT.md").read_text().startswith("# Connectivity of good minima")
    assert (out / "graph.graphml").is_file() and (out / "graph_kpca3d.png").is_file()
    code, _, err = run_cli(capsys, "dss", "minima", str(chains), "--l0", "0.1", "--out", str(out))
    assert_one_sentence_error(code, err)          # not empty, no --force


def test_connect_killed_minus_9_mid_string_resumes_to_the_same_string(tmp_path):
    """SIGKILL while the string grows: the file holds the last finished depth, loads cleanly, and resuming it gives
    the string of an uninterrupted run, bead for bead."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import h5py
    import numpy as np

    args = [sys.executable, "-m", "landscape_cli", "-q", "dss", "connect", "--task", "cubic", "--l0", "0.01",
            "--seed", "1", "--no-plots"]
    ref = tmp_path / "ref.h5"
    subprocess.run([*args, "--out", str(ref)], check=True, capture_output=True, timeout=300)
    path = tmp_path / "run.h5"
    proc = subprocess.Popen([*args, "--out", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rounds = 0
    deadline = time.monotonic() + 300  # only stops a hung test
    while proc.poll() is None:  # waits on the file's rounds, not on the clock: a busy machine only makes it slower
        assert time.monotonic() < deadline, "the string never reached 2 rounds"
        if path.exists():
            try:
                with h5py.File(path, "r") as f:
                    rounds = int(f.attrs["rounds"])
            except OSError:  # caught between a file and its replacement
                pass
            if rounds >= 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.005)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run should have been killed mid-string"
    state, _, _ = load_string(path)
    assert not state.finished and state.rounds >= 2
    (tmp_path / ".run.h5.tmp-999999").write_bytes(b"half a file")  # what a kill during a write leaves
    subprocess.run([*args[:6], "--resume", str(path), "--no-plots"], check=True, capture_output=True, timeout=300)
    got, want = load_string(path)[0], load_string(ref)[0]
    assert got.finished and got.order == want.order and got.rounds == want.rounds
    np.testing.assert_array_equal(np.stack(got.beads), np.stack(want.beads))
    assert not list(tmp_path.glob(".run.h5.tmp-*")), "a killed writer's temporary file is cleaned up"


def test_real_data_tasks_connect_on_files_in_the_standard_formats(tmp_path, capsys):
    """mnist and cifar10 run end to end on small synthetic files in the IDX / python-batch formats (the real sets
    are not needed); the level is the held-out error, and the stored task resumes against the same data."""
    from image_files import write_cifar, write_mnist

    data = write_cifar(write_mnist(tmp_path / "data"))
    for task in ("mnist", "cifar10"):
        out = tmp_path / f"{task}.h5"
        code, text, err = run_cli(capsys, "dss", "connect", "--task", task, "--data-dir", str(data), "--n-train", "40",
                                  "--n-eval", "20", "--width", "0.125", "--batch-size", "16", "--l0", "0.3",
                                  "--seed", "1", "--device", "cpu", "--out", str(out), "--no-plots")
        assert code == 0, err
        state, config, outcome = load_string(out)
        assert outcome["connected"] and state.finished
        assert config["task"]["level"] == "test error" and config["task"]["n_train"] == 40
        assert config["task"]["width"] == 0.125 and config["task"]["batch_size"] == 16
        assert config["settings"]["lr"] == 0.001 and "data_digest" in config["task"]
        code, _, err = run_cli(capsys, "dss", "connect", "--resume", str(out), "--data-dir", str(data), "--no-plots")
        assert code == 0, err
    from image_files import synthetic_images, write_idx

    write_idx(data / "mnist" / "train-images-idx3-ubyte.gz", synthetic_images(60, 28, 1, 99)[0])  # other images
    code, _, err = run_cli(capsys, "dss", "connect", "--resume", str(tmp_path / "mnist.h5"), "--data-dir", str(data))
    assert_one_sentence_error(code, err)
    assert "differs from the stored one" in err
    code, _, err = run_cli(capsys, "dss", "connect", "--task", "mnist", "--arch", "2,2", "--l0", "0.3",
                           "--out", str(tmp_path / "x.h5"))
    assert_one_sentence_error(code, err)
    assert "does not apply to the mnist task" in err
    code, _, err = run_cli(capsys, "dss", "connect", "--task", "cubic", "--data-dir", str(data), "--l0", "0.3",
                           "--out", str(tmp_path / "z.h5"))
    assert_one_sentence_error(code, err)
    assert "--data-dir applies to the real-data tasks" in err
    code, _, err = run_cli(capsys, "dss", "connect", "--task", "cifar10", "--data-dir", str(tmp_path / "none"),
                           "--l0", "0.3", "--out", str(tmp_path / "y.h5"))
    assert_one_sentence_error(code, err)
    assert "MCMC_LANDSCAPE_DATA" in err and not (tmp_path / "y.h5").exists()
