"""`landscape hessian` / `slice` at every kind of source, each checked against a path that does not go through
``landscape_cli.points``: a census minimum (its own Hessian, of U = n × loss), a DSS bead of a user model (the same
θ as a user checkpoint), a user checkpoint and a user model as built (the plain module's Hessian by autograd), and
a zoo convnet checkpoint (the plain module's loss, and Rayleigh quotients inside the Lanczos extremes)."""

import json

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_sentence_error, run_cli
from helpers import one_thread  # noqa: F401  (autouse: small Hessians on one torch thread)
from paths import ROOT

from mcmc_landscape.models.zoo import FlatLayout, build_model, prepare_images
from mcmc_landscape.user_model import load_user_model

TINY = str(ROOT / "examples" / "tiny.npz")
MODEL = "examples.tiny_model:make"


def _hessian(capsys, tmp_path, name, *args):
    out = tmp_path / name
    code, _, err = run_cli(capsys, "hessian", *args, "--device", "cpu", "--out", str(out))
    assert code == 0, err
    return json.loads((out / "hessian.json").read_text())


def _dense_user_hessian(module, theta):
    """The mean cross-entropy's Hessian at flat θ on the tiny data, by autograd on the plain module."""
    _, ds = load_user_model(MODEL, TINY)
    module = module.double()
    layout = FlatLayout.of(module)
    x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y)

    def loss(t):
        out = torch.func.functional_call(module, layout.unflatten(t), (x,))
        return torch.nn.functional.cross_entropy(out, y)

    return torch.autograd.functional.hessian(loss, torch.as_tensor(theta, dtype=torch.float64)).numpy()


def test_census_minimum_matches_the_census_hessian(tmp_path, capsys):
    chains, census = tmp_path / "c.h5", tmp_path / "census"
    code, _, err = run_cli(capsys, "sample", "--chains", "2", "--draws", "12", "--warmup", "40", "--arch", "3,3",
                           "--out", str(chains))
    assert code == 0, err
    code, _, err = run_cli(capsys, "census", str(chains), "--out", str(census), "--count", "6",
                           "--max-barrier-minima", "0", "--device", "cpu")
    assert code == 0, err
    c = json.loads((census / "census.json").read_text())
    res = _hessian(capsys, tmp_path, "h", str(census), "--minimum", "0")
    whole = res["points"][0]["blocks"][0]
    assert res["points"][0]["label"] == "minimum 0"
    # the census measured U's Hessian; hessian measures the loss U/n: the same spectrum over n
    np.testing.assert_allclose(whole["top"][0] * c["n_data"], c["minima"][0]["hessian"]["lambda_max"], rtol=1e-6)
    assert whole["bottom"][0] * c["n_data"] >= -1e-5                   # a minimum: no direction down
    code, _, err = run_cli(capsys, "hessian", str(census), "--minimum", str(len(c["minima"])), "--out",
                           str(tmp_path / "bad"))
    assert_one_sentence_error(code, err)
    assert "out of range" in err


def test_user_checkpoint_bead_and_built_model_agree_with_autograd(tmp_path, capsys):
    torch.manual_seed(3)
    module, _ = load_user_model(MODEL, TINY)
    ckpt = tmp_path / "user.pt"
    torch.save(module.state_dict(), ckpt)
    theta = FlatLayout.of(module).flatten(module).detach().double().numpy()
    res = _hessian(capsys, tmp_path, "ck", str(ckpt), "--model", MODEL, "--data", TINY, "--k", "2")
    dense = np.linalg.eigvalsh(_dense_user_hessian(module, theta))
    whole = res["points"][0]["blocks"][0]
    np.testing.assert_allclose(whole["top"], dense[::-1][:2], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(whole["bottom"], dense[:2], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(whole["trace"], dense.sum(), rtol=1e-8, atol=1e-10)

    # a DSS string of the user model: a bead's Hessian is the user checkpoint's Hessian at the same weights
    string = tmp_path / "s.h5"
    code, _, err = run_cli(capsys, "dss", "connect", "--model", MODEL, "--data", TINY, "--l0", "0.3",
                           "--endpoint-steps", "300", "--device", "cpu", "--out", str(string), "--no-plots")
    assert code == 0, err
    from dss.store import load_string

    state, _, _ = load_string(string)
    bead = state.beads[state.order[-1]]
    res = _hessian(capsys, tmp_path, "bead", str(string), "--bead", str(state.order[-1]), "--k", "2")
    dense = np.linalg.eigvalsh(_dense_user_hessian(module, bead))
    np.testing.assert_allclose(res["points"][0]["blocks"][0]["top"], dense[::-1][:2], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(res["points"][0]["blocks"][0]["trace"], dense.sum(), rtol=1e-7, atol=1e-9)

    # no source: the model as its factory builds it, seeded; the slice's centre is the module's own loss
    torch.manual_seed(5)
    built, ds = load_user_model(MODEL, TINY)
    out = tmp_path / "sl"
    code, _, err = run_cli(capsys, "slice", "--model", MODEL, "--data", TINY, "--seed", "5", "--dims", "1",
                           "--steps", "5", "--device", "cpu", "--out", str(out))
    assert code == 0, err
    with np.load(out / "slice.npz") as f:
        centre = f["loss"][2]
    with torch.no_grad():
        plain = torch.nn.functional.cross_entropy(built.double()(torch.from_numpy(ds.x)), torch.from_numpy(ds.y))
    assert centre == pytest.approx(plain.item(), rel=1e-10)


def test_zoo_checkpoint_loss_and_rayleigh_quotients(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 14, 14), dtype=np.uint8)       # tiny MNIST-like images, side 14
    y = np.arange(6) % 10
    data = tmp_path / "img.npz"
    np.savez(data, x=x, y=y)
    torch.manual_seed(0)
    net = build_model("small-convnet", in_channels=1, side=14).double()
    ckpt = tmp_path / "conv.pt"
    torch.save(net.state_dict(), ckpt)
    src = [str(ckpt), "--model", "small-convnet", "--data", str(data)]
    out = tmp_path / "sl"
    code, _, err = run_cli(capsys, "slice", *src, "--dims", "1", "--steps", "3", "--device", "cpu", "--out", str(out))
    assert code == 0, err
    xt, yt = prepare_images(x).double(), torch.as_tensor(y)
    with torch.no_grad():
        plain = torch.nn.functional.cross_entropy(net(xt), yt).item()
    with np.load(out / "slice.npz") as f:
        assert f["loss"][1] == pytest.approx(plain, rel=1e-10)        # uint8 images normalized as the zoo does
    res = _hessian(capsys, tmp_path, "h", *src, "--dense-max", "0", "--k", "1", "--lanczos-steps", "40",
                   "--matvecs", "12", "--slq-vectors", "1", "--slq-steps", "10")
    whole = res["points"][0]["blocks"][0]
    assert whole["method"] != "dense" and whole["size"] == sum(p.numel() for p in net.parameters())
    params = dict(net.named_parameters())

    def loss(*ws):
        out = torch.func.functional_call(net, dict(zip(params, ws, strict=True)), (xt,))
        return torch.nn.functional.cross_entropy(out, yt)

    for seed in range(3):     # every Rayleigh quotient lies between the extreme eigenvalues
        g = torch.Generator().manual_seed(seed)
        v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params.values()]
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / norm for t in v]
        _, hv = torch.autograd.functional.hvp(loss, tuple(p.detach() for p in params.values()), tuple(v))
        q = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        assert whole["bottom"][0] - 1e-8 <= q <= whole["top"][0] + 1e-8


def test_model_flags_refuse_bad_input_in_one_sentence(tmp_path, capsys):
    cases = [
        (["--model", MODEL], "--data"),
        (["--model", MODEL, "--data", "mnist"], "FILE.npz"),
        (["--model", "nope.mod:make", "--data", TINY], "cannot import"),
        ([], "SOURCE"),
    ]
    for extra, words in cases:
        for command in ("hessian", "slice"):
            code, _, err = run_cli(capsys, command, *extra, "--out", str(tmp_path / command), "--device", "cpu")
            assert_one_sentence_error(code, err)
            assert words in err, err
