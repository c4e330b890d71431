"""The invariance experiment's statistics: a planted difference is found, a planted sameness is kept, the level holds,
and the runs of an experiment never share a chain's random stream."""

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from analysis.experiment import ExperimentSettings, plan_runs
from analysis.invariance import (
    _energy_stats,
    function_features,
    holm,
    probe_points,
    rotation_power,
    unit_block_sums,
    unit_energy_test,
)
from mcmc_landscape.data.datasets import load_dataset, rotation_matrix
from mcmc_landscape.data.transforms import absorb, parse_transform
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import permute_hidden
from mcmc_landscape.samplers.rng import chain_seeds

SPEC = MLPSpec((2, 2), 2, 2, "relu")


CENTRE = np.random.default_rng(7).uniform(-2, 2, size=SPEC.n_params)


def sticky_chains(n_chains: int, draws: int, seed: int, spread: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Draws of chains that each sit near a mode of their own (scattered about one θ, so the law has a direction a
    rotation of the inputs moves): the dependence between a chain's draws that the tests must respect."""
    rng = np.random.default_rng(seed)
    modes = CENTRE + 0.25 * rng.standard_normal((n_chains, SPEC.n_params))
    theta = modes[:, None, :] + spread * rng.standard_normal((n_chains, draws, SPEC.n_params))
    return theta.reshape(-1, SPEC.n_params), np.repeat(np.arange(n_chains), draws)


@pytest.fixture(scope="module")
def probes():
    return probe_points(load_dataset("points10").x)


def test_block_sums_give_the_energy_distance_of_any_split():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 4))
    units = np.repeat(np.arange(6), 10)
    S = unit_block_sums(X, X, units, units, 6, 6)
    for chosen in ([0, 1, 2], [0, 3, 5], [1, 4, 5]):
        a = np.isin(units, chosen)
        direct = 2 * cdist(X[a], X[~a]).mean() - cdist(X[a], X[a]).mean() - cdist(X[~a], X[~a]).mean()
        z = np.isin(np.arange(6), chosen).astype(float)[None]
        assert _energy_stats(z, S, np.full(6, 10.0))[0] == pytest.approx(direct, rel=1e-12)


def test_few_units_are_enumerated_exactly():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((40, 3)), rng.standard_normal((40, 3)) + 3.0
    t = unit_energy_test(A, B, np.repeat(np.arange(4), 10), np.repeat(np.arange(4), 10), n_perm=1000)
    assert t["exact"] and t["n_perm"] == 70  # C(8, 4) splits
    assert t["p_value"] == pytest.approx(2 / 70)  # the observed split and its mirror image are the most extreme


def test_holm_matches_the_step_down_rule():
    adj = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    assert adj == {"a": pytest.approx(0.03), "b": pytest.approx(0.06), "c": pytest.approx(0.06), "d": None}


def test_a_planted_rotation_of_half_the_chains_is_found_at_45_degrees(probes):
    theta, units = sticky_chains(32, 40, seed=2)
    power = rotation_power(theta, units, SPEC, probes, angles=(0.0, 45.0), n_splits=8, alpha=0.01, n_perm=500)
    assert power["power"][1] == 1.0 and power["min_detectable_deg"] == 45.0
    assert power["power"][0] <= 0.25  # the same halvings without the rotation: the null


def test_a_planted_sameness_is_kept_under_the_symmetry_group_and_a_quarter_turn(probes):
    theta, units = sticky_chains(24, 30, seed=3)
    half = units >= 12
    A, B = theta[~half], theta[half]
    base = unit_energy_test(function_features(A, SPEC, probes), function_features(B, SPEC, probes), units[~half],
                            units[half], n_perm=500)
    rng = np.random.default_rng(4)
    moved = B.copy()  # every draw of B acted on by a random element of the group: permutations and relu rescaling
    for i in range(len(moved)):
        for layer in range(2):
            moved[i] = permute_hidden(moved[i][None], SPEC, layer, rng.permutation(2))[0]
        w_off, b_off, fan_in, width = SPEC.offsets()[0]
        nw_off, nb_off, _, fan_out = SPEC.offsets()[1]
        c = rng.uniform(0.5, 2.0, size=width)
        moved[i, w_off:b_off] = (moved[i, w_off:b_off].reshape(fan_in, width) * c).ravel()
        moved[i, b_off : b_off + width] *= c
        moved[i, nw_off:nb_off] = (moved[i, nw_off:nb_off].reshape(width, fan_out) / c[:, None]).ravel()
    grouped = unit_energy_test(function_features(A, SPEC, probes), function_features(moved, SPEC, probes),
                               units[~half], units[half], n_perm=500)
    # the quarter turn: B's law carried to the rotated problem exactly, probed at the rotated probes (the mapped test)
    quarter = parse_transform("rotate:90")
    turned = absorb(B, SPEC.offsets(), *quarter.affine(2))
    mapped = unit_energy_test(function_features(A, SPEC, probes),
                              function_features(turned, SPEC, probes @ rotation_matrix(90).T), units[~half],
                              units[half], n_perm=500)
    for t in (grouped, mapped):
        assert t["energy_distance"] == pytest.approx(base["energy_distance"], rel=1e-9, abs=1e-12)
        assert t["p_value"] == base["p_value"]
    assert base["p_value"] > 0.01  # two halves of one law
    unmapped = unit_energy_test(function_features(A, SPEC, probes), function_features(turned, SPEC, probes),
                                units[~half], units[half], n_perm=500)
    assert unmapped["p_value"] < 0.01  # not mapped back, the quarter turn is seen


def test_the_level_holds_on_replicates_of_one_law_with_sticky_chains(probes):
    rejected = 0
    for k in range(30):
        A, ua = sticky_chains(10, 20, seed=100 + 2 * k)
        B, ub = sticky_chains(10, 20, seed=101 + 2 * k)
        t = unit_energy_test(function_features(A, SPEC, probes), function_features(B, SPEC, probes), ua, ub,
                             n_perm=200, random_state=k)
        rejected += t["p_value"] < 0.1
    assert rejected <= 8  # 30 × 0.1 = 3 expected; P(Binomial(30, 0.1) > 8) < 0.002


def test_no_two_runs_of_an_experiment_share_a_chain_stream():
    s = ExperimentSettings(transforms=["rotate:90", "reflect:x", "scale:0.5", "permute-labels", "noise:0.1"],
                           replicates=3)
    plans = plan_runs(s)
    assert len({p.seed for p in plans}) == len(plans)
    streams = {p.name: set(chain_seeds(p.seed, s.chains, purpose=1).tolist()) for p in plans}
    for a, b in itertools.combinations(streams, 2):
        assert not streams[a] & streams[b], (a, b)
    assert plan_runs(s)[0].seed == plans[0].seed  # derived, so a repeated experiment repeats its runs


@pytest.mark.parametrize("spec", ["rotate:90", "rotate:120", "reflect:x", "scale:0.5", "translate:0.2,0", "shear:0.3",
                                  "swap-classes"])
def test_each_parameter_map_carries_the_landscape_exactly(spec):
    """U(carry(θ); transformed data) = U(θ; data), map_back undoes carry, and the box isometries keep the box."""
    from mcmc_landscape.models.nets import mlp_logits

    t = parse_transform(spec)
    ds = load_dataset("points10")
    x2, y2 = t.apply(ds.x, ds.y)
    theta = np.random.default_rng(5).uniform(-3, 3, size=(20, SPEC.n_params))
    carried = t.carry(theta, SPEC.offsets(), 2)

    def losses(th, x, y):
        z = mlp_logits(th, SPEC, x)
        z = z - z.max(axis=-1, keepdims=True)
        return -(np.take_along_axis(z, y[None, :, None], axis=-1)[..., 0] - np.log(np.exp(z).sum(axis=-1))).sum(1)

    np.testing.assert_allclose(losses(carried, x2, y2), losses(theta, ds.x, ds.y), rtol=1e-10)
    np.testing.assert_allclose(t.map_back(carried, SPEC.offsets(), 2), theta, atol=1e-12)
    if t.box_isometry:
        assert np.allclose(np.sort(np.abs(carried), axis=1), np.sort(np.abs(theta), axis=1))


def test_flip_labels_changes_exactly_k_labels_and_is_seeded():
    ds = load_dataset("points10")
    for k in (1, 2, 5):
        _, y = parse_transform(f"flip-labels:{k}").apply(ds.x, ds.y)
        assert (y != ds.y).sum() == k and set(np.unique(y)) <= {0, 1}
    a = parse_transform("flip-labels:2@1").apply(ds.x, ds.y)[1]
    assert not np.array_equal(a, parse_transform("flip-labels:2@2").apply(ds.x, ds.y)[1])


def _result(p_mapped: float, p_unmapped: float, p_seed: float, p_relabelled: float, mdr: float | None) -> dict:
    def t(p):
        return {"all": {"p_value": p, "p_interval": [p, p], "energy_distance": 0.1, "units": [16, 16]}, "good": None}

    runs = {"angle_120": {"role": "transform", "transform": "rotate:120"},
            "control_seed": {"role": "control_seed", "transform": "identity"},
            "control_relabelled": {"role": "control_relabelled", "transform": "relabel"}}
    tests = {"angle_120": {"mapped": t(p_mapped), "unmapped": t(p_unmapped)}, "control_seed": {"direct": t(p_seed)},
             "control_relabelled": {"direct": t(p_relabelled)}}
    return {"runs": runs, "comparison": {"tests": tests, "power": {"min_detectable_deg": mdr}}}


def test_a_same_without_power_is_underpowered_never_confirmed():
    from analysis.experiment_report import verdict_rows

    def verdicts(*args):
        return {(r["run"], r["test"]): r["verdict"] for r in verdict_rows(_result(*args))}

    shown = verdicts(0.6, 0.0005, 0.5, 0.0005, 10.0)
    assert shown == {("angle_120", "mapped"): "confirmed", ("angle_120", "unmapped"): "confirmed",
                     ("control_seed", "direct"): "confirmed", ("control_relabelled", "direct"): "confirmed"}
    blind = verdicts(0.6, 0.3, 0.5, 0.3, 10.0)  # the unmapped rotation and the relabelling not seen
    assert blind[("angle_120", "mapped")] == "underpowered" and blind[("control_relabelled", "direct")] == "underpowered"
    assert verdicts(0.6, 0.0005, 0.5, 0.0005, None)[("control_seed", "direct")] == "underpowered"  # no detectable δ
    assert verdicts(0.0005, 0.0005, 0.5, 0.0005, 10.0)[("angle_120", "mapped")] == "refuted"


def test_the_transported_box_runs_are_planned_for_non_isometries_only():
    s = ExperimentSettings(transforms=["rotate:90", "reflect:x", "scale:0.5", "shear:0.3", "noise:0.1"])
    planned = {p.name: p.box_transform for p in plan_runs(s) if p.role == "transported"}
    assert planned == {"scale_0.5_transported_box": "scale:0.5", "shear_0.3_transported_box": "shear:0.3"}


def test_enough_permutations_for_the_family_that_holm_runs_over():
    """A split that beats every permutation must clear Holm's strictest step, however many rows the table has."""
    import math

    from analysis.experiment import family_size
    from analysis.invariance import ALPHA

    s = ExperimentSettings(transforms=["rotate:90", "reflect:x", "scale:0.5", "permute-labels", "noise:0.1"],
                           dose_response=True)
    plans = plan_runs(s)
    m = family_size(plans)
    # 3 maps × 2 rows + 2 direct + 5 dose runs (noise:0.1 is given already) + 1 transported box + 2 seed runs
    # + relabelled + 1 pair of seed runs
    assert m == 3 * 2 + 2 + 5 + 1 + 2 + 1 + 1
    n = max(s.n_perm, math.ceil(2 * m / ALPHA))
    assert m / (n + 1) < ALPHA and 1 / (n + 1) < ALPHA / m  # the table's and the power's strictest levels


def test_a_planted_flattening_has_the_plane_share_it_was_given():
    from analysis.invariance import flatten_off_plane
    from analysis.minima import plane_share

    Y = np.random.default_rng(0).normal(size=(400, 3)) * [3.0, 2.0, 1.0]
    ev = np.sort(np.linalg.eigvalsh(np.cov(Y, rowvar=False)))[::-1]
    for s in (1.0, 0.5, 0.1, 0.0):
        want = ev[:2].sum() / (ev[:2].sum() + s**2 * ev[2])
        assert plane_share(flatten_off_plane(Y, s)) == pytest.approx(want, abs=1e-12)


def test_the_plane_verdict_states_its_power_and_says_underpowered_without_it():
    from analysis.invariance import plane_verdict

    rng = np.random.default_rng(1)
    units = np.repeat(np.arange(20), 15)
    ball = rng.normal(size=(300, 4))
    fit = rng.normal(size=(600, 4))
    nulls = {"another ball": (rng.normal(size=(300, 4)), units)}
    out = plane_verdict(ball, units, fit, nulls, n_boot=100, alpha=0.05)
    assert out["verdict"] == "not shown planar"  # a ball is no plane, and an exact plane would have been seen
    assert out["planted"][-1]["scale"] == 0.0 and out["planted"][-1]["detected"]
    assert out["min_detectable"] is not None and out["min_detectable"]["share"] > out["share"]
    assert out["n_boot"] >= 2 / 0.05  # raised so that beating every resampling clears the level
    # against a null that is itself a plane (three points, each many times) nothing can be shown planar, not even an
    # exact plane: no power, so no verdict of "not planar"
    three = np.repeat(rng.normal(size=(3, 4)), 100, axis=0)
    out = plane_verdict(ball, units, fit, {"a plane": (three, units)}, n_boot=100, alpha=0.05)
    assert out["verdict"] == "underpowered" and out["min_detectable"] is None
    assert not any(r["detected"] for r in out["planted"])


def test_a_dose_family_reports_its_smallest_detected_dose_and_whether_the_distance_rises():
    from analysis.experiment_report import dose_summary

    def row(dist, verdict):
        return {"result": {"energy_distance": dist}, "verdict": verdict}

    doses = [("noise", 0.1, row(0.30, "confirmed")), ("noise", 0.02, row(0.01, "underpowered")),
             ("noise", 0.05, row(0.12, "confirmed")), ("flip-labels", 1, row(0.2, "underpowered")),
             ("flip-labels", 2, row(0.1, "underpowered"))]
    out = dose_summary(doses)
    assert out["noise"] == {"doses": [0.02, 0.05, 0.1], "detected": [0.05, 0.1], "least_detected": 0.05,
                            "monotone": True}
    assert out["flip-labels"]["least_detected"] is None and not out["flip-labels"]["monotone"]
