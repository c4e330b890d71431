"""DSS: tasks, scans, the greedy string and its variants, the store and resume, the disconnection check."""

import math

import numpy as np
import pytest
import torch
from landscapes import Landscape, Synthetic

from dss.baselines import auto_neb, bezier_curve, straight_line
from dss.interpolation import scan_links
from dss.optim import train_to
from dss.store import load_string, save_string
from dss.string import DSSSettings, connect, connect_many, start_string
from dss.sweep import train_models
from dss.tasks import ModuleTask, make_task
from dss.variants import connect_breadth_first

ANNULUS = Landscape(lambda th: (th.norm(dim=1) - 1.0) ** 2)               # one connected, non-convex level set
TWO_BASINS = Landscape(lambda th: torch.minimum((th[:, 0] - 1) ** 2, (th[:, 0] + 1) ** 2) + th[:, 1] ** 2)


def test_mlp_task_matches_functional_call_module():
    task = make_task("cubic", activation="tanh")
    net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4), torch.nn.Tanh(),
                              torch.nn.Linear(4, 1)).double()
    x_tr, y_tr = (torch.as_tensor(a) for a in (task.x_train, task.y_train))
    mt = ModuleTask("cubic-module", net, lambda out, y: (out - y).abs().mean(), (x_tr, y_tr), (x_tr, y_tr))
    theta = task.init(5, torch.Generator().manual_seed(1))
    # our layout: per layer W (in × out) then b; the module's: weight (out × in) then bias
    parts = []
    for w_off, b_off, fan_in, fan_out in task.offsets():
        W = theta[:, w_off:b_off].reshape(-1, fan_in, fan_out)
        parts += [W.transpose(1, 2).reshape(5, -1), theta[:, b_off:b_off + fan_out]]
    assert torch.allclose(task.loss_train(theta), mt.loss_train(torch.cat(parts, 1)), atol=1e-12)


def test_classifier_task_is_the_sampler_energy(points10):
    from mcmc_landscape.models.energy import mlp_energy_model
    from mcmc_landscape.models.nets import MLPSpec

    for act, angle in (("relu", 0.0), ("tanh", 120.0)):
        task = make_task("classifier", arch="2,2", activation=act, angle=angle)
        spec = MLPSpec((2, 2), 2, 2, act)
        theta = np.random.default_rng(0).uniform(-10, 10, (64, spec.n_params))
        numba = mlp_energy_model(spec, points10.rotated(angle)).energy(theta)
        assert np.allclose(task.loss_eval(torch.as_tensor(theta)).numpy(), numba, rtol=1e-10, atol=1e-10)


def test_permuting_hidden_units_keeps_the_loss():
    task = make_task("permutation")
    theta = task.init(3, torch.Generator().manual_seed(0))
    swapped = task.permute_hidden(theta, 0, [1, 0, 2])
    assert not torch.allclose(theta, swapped)
    assert torch.allclose(task.loss_eval(theta), task.loss_eval(swapped), atol=1e-14)


def test_scan_refines_a_peak_between_grid_points():
    peak = 0.4137
    task = Landscape(lambda th: torch.exp(-(((th[:, 0] - peak) / 0.004) ** 2)))
    a, b = torch.tensor([[0.0, 0.0]], dtype=torch.float64), torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    coarse = task.loss_eval(torch.stack([torch.linspace(0, 1, 65, dtype=torch.float64), torch.zeros(65)], 1)).max()
    curve = scan_links(task, a, b)[0]
    assert coarse < 0.9                                   # the grid alone misses the top
    assert abs(curve.t_max - peak) < 1e-6 and curve.max_loss > 1 - 1e-9


def test_train_to_stops_each_row_at_its_own_target():
    task = make_task("quadratic")
    theta = task.init(4, torch.Generator().manual_seed(0))
    targets = torch.tensor([0.1, 0.05, 0.02, 0.02], dtype=torch.float64)
    res = train_to(task, theta, targets, max_steps=5000)
    assert bool(res.reached.all()) and bool((res.loss <= targets).all())
    assert res.steps[0] < res.steps[2]                    # the easy row stopped early


def test_straight_pair_needs_no_beads():
    s = DSSSettings(l0=0.1)
    st = connect(ANNULUS, np.array([1.0, 0.0]), np.array([math.cos(0.3), math.sin(0.3)]), s)
    out = st.outcome(s)
    assert out["connected"] and out["n_beads"] == 2 and out["normalized_length"] == pytest.approx(1.0)
    assert out["grad_steps"] == 0


@pytest.mark.parametrize("variant", ["greedy", "constrained", "breadth-first"])
def test_annulus_is_connected_around_the_hole(variant):
    s = DSSSettings(l0=0.01, lr=0.01, zeta=0.01 if variant == "constrained" else 0.0)
    a, b = np.array([1.0, 0.0]), np.array([-1.0, 0.02])
    assert not straight_line(ANNULUS, a, b, 0.01).found
    st = (connect_breadth_first(ANNULUS, a, b, s) if variant == "breadth-first" else connect(ANNULUS, a, b, s))
    out = st.outcome(s)
    assert out["connected"], out
    assert out["max_interpolated_loss"] <= 0.01
    assert out["n_beads"] >= 3
    # half the circle: π/2 of the straight distance 2, up to the width of the annulus' level set
    assert 1.3 < out["normalized_length"] < 1.9


def test_two_basins_are_not_connected():
    s = DSSSettings(l0=0.05, lr=0.01, max_depth=6)
    st = connect(TWO_BASINS, np.array([1.0, 0.0]), np.array([-1.0, 0.0]), s)
    out = st.outcome(s)
    assert not out["connected"] and out["reason"] == "persistent"
    assert all(f["max_loss"] > 0.5 for f in out["failed_links"])


def test_permuted_copy_is_disconnected_and_independent_models_connect():
    """The paper's appendix D: θ and θ with two hidden units swapped (same function) are not connected; two
    independently trained quadratic models at an easy level are."""
    perm = make_task("permutation")
    s = DSSSettings(l0=0.01, lr=0.01, max_depth=6, max_steps=3000)
    models, reached, _, _ = train_models(perm, 1, s.alpha * s.l0, torch.Generator().manual_seed(0), s, 5000, 5)
    assert bool(reached.all())
    theta = models[0]
    swapped = perm.permute_hidden(theta, 0, [1, 0, 2])
    out = connect(perm, theta.numpy(), swapped.numpy(), s).outcome(s)
    assert not out["connected"] and out["reason"] == "persistent"
    worst = max(out["failed_links"], key=lambda f: f["max_loss"])
    assert worst["max_loss"] > 10 * s.l0                   # the persistent high-loss link, shown in the outcome

    quad = make_task("quadratic")
    s2 = DSSSettings(l0=0.025)
    m, reached, _, _ = train_models(quad, 2, s2.alpha * s2.l0, torch.Generator().manual_seed(3), s2, 5000, 3)
    a, b = m[0].numpy(), m[1].numpy()
    assert not straight_line(quad, a, b, s2.l0).found
    out2 = connect(quad, a, b, s2).outcome(s2)
    assert out2["connected"] and out2["n_beads"] > 2 and out2["max_interpolated_loss"] <= s2.l0


def test_lockstep_strings_equal_strings_alone():
    quad = make_task("quadratic")
    s = DSSSettings(l0=0.025)
    m, _, _, _ = train_models(quad, 4, s.alpha * s.l0, torch.Generator().manual_seed(5), s, 5000, 3)
    alone = [connect(quad, m[2 * k].numpy(), m[2 * k + 1].numpy(), s) for k in range(2)]
    together = connect_many(quad, [start_string(quad, m[2 * k].numpy(), m[2 * k + 1].numpy(), s) for k in range(2)], s)
    for x, y in zip(alone, together, strict=True):
        assert x.order == y.order
        assert np.array_equal(x.path(), y.path())


def test_interrupted_string_resumes_to_the_same_string(tmp_path):
    quad = make_task("cubic")
    s = DSSSettings(l0=0.05)
    m, _, _, _ = train_models(quad, 2, s.alpha * s.l0, torch.Generator().manual_seed(2), s, 5000, 3)
    full = connect(quad, m[0].numpy(), m[1].numpy(), s)
    assert full.rounds >= 3
    path = tmp_path / "s.h5"

    class Stop(Exception):
        pass

    def save_then_stop(st):
        save_string(path, st, {"k": 1}, st.outcome(s))
        if st.rounds == 2:
            raise Stop

    with pytest.raises(Stop):
        connect(quad, m[0].numpy(), m[1].numpy(), s, on_round=save_then_stop)
    state, config, outcome = load_string(path)
    assert config == {"k": 1} and state.rounds == 2 and not state.finished and outcome["rounds"] == 2
    resumed = connect(quad, settings=s, state=state)
    assert resumed.order == full.order
    assert np.array_equal(resumed.path(), full.path())
    assert resumed.outcome(s)["connected"] == full.outcome(s)["connected"]
    save_string(path, resumed, config)
    again, _, _ = load_string(path)
    assert again.order == resumed.order and set(again.curves) == set(resumed.curves)
    assert all(np.array_equal(again.curves[k].loss, resumed.curves[k].loss) for k in again.curves)


def test_bezier_baseline_finds_the_annulus_path():
    res = bezier_curve(ANNULUS, np.array([1.0, 0.0]), np.array([-1.0, 0.3]), 0.05, lr=0.05, max_grad_evals=40000)
    assert res.found and res.max_loss <= 0.05 and res.grad_evals > 0 and res.normalized_length > 1.1


def _ring_points(centres, n_each, seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([c + 0.05 * rng.standard_normal((n_each, 2)) for c in centres])


def test_union_find():
    from dss.graph import UnionFind

    uf = UnionFind(5)
    assert uf.union(0, 1) and uf.union(3, 4) and not uf.union(1, 0)
    assert uf.components() == [[0, 1], [3, 4], [2]]


def test_graph_of_two_basins_has_two_components_and_one_basin_one():
    from dss.graph import GraphSettings, build_graph

    two = Synthetic(lambda th: torch.minimum((th[:, 0] - 1) ** 2, (th[:, 0] + 1) ** 2) + th[:, 1] ** 2)
    pts = _ring_points([np.array([1.0, 0.0]), np.array([-1.0, 0.0])], 5)
    gs = GraphSettings(levels=(0.05, 0.02), max_depth=5, symmetric=0)
    graph = build_graph(two, pts, gs)
    for lv in graph["levels"]:
        assert lv["n_components"] == 2 and sorted(lv["sizes"]) == [5, 5]
        assert sorted(lv["components"][0]) in ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
        assert lv["dss_runs"] < 3 * len(pts)
        assert lv["failed"] and all(f["reason"] in ("persistent", "depth") for f in lv["failed"])
    one = Synthetic(lambda th: (th.norm(dim=1) - 1.0) ** 2)          # the annulus: one curved basin
    angles = np.linspace(0, 2 * np.pi, 10, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1)
    graph = build_graph(one, ring, GraphSettings(levels=(0.01,), symmetric=0))
    lv = graph["levels"][0]
    assert lv["n_components"] == 1 and lv["dss_runs"] <= 3 * len(ring) - 1
    assert len(lv["edges"]) == len(ring) - 1                          # a spanning tree, every edge certified
    assert all(e["max_interpolated_loss"] <= 0.01 for e in lv["edges"])


def test_breadth_first_string_saved_mid_run_resumes_to_the_same_string(tmp_path):
    s = DSSSettings(l0=0.01, lr=0.01)
    a, b = np.array([1.0, 0.0]), np.array([-1.0, 0.02])
    full = connect_breadth_first(ANNULUS, a, b, s)
    assert full.rounds > 5 and full.outcome(s)["connected"]
    path = tmp_path / "bf.h5"

    class Stop(Exception):
        pass

    def save_then_stop(st):
        save_string(path, st, {}, st.outcome(s))
        if st.rounds == 5:
            raise Stop

    with pytest.raises(Stop):
        connect_breadth_first(ANNULUS, a, b, s, on_round=save_then_stop)
    state, _, _ = load_string(path)
    assert state.rounds == 5 and not state.finished
    resumed = connect_breadth_first(ANNULUS, a, b, s, state=state)
    assert resumed.rounds == full.rounds and resumed.order == full.order
    assert np.array_equal(resumed.path(), full.path())
    assert connect_breadth_first(ANNULUS, a, b, s, state=resumed) is resumed  # a finished string is left as it is


def test_autoneb_baseline_goes_around_the_annulus_and_not_between_basins():
    res = auto_neb(ANNULUS, np.array([1.0, 0.0]), np.array([-1.0, 0.02]), 0.01)
    assert res.found and res.max_loss <= 0.01 and res.grad_evals > 0
    assert 1.3 < res.normalized_length < 1.9  # half the circle, as DSS finds it
    res = auto_neb(TWO_BASINS, np.array([1.0, 0.0]), np.array([-1.0, 0.0]), 0.05, max_grad_evals=5000)
    assert not res.found and res.max_loss > 0.5 and 0 < res.grad_evals <= 5000


def test_written_out_lstm_equals_torch_lstm():
    """The LSTM of the PTB task is written cell by cell so vmap batches it; it computes what nn.LSTM computes."""
    from mcmc_landscape.models.zoo import SmallLSTM

    torch.manual_seed(0)
    net = SmallLSTM(vocab=11, embed=4, hidden=5).double()
    ref = torch.nn.LSTM(4, 5, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(net.w_in.weight)
        ref.bias_ih_l0.copy_(net.w_in.bias)
        ref.weight_hh_l0.copy_(net.w_rec.weight)
        ref.bias_hh_l0.zero_()
    tokens = torch.randint(0, 11, (3, 7))
    h, _ = ref(net.embed(tokens))
    torch.testing.assert_close(net(tokens), net.decode(h))


def test_ptb_task_trains_and_connects_on_a_small_corpus(tmp_path):
    d = tmp_path / "ptb"
    d.mkdir()
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    for split, n in (("train", 400), ("valid", 100), ("test", 100)):
        lines = [" ".join(words[(k + j) % 12] for j in range(rng.integers(3, 8))) for k in rng.integers(0, 12, n)]
        (d / f"ptb.{split}.txt").write_text("\n".join(lines) + "\n")
    task = make_task("ptb", data_dir=str(tmp_path), vocab=10, n_train=16, n_eval=8, seq_len=6, hidden=6, layers=1)
    assert task.p == 10 * 6 + 6 * 24 + 24 + 6 * 24 + 6 * 10 + 10 and task.level == "perplexity"
    theta = task.init(1, torch.Generator().manual_seed(5))  # the level is exp(mean cross-entropy per token)
    torch.nn.utils.vector_to_parameters(theta[0], task.module.parameters())
    x, y = task._eval
    with torch.no_grad():
        ce = torch.nn.functional.cross_entropy(task.module(x).reshape(-1, 10), y.reshape(-1))
    torch.testing.assert_close(task.loss_eval(theta)[0], ce.exp())
    task.eval_chunk = 3  # in chunks of held-out windows: the same measure
    torch.testing.assert_close(task.loss_eval(theta)[0], ce.exp())
    s = DSSSettings(l0=math.exp(1.6), lr=0.02, max_steps=3000)
    models, reached, _, _ = train_models(task, 2, s.alpha * s.l0, torch.Generator().manual_seed(0), s, 3000, 1)
    assert bool(reached.all()), task.loss_eval(models)
    out = connect(task, models[0].numpy(), models[1].numpy(), s).outcome(s)
    assert out["connected"] and out["max_interpolated_loss"] <= math.exp(1.6)


def test_scans_in_bounded_batches_give_the_same_curve():
    from dss.interpolation import link_losses

    task = make_task("cubic")
    a, b = task.init(2, torch.Generator().manual_seed(3)), task.init(2, torch.Generator().manual_seed(4))
    t = torch.linspace(0, 1, 33, dtype=a.dtype).expand(2, -1)
    whole = link_losses(task, a, b, t)
    task.eval_batch = 5  # what the convnet tasks set so that memory stays bounded
    torch.testing.assert_close(link_losses(task, a, b, t), whole, rtol=0, atol=1e-12)
