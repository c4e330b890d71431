import numpy as np
import pytest

from analysis.minima import bootstrap_ci, good_mask, null_sets, plane_share, twonn_dimension
from analysis.reduction import KernelEmbedding, PlaneFit, procrustes_disparity, reconstruction_error
from mcmc_landscape.data.datasets import load_dataset
from mcmc_landscape.models.energy import mlp_energy_model
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import canonicalize, permute_hidden


def test_nystroem_embedding_matches_exact_kernel_pca():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(600, 5)), rng.normal(size=(600, 5)) + 3])
    exact = KernelEmbedding(3, gamma=0.2, solver="exact").fit(X)
    ny = KernelEmbedding(3, gamma=0.2, solver="nystroem", n_landmarks=600).fit(X)
    from scipy.spatial.distance import pdist

    median_gamma = 1 / np.median(pdist(X, "sqeuclidean"))
    assert KernelEmbedding(3).fit(X).gamma_ == pytest.approx(median_gamma, rel=0.05)  # the median heuristic
    assert procrustes_disparity(exact.transform(X), ny.transform(X)) < 0.01
    assert abs(exact.left_out_share_ - ny.left_out_share_) < 0.02
    assert 0 < exact.left_out_share_ < 1
    # exact left-out share equals 1 - (top-3 eigenvalues) / trace of the centred kernel, computed by hand
    from sklearn.metrics.pairwise import rbf_kernel

    K = rbf_kernel(X, gamma=1 / 5)
    n = len(X)
    H = np.eye(n) - 1 / n
    ev = np.linalg.eigvalsh(H @ K @ H)[::-1]
    assert exact.left_out_share_ == pytest.approx(1 - ev[:3].sum() / ev.sum(), abs=1e-8)


def test_reconstruction_error_small_on_low_dimensional_data_large_on_noise():
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 1, size=(800, 2))
    X_plane = np.concatenate([t, np.zeros((800, 4))], axis=1) @ np.linalg.qr(rng.normal(size=(6, 6)))[0]
    assert reconstruction_error(X_plane, gamma=0.5) < 0.1
    assert reconstruction_error(rng.normal(size=(800, 6)), gamma=0.5) > 0.3


def test_plane_fit_finds_a_planar_arrangement_and_not_a_ball():
    rng = np.random.default_rng(2)
    plane = np.c_[rng.normal(size=(500, 2)) * 3, 0.05 * rng.normal(size=500)]
    ball = rng.normal(size=(500, 3))
    assert PlaneFit().fit(plane).plane_share_ > 0.99
    ball_share = PlaneFit().fit(ball).plane_share_
    assert 2 / 3 <= ball_share < 0.8
    lo, hi = bootstrap_ci(plane_share, ball, 200)
    assert lo < ball_share < hi and hi < 0.85


def test_twonn_recovers_dimension():
    rng = np.random.default_rng(3)
    Q = np.linalg.qr(rng.normal(size=(10, 10)))[0]
    for d in (2, 5):
        X = np.c_[rng.uniform(size=(3000, d)), np.zeros((3000, 10 - d))] @ Q
        assert abs(twonn_dimension(X) - d) < 0.3 * d


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_canonicalization_keeps_the_function_and_removes_symmetries(act):
    spec = MLPSpec.from_string("3,4", activation=act)
    model = mlp_energy_model(spec, load_dataset("points10"))
    rng = np.random.default_rng(4)
    theta = rng.uniform(-3, 3, size=(50, spec.n_params))
    canon = canonicalize(theta, spec)
    np.testing.assert_allclose(model.energy(canon), model.energy(theta), atol=1e-9)
    # a symmetric copy has the same canonical form
    copy = permute_hidden(theta, spec, 0, np.array([2, 0, 1]))
    copy = permute_hidden(copy, spec, 1, np.array([3, 1, 0, 2]))
    np.testing.assert_allclose(model.energy(copy), model.energy(theta), atol=1e-9)
    if act == "relu":
        (W1, b1), (W2, _), _ = spec.unflatten(copy)
        W1[..., 1] *= 2.5
        b1[..., 1] *= 2.5
        W2[..., 1, :] /= 2.5
    np.testing.assert_allclose(canonicalize(copy, spec), canon, atol=1e-9)


def test_null_sets_have_the_requested_count():
    rng = np.random.default_rng(5)
    theta = rng.normal(size=(400, 6))
    loss = rng.uniform(0, 1, 400)
    sets = null_sets(theta, loss, 0.1, 30, 10.0)
    assert set(sets) == {"uniform", "gaussian", "high_loss"}
    assert all(v.shape == (30, 6) for v in sets.values())
    assert np.all(np.abs(sets["uniform"]) <= 10)
    assert good_mask(np.array([0.5, 2.0]), 10, 0.1).tolist() == [True, False]


def _planar_chain_file(tmp_path, planar: bool):
    """A synthetic chain file whose good draws (low U) lie on a 2-D plane in R^18, or fill a ball (planar=False)."""
    from mcmc_landscape.storage.store import ChainWriter

    rng = np.random.default_rng(7)
    n_chains, n_draws, p = 4, 1500, 18
    basis = np.linalg.qr(rng.normal(size=(p, p)))[0]
    good_n = n_draws // 3
    theta = rng.uniform(-5, 5, size=(n_chains, n_draws, p))
    coords = rng.normal(size=(n_chains, good_n, p)) * 2.0
    if planar:
        coords[..., 2:] *= 1e-4
    theta[:, :good_n] = coords @ basis.T
    energy = np.full((n_chains, n_draws), 5.0)
    energy[:, :good_n] = 0.5  # loss 0.05 on the 10-point set
    ds = load_dataset("points10")
    cfg = {"widths": [2, 2, 2, 2], "activation": "relu", "box": 10.0, "arch": "2,2"}
    path = tmp_path / ("planar.h5" if planar else "ball.h5")
    w = ChainWriter.create(path, "r", cfg, n_chains, p, {"iteration": np.int64(0)},
                           extra={"data/x": ds.x, "data/y": ds.y})
    w.append(theta, energy, np.ones((n_chains, n_draws), bool), {"iteration": np.int64(1)})
    w.close()
    return path


@pytest.mark.parametrize("planar", [True, False])
def test_pipeline_finds_a_known_plane_and_no_plane_where_there_is_none(tmp_path, planar):
    from analysis.pipeline import AnalysisSettings, analyze_file

    path = _planar_chain_file(tmp_path, planar)
    s = AnalysisSettings(canonicalize=False, n_boot=100, n_boot_kernel=2)
    summary, arrays = analyze_file(str(path), s)
    raw = summary["raw"]
    assert raw["n_good"] == 4 * 500
    spectrum = raw["parameter_space"]["pca_spectrum"]
    if planar:
        assert sum(spectrum[:2]) > 0.99  # the plane in R^18 is found ...
        assert raw["parameter_space"]["twonn_dimension"] < 2.6
    else:
        assert sum(spectrum[:2]) < 0.3  # ... and none is invented
        assert raw["parameter_space"]["twonn_dimension"] > 8
    assert arrays["raw"]["embedding"].shape == (6000, 3)


def test_streaming_with_a_tiny_memory_budget_agrees(tmp_path):
    from analysis.pipeline import AnalysisSettings, analyze_file

    path = _planar_chain_file(tmp_path, True)
    full, _ = analyze_file(str(path), AnalysisSettings(canonicalize=False, n_boot=20, n_boot_kernel=1))
    small = AnalysisSettings(canonicalize=False, n_boot=20, n_boot_kernel=1, memory_budget_mb=0.5, chunk_draws=100)
    streamed, arrays = analyze_file(str(path), small)
    assert streamed["raw"]["kernel_pca"]["n_fit"] < 6000  # fitted on a subsample ...
    assert arrays["raw"]["embedding"].shape == (6000, 3)  # ... applied to every draw
    assert streamed["raw"]["n_good"] == full["raw"]["n_good"]
    assert abs(streamed["raw"]["kernel_pca"]["left_out_share"] - full["raw"]["kernel_pca"]["left_out_share"]) < 0.05


def test_analyze_cli_on_a_sampled_file(tmp_path, capsys):
    from landscape_cli.main import main

    out = tmp_path / "run.h5"
    assert main(["-q", "sample", "--chains", "4", "--draws", "2000", "--warmup", "500", "--out", str(out)]) == 0
    code = main(["-q", "analyze", str(out), "--out", str(tmp_path / "an"), "--threshold", "0.5", "--bootstrap", "20"])
    text = capsys.readouterr().out
    assert code == 0
    assert "[canonical]" in text and "[raw]" in text
    import json

    summary = json.loads((tmp_path / "an" / "summary.json").read_text())
    assert summary["canonical"]["kernel_pca"]["left_out_share"] < 1
    assert (tmp_path / "an" / "embedding_3d_canonical.png").stat().st_size > 1000
    assert main(["-q", "analyze", str(out), "--out", str(tmp_path / "an")]) == 2  # not empty, no --force


def test_unrotate_is_the_isometry_of_the_rotation(points10):
    from analysis.comparison import unrotate

    spec = MLPSpec.from_string("2,2")
    theta = np.random.default_rng(8).uniform(-10, 10, size=(40, 18))
    for angle in (120, 240, 33.3):
        rotated = mlp_energy_model(spec, load_dataset("points10", angle)).energy(theta)
        original = mlp_energy_model(spec, points10).energy(unrotate(theta, spec, angle))
        np.testing.assert_allclose(rotated, original, atol=1e-10)
        np.testing.assert_allclose(np.linalg.norm(unrotate(theta, spec, angle) - unrotate(theta[::-1], spec, angle),
                                                  axis=1), np.linalg.norm(theta - theta[::-1], axis=1))


def test_energy_test_accepts_equal_and_rejects_different_distributions():
    from analysis.comparison import energy_test

    rng = np.random.default_rng(9)
    same = energy_test(rng.normal(size=(150, 3)), rng.normal(size=(150, 3)), n_perm=200)
    diff = energy_test(rng.normal(size=(150, 3)), rng.normal(size=(150, 3)) + 0.5, n_perm=200)
    assert same["p_value"] > 0.05 and diff["p_value"] < 0.01


def test_energy_test_by_chains_holds_its_level_where_chains_stick_in_modes():
    # Each chain sits in one of two modes (a multimodal target, chains that do not hop): two runs of one law differ in
    # how many chains landed where. Draw by draw that looks like hundreds of witnesses; chain by chain it is 12.
    from analysis.comparison import energy_test

    def run(rng, p_mode, chains=12, draws=10):
        modes = np.where(rng.random(chains) < p_mode, 3.0, -3.0)
        x = modes[:, None, None] + 0.3 * rng.normal(size=(chains, draws, 3))
        return x.reshape(-1, 3), np.repeat(np.arange(chains), draws)

    rng = np.random.default_rng(11)
    by_draw = by_chain = 0
    for _ in range(20):
        (A, ga), (B, gb) = run(rng, 0.5), run(rng, 0.5)
        by_draw += energy_test(A, B, 100)["p_value"] < 0.05
        by_chain += energy_test(A, B, 100, groups=(ga, gb))["p_value"] < 0.05
    assert by_draw >= 6 and by_chain <= 3  # nominal 1 in 20: draw-level far above it (9), chain-level near it (2)
    for _ in range(3):  # and it still sees a real difference (most chains in the other mode)
        (A, ga), (B, gb) = run(rng, 0.1), run(rng, 0.9)
        assert energy_test(A, B, 100, groups=(ga, gb))["p_value"] < 0.02


def test_matched_procrustes_sees_shape_not_labels():
    from analysis.comparison import matched_procrustes

    rng = np.random.default_rng(10)
    A = np.c_[rng.normal(size=400) * 3, rng.normal(size=400)]  # an elongated cloud
    c, s = np.cos(1.1), np.sin(1.1)
    B = (A @ np.array([[c, -s], [s, c]]).T * 2.5 + 7)[rng.permutation(400)]  # rotated, scaled, moved, shuffled
    assert matched_procrustes(A, B, n=400) < 1e-6  # all points: the very same set, found again
    assert matched_procrustes(A, B, n=200) < 0.05  # different halves of one shape
    ring = rng.normal(size=(400, 2))
    ring /= np.linalg.norm(ring, axis=1, keepdims=True)
    assert matched_procrustes(A, ring, n=200) > 0.1


def test_the_estimators_follow_scikit_learn():
    """get_params/clone, fit(X, y=None) returning self, transform refused before fit, parameters checked in fit,
    and explained_variance_ratio_ per component as in sklearn's PCA."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from analysis.reduction import KernelEmbedding, PlaneFit

    X = np.random.default_rng(0).normal(size=(60, 4))
    emb = KernelEmbedding(3, gamma=0.3, solver="exact")
    assert clone(emb).get_params() == emb.get_params() and emb.get_params()["solver"] == "exact"
    with pytest.raises(NotFittedError):
        emb.transform(X)
    assert emb.fit(X, None) is emb and emb.fit_transform(X).shape == (60, 3)
    assert emb.explained_variance_ratio_.shape == (3,)
    assert emb.explained_kernel_variance_ == pytest.approx(emb.explained_variance_ratio_.sum())
    assert np.all(np.diff(emb.explained_variance_) <= 1e-12) and emb.n_features_in_ == 4
    with pytest.raises(ValueError, match="features"):
        emb.transform(X[:, :3])
    for bad in (KernelEmbedding(0), KernelEmbedding(solver="svd"), KernelEmbedding(gamma=-1.0)):
        with pytest.raises(ValueError):
            bad.fit(X)
    plane = PlaneFit(2)
    with pytest.raises(NotFittedError):
        plane.transform(X[:, :3])
    plane.fit(X[:, :3])
    assert plane.explained_variance_ratio_.shape == (2,) and plane.spectrum_.shape == (3,)
    assert plane.plane_share_ == pytest.approx(plane.explained_variance_ratio_.sum())
    with pytest.raises(ValueError):
        PlaneFit(0).fit(X)
