"""Loss slices and the two instrument commands: a planted quadratic's slice is the analytic one, the plane holds its
three models at their coordinates, filter normalization has the stated norms, alignment flattens the line to a
permuted copy, and `landscape hessian` / `landscape slice` run on a chain file, a census-free source, and refuse bad
input with one sentence."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_sentence_error, run_cli
from helpers import one_thread  # noqa: F401  (autouse: small Hessians on one torch thread)

from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import permute_hidden
from mcmc_landscape.slices import evaluate_grid, filter_normalized, pca_plane, plane_through
from mcmc_landscape.targets import mlp_target


def test_planted_quadratic_slice_equals_the_analytic_values():
    rng = np.random.default_rng(0)
    p = 7
    M = rng.normal(size=(p, p))
    A = torch.as_tensor(M @ M.T)
    c = rng.normal(size=p)
    loss = lambda t: 0.5 * torch.einsum("np,pq,nq->n", t - torch.as_tensor(c), A, t - torch.as_tensor(c))  # noqa: E731
    o, d1, d2 = rng.normal(size=p), rng.normal(size=p), rng.normal(size=p)
    a, b = np.linspace(-2, 2, 9), np.linspace(-1, 1, 5)
    got = evaluate_grid(loss, o, d1, a, d2, b, chunk=7)            # chunks that do not divide the grid
    x = o[None, None] + a[:, None, None] * d1 + b[None, :, None] * d2 - c
    np.testing.assert_allclose(got, 0.5 * np.einsum("abp,pq,abq->ab", x, M @ M.T, x), rtol=1e-12)
    line = evaluate_grid(loss, o, d1, a, chunk=4)
    np.testing.assert_allclose(line, got[:, 2], rtol=1e-12)       # b = 0 column


def test_plane_contains_the_three_models_at_their_coordinates():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 30))
    u, v, coords = plane_through(*w)
    assert abs(u @ v) < 1e-12 and abs(np.linalg.norm(u) - 1) < 1e-12 and abs(np.linalg.norm(v) - 1) < 1e-12
    for model, (x, y) in zip(w, coords, strict=True):
        np.testing.assert_allclose(w[0] + x * u + y * v, model, atol=1e-12)
    mean, d1, d2, pc, ratio = pca_plane(w)
    np.testing.assert_allclose(mean + pc[:, :1] * d1 + pc[:, 1:] * d2, w, atol=1e-10)  # 3 points span their plane
    assert ratio.sum() == pytest.approx(1.0)


def test_filter_normalization_has_the_stated_norms():
    spec = MLPSpec((5, 4), 3, 2, "relu")
    rng = np.random.default_rng(2)
    theta = rng.normal(size=spec.n_params)
    target = mlp_target(spec, rng.normal(size=(8, 3)), rng.integers(0, 2, 8), torch.device("cpu"))
    d = filter_normalized(theta, target.tensors, np.random.default_rng(3))
    for (dw, db), (tw, _) in zip(spec.unflatten(d), spec.unflatten(theta), strict=True):
        np.testing.assert_allclose(np.linalg.norm(dw, axis=0), np.linalg.norm(tw, axis=0), rtol=1e-12)  # per neuron
        assert not db.any()                                       # biases: zero by default
    d2 = filter_normalized(theta, target.tensors, np.random.default_rng(3), biases="weights")
    for (_, db), (_, tb) in zip(spec.unflatten(d2), spec.unflatten(theta), strict=True):
        np.testing.assert_array_equal(db, tb)
    # PyTorch layout: a conv weight (out, in, kh, kw) has one filter per output channel
    w = rng.normal(size=(4, 2, 3, 3))
    dc = filter_normalized(w.ravel(), [(0, w.size, w.shape, "weight")], np.random.default_rng(4)).reshape(w.shape)
    np.testing.assert_allclose(np.linalg.norm(dc.reshape(4, -1), axis=1), np.linalg.norm(w.reshape(4, -1), axis=1))


def _chain(tmp_path, capsys):
    path = tmp_path / "c.h5"
    code, _, err = run_cli(capsys, "sample", "--chains", "2", "--draws", "12", "--warmup", "40", "--arch", "3,3",
                           "--out", str(path))
    assert code == 0, err
    return path


def test_alignment_makes_a_permuted_copys_line_flat(tmp_path, capsys):
    from mcmc_landscape.storage.store import ChainReader

    path = _chain(tmp_path, capsys)
    with ChainReader(path) as r:
        cfg, theta = r.config, r.get_chain()[0, -1]
    w = cfg["widths"]
    spec = MLPSpec.from_widths(w, cfg["activation"])
    copy = permute_hidden(permute_hidden(theta, spec, 0, np.array([2, 0, 1])), spec, 1, np.array([1, 2, 0]))
    import h5py

    copied = tmp_path / "copy.h5"
    import shutil

    shutil.copy(path, copied)
    with h5py.File(copied, "r+") as f:
        run = next(iter(k for k in f if isinstance(f[k], h5py.Group)))
        f[run]["theta"][1, -1] = copy                          # chain 1's last draw: a permuted copy of chain 0's
    loss = {}
    for flag in ((), ("--no-align",)):
        out = tmp_path / f"line{len(flag)}"
        code, _, err = run_cli(capsys, "slice", str(copied), "--chain", "0,1", "--device", "cpu", "--steps", "11",
                               "--out", str(out), *flag)
        assert code == 0, err
        with np.load(out / "slice.npz") as f:
            loss[len(flag)] = f["loss"]
            meta = json.loads(str(f["meta"]))
            assert ("same_point_modulo_symmetry" in f.files) is (not flag)
        assert meta["aligned"] is (not flag)
    np.testing.assert_allclose(loss[0], loss[0][0], rtol=1e-12)    # aligned: one point modulo symmetry, flat
    assert np.ptp(loss[1]) > 1e-3                              # unaligned: a real barrier between the copies


def test_hessian_and_slice_commands_on_a_chain_file(tmp_path, capsys):
    path = _chain(tmp_path, capsys)
    out = tmp_path / "h"
    code, text, err = run_cli(capsys, "hessian", str(path), "--chain", "0,1", "--draw", "11", "--per-layer",
                              "--device", "cpu", "--out", str(out))
    assert code == 0, err
    res = json.loads((out / "hessian.json").read_text())
    assert (out / "density.png").stat().st_size > 0
    assert [p["label"] for p in res["points"]] == ["chain 0 draw 11", "chain 1 draw 11"]
    blocks = res["points"][0]["blocks"]
    assert [b["block"] for b in blocks] == ["all", "layer1", "layer2", "layer3"]
    assert sum(b["size"] for b in blocks[1:]) == blocks[0]["size"]
    assert blocks[0]["top"][0] >= blocks[0]["bottom"][0]
    # the Lanczos path agrees with the dense one on the same points
    out2 = tmp_path / "h2"
    code, _, err = run_cli(capsys, "hessian", str(path), "--chain", "0,1", "--draw", "11", "--dense-max", "0",
                           "--lanczos-steps", "33", "--matvecs", "102", "--device", "cpu", "--out", str(out2))
    assert code == 0, err
    lan = json.loads((out2 / "hessian.json").read_text())["points"]
    for d, it in zip(res["points"], lan, strict=True):
        np.testing.assert_allclose(it["blocks"][0]["top"], d["blocks"][0]["top"], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(it["blocks"][0]["trace"], d["blocks"][0]["trace"], rtol=1e-6, atol=1e-8)
    out3 = tmp_path / "s"
    code, _, err = run_cli(capsys, "slice", str(path), "--dims", "1", "--steps", "9", "--device", "cpu",
                           "--format", "h5", "--out", str(out3))
    assert code == 0, err
    import h5py

    with h5py.File(out3 / "slice.h5") as f:
        assert f["loss"].shape == (9,) and np.isfinite(f["loss"][()]).all()
    out4 = tmp_path / "p"
    code, _, err = run_cli(capsys, "slice", str(path), "--mode", "pca", "--chain", "0,1", "--steps", "5",
                           "--device", "cpu", "--out", str(out4))
    assert code == 0, err
    with np.load(out4 / "slice.npz") as f:
        assert f["loss"].shape == (5, 5) and len(f["points"]) == 24


@pytest.mark.parametrize("extra,match", [
    (["--chain", "7"], "out of range"),
    (["--minimum", "0"], "--minimum"),
    (["--draw", "x"], "whole numbers"),
])
def test_bad_input_is_one_sentence(tmp_path, capsys, extra, match):
    path = _chain(tmp_path, capsys)
    for command in ("hessian", "slice"):
        code, _, err = run_cli(capsys, command, str(path), "--device", "cpu", "--out", str(tmp_path / command),
                               *extra)
        assert_one_sentence_error(code, err)
        assert match in err


def test_missing_source_and_bad_checkpoint_are_one_sentence(tmp_path, capsys):
    code, _, err = run_cli(capsys, "hessian", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "o"))
    assert_one_sentence_error(code, err)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(4, np.int64))
    code, _, err = run_cli(capsys, "hessian", str(bad), "--model", "small-convnet", "--data",
                           str(tmp_path / "d.npz"), "--out", str(tmp_path / "o2"))
    assert_one_sentence_error(code, err)
    code, _, err = run_cli(capsys, "hessian", str(bad), "--out", str(tmp_path / "o3"))
    assert_one_sentence_error(code, err)
    assert "--model" in err
