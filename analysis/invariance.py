"""Two-sample tests of sampled landscapes that see what they test, with their controls.

A network's outputs on a fixed probe set are unchanged by every weight symmetry (hidden-unit permutations, sign flips,
positive rescaling), so two runs are compared in **function space**: each draw becomes its class probabilities on the
probe set G (the training points plus a grid over an enlarged bounding box of them). A rotation of the first layer
moves those vectors; the weight-space statistic on canonical coordinates hardly saw it (the output layer carries
products of norms and sets nearly every distance). A weight-space test on scale-free coordinates (per-unit directions
and log norms, standardized) is kept beside it; the function-space test decides.

* :func:`probe_points`, :func:`function_features`, :func:`scale_free_features`: what is compared.
* :func:`unit_energy_test`: the energy distance with whole chains (the exchangeable units) permuted; the permutations
  run on unit-by-unit block sums of the distance matrix, so thousands cost little, and every split is enumerated when
  there are fewer splits than permutations asked for. Each p-value comes with its Monte-Carlo interval.
* :func:`holm`: Holm's step-down adjustment over the runs compared.
* :func:`rotation_power`: the exact positive control: half of a run's chains pushed through
  :func:`~mcmc_landscape.data.transforms.absorb` of a rotation by δ (the exact law of the rotated problem, not mapped back)
  and tested against the other half; the share of random halvings detected is the power at δ, and the smallest δ with
  80% power is the experiment's minimum detectable rotation. At δ = 0 the same halvings are the within-run null.
* :func:`plane_verdict`: is the set of good minima more planar in the kernel-PCA map than sets of canonical forms that
  carry no such structure (the good minima of a random-label data set, the high-loss draws, a Gaussian fitted to the
  good minima)? Intervals and p-values come from resampling whole chains.
"""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import binomtest

from mcmc_landscape.data.transforms import parse_transform
from mcmc_landscape.models.nets import MLPSpec, mlp_probabilities
from mcmc_landscape.models.symmetry import canonicalize

from .minima import percentile_interval, plane_share
from .reduction import KernelEmbedding

ALPHA = 0.01  # a test "detects a difference" below this (Holm-adjusted) p-value
POWER_TARGET = 0.8  # the power at which an effect counts as detectable


def grid_points(x: np.ndarray, grid: int, margin: float = 0.5) -> np.ndarray:
    """A ``grid``^d lattice over the data's range widened by ``margin`` of it on each side (d ≤ 2; none for more
    inputs). It depends on the data only, never on the draws."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if grid < 2 or x.shape[1] > 2:
        return np.zeros((0, x.shape[1]))
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    axes = [np.linspace(a - margin * s, b + margin * s, grid) for a, b, s in zip(lo, hi, span, strict=True)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, x.shape[1])


def probe_points(x: np.ndarray, grid: int = 9, margin: float = 0.25) -> np.ndarray:
    """The training inputs plus a ``grid`` × ``grid`` lattice over their bounding box enlarged by ``margin`` of its
    size on each side (2-D inputs; other dimensions get the data points only)."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[1] != 2:
        return x.copy()
    return np.concatenate([x, grid_points(x, grid, margin)])


def function_features(theta: np.ndarray, spec: MLPSpec, probes: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Each draw's class probabilities on ``probes`` (n, probes) for two classes (the probability of class 1), else
    (n, probes × classes): invariant to every weight symmetry of the network by construction."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    out = []
    for i in range(0, len(theta), chunk):
        prob = mlp_probabilities(theta[i : i + chunk], spec, probes)
        out.append(prob[..., 1] if prob.shape[-1] == 2 else prob.reshape(len(prob), -1))
    return np.concatenate(out) if out else np.zeros((0, len(probes)))


def scale_free_features(theta: np.ndarray, spec: MLPSpec) -> np.ndarray:
    """Canonical coordinates made free of scale: for every unit of every layer, the direction of its incoming weights
    and bias (a unit vector) and the log of their norm. Columns are standardized by the caller on the pooled draws."""
    canon = canonicalize(np.atleast_2d(theta), spec)
    n = len(canon)
    parts = []
    for w_off, b_off, fan_in, fan_out in spec.offsets():
        W = canon[:, w_off:b_off].reshape(n, fan_in, fan_out)
        V = np.concatenate([W, canon[:, None, b_off : b_off + fan_out]], axis=1)  # (n, fan_in + 1, units)
        norm = np.linalg.norm(V, axis=1)
        parts.append((V / np.where(norm > 0, norm, 1.0)[:, None, :]).reshape(n, -1))
        parts.append(np.log(np.maximum(norm, 1e-12)))
    return np.concatenate(parts, axis=1)


def standardize_pooled(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both samples centred and scaled by the pooled mean and SD per column (constant columns left at zero)."""
    pooled = np.concatenate([A, B])
    mu, sd = pooled.mean(axis=0), pooled.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (A - mu) / sd, (B - mu) / sd


def thin_by_unit(units: np.ndarray, max_rows: int) -> np.ndarray:
    """Row indices keeping at most ``max_rows`` rows, spread evenly over units and evenly within each unit."""
    units = np.asarray(units)
    labels = np.unique(units)
    per = max(1, max_rows // max(len(labels), 1))
    keep = []
    for u in labels:
        rows = np.flatnonzero(units == u)
        keep.append(rows if len(rows) <= per else rows[np.linspace(0, len(rows) - 1, per).round().astype(int)])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, int)


def unit_block_sums(F: np.ndarray, G: np.ndarray, units_f: np.ndarray, units_g: np.ndarray, n_f: int, n_g: int
                    ) -> np.ndarray:
    """Σ of the Euclidean distances between the rows of ``F`` of each unit and the rows of ``G`` of each unit
    (n_f × n_g): everything the unit-permutation energy test needs of the data."""
    Mf = np.zeros((n_f, len(F)))
    Mf[units_f, np.arange(len(F))] = 1.0
    Mg = np.zeros((n_g, len(G)))
    Mg[units_g, np.arange(len(G))] = 1.0
    return Mf @ cdist(F, G) @ Mg.T


def _energy_stats(Z: np.ndarray, S: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The energy distance for each row of ``Z`` (1 = the unit is in sample A), from unit block sums."""
    Zc = 1.0 - Z
    na, nb = Z @ counts, Zc @ counts
    ZS, ZcS = Z @ S, Zc @ S
    aa, ab, bb = (ZS * Z).sum(axis=1), (ZS * Zc).sum(axis=1), (ZcS * Zc).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * ab / (na * nb) - aa / na**2 - bb / nb**2


def block_permutation_test(S: np.ndarray, counts: np.ndarray, ua: int, n_perm: int = 2000, random_state: int = 0
                           ) -> dict[str, Any]:
    """The energy-distance permutation test on unit block sums ``S`` (units of sample A first, ``ua`` of them):
    every split enumerated when there are at most ``n_perm``, else ``n_perm`` random ones with the p-value's 95%
    Clopper-Pearson interval for its Monte-Carlo error."""
    n_units = len(counts)
    observed = float(_energy_stats(np.r_[np.ones(ua), np.zeros(n_units - ua)][None], S, counts)[0])
    n_splits = math.comb(n_units, ua)
    exact = n_splits <= n_perm
    if exact:
        Z = np.zeros((n_splits, n_units))
        for k, chosen in enumerate(combinations(range(n_units), ua)):
            Z[k, list(chosen)] = 1.0
    else:
        rng = np.random.default_rng(random_state)
        order = np.argsort(rng.random((n_perm, n_units)), axis=1)[:, :ua]
        Z = np.zeros((n_perm, n_units))
        np.put_along_axis(Z, order, 1.0, axis=1)
    stats = np.concatenate([_energy_stats(Z[i : i + 4096], S, counts) for i in range(0, len(Z), 4096)])
    exceed = int(np.sum(stats >= observed - 1e-12 * abs(observed)))
    if exact:
        p = lo = hi = exceed / n_splits
    else:
        p = (exceed + 1) / (n_perm + 1)
        ci = binomtest(exceed, n_perm).proportion_ci(0.95, method="exact")
        lo, hi = (ci.low * n_perm + 1) / (n_perm + 1), (ci.high * n_perm + 1) / (n_perm + 1)
    return {"energy_distance": observed, "p_value": float(p), "p_interval": [float(lo), float(hi)],
            "n_perm": int(len(Z)), "exact": exact, "units": [ua, n_units - ua]}


def unit_energy_test(A: np.ndarray, B: np.ndarray, units_a: np.ndarray, units_b: np.ndarray, n_perm: int = 2000,
                     random_state: int = 0, max_rows: int = 1000, standardize: bool = False) -> dict[str, Any] | None:
    """The energy-distance test of equal laws with whole units (chains) permuted between the two samples.

    At most ``max_rows`` rows a side are used, spread evenly over the units (draws of one chain are dependent; a few
    dozen spread over a chain carry most of what it says). None when a side has fewer than 2 units or 10 rows."""
    A, B = np.asarray(A, float), np.asarray(B, float)
    ia, ib = thin_by_unit(units_a, max_rows), thin_by_unit(units_b, max_rows)
    if min(len(ia), len(ib)) < 10:
        return None
    A, B = A[ia], B[ib]
    if standardize:
        A, B = standardize_pooled(A, B)
    ga = np.unique(np.asarray(units_a)[ia], return_inverse=True)[1]
    gb = np.unique(np.asarray(units_b)[ib], return_inverse=True)[1]
    ua, ub = int(ga.max()) + 1, int(gb.max()) + 1
    if min(ua, ub) < 2:
        return None
    unit = np.concatenate([ga, gb + ua])
    pooled = np.concatenate([A, B])
    S = unit_block_sums(pooled, pooled, unit, unit, ua + ub, ua + ub)
    out = block_permutation_test(S, np.bincount(unit, minlength=ua + ub).astype(float), ua, n_perm, random_state)
    out["n"] = [len(A), len(B)]
    return out


def holm(p_values: dict[str, float | None]) -> dict[str, float | None]:
    """Holm's step-down adjusted p-values (the family is the non-missing entries)."""
    items = sorted(((p, k) for k, p in p_values.items() if p is not None), key=lambda t: t[0])
    m, running, out = len(items), 0.0, {k: None for k in p_values}
    for i, (p, k) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


def rotation_power(theta: np.ndarray, units: np.ndarray, spec: MLPSpec, probes: np.ndarray,
                   angles: tuple[float, ...] = (0.0, 5.0, 10.0, 15.0, 30.0, 45.0, 90.0), n_splits: int = 20,
                   alpha: float = 0.01, n_perm: int = 1000, max_rows: int = 1000, random_state: int = 0
                   ) -> dict[str, Any]:
    """Power of the function-space test against an exact planted rotation of the inputs.

    For each of ``n_splits`` random halvings of the units (chains), the second half's draws are pushed through
    ``absorb`` of a rotation by δ and tested against the first half at level ``alpha``; the share rejected is the
    power at δ (at δ = 0 it is the test's level on one law). The minimum detectable rotation is the smallest δ > 0
    whose power reaches :data:`POWER_TARGET`. Halves have half the chains of a run, so this is conservative for a
    comparison of two whole runs. Block sums between the plain and the moved draws are computed once per angle, and
    each halving's pooled block matrix is read from them."""
    if spec.n_in != 2:
        return {"angles": [], "power": [], "min_detectable_deg": None, "note": "rotations need 2-D inputs"}
    keep = thin_by_unit(units, max_rows)
    theta = np.asarray(theta)[keep]
    units = np.unique(np.asarray(units)[keep], return_inverse=True)[1]
    n_units = int(units.max()) + 1
    counts = np.bincount(units, minlength=n_units).astype(float)
    base = function_features(theta, spec, probes)
    S00 = unit_block_sums(base, base, units, units, n_units, n_units)
    rng = np.random.default_rng(random_state)
    halves = [rng.permutation(n_units)[: n_units // 2] for _ in range(n_splits)]
    layout = spec.offsets()
    power, pvals = [], []
    for deg in angles:
        moved = function_features(parse_transform(f"rotate:{deg:g}").carry(theta, layout, 2), spec, probes)
        S0m = unit_block_sums(base, moved, units, units, n_units, n_units)
        Smm = unit_block_sums(moved, moved, units, units, n_units, n_units)
        ps = []
        for k, half in enumerate(halves):
            rest = np.setdiff1d(np.arange(n_units), half)
            order = np.r_[rest, half]  # sample A: the plain half; sample B: the moved half
            in_b = np.r_[np.zeros(len(rest), bool), np.ones(len(half), bool)]
            S = np.where(in_b[:, None] & in_b[None, :], Smm[np.ix_(order, order)],
                         np.where(~in_b[:, None] & ~in_b[None, :], S00[np.ix_(order, order)], 0.0))
            cross = S0m[np.ix_(rest, half)]
            S[: len(rest), len(rest) :] = cross
            S[len(rest) :, : len(rest)] = cross.T
            ps.append(block_permutation_test(S, counts[order], len(rest), n_perm, random_state + k)["p_value"])
        pvals.append(ps)
        power.append(float(np.mean(np.asarray(ps) < alpha)))
    detect = [d for d, pw in zip(angles, power, strict=True) if d > 0 and pw >= POWER_TARGET]
    return {"angles": list(angles), "power": power, "p_values": pvals, "alpha": alpha, "n_splits": n_splits,
            "units_per_half": [n_units - n_units // 2, n_units // 2], "rows": int(len(theta)),
            "min_detectable_deg": min(detect) if detect else None,
            "null_rejection_rate": power[list(angles).index(0.0)] if 0.0 in angles else None}


def chain_bootstrap(stat, X: np.ndarray, units: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``stat`` of ``X`` with whole units (chains) resampled with replacement, ``n_boot`` times."""
    labels = np.unique(units)
    rows_of = {u: np.flatnonzero(units == u) for u in labels}
    out = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.choice(labels, len(labels), replace=True)
        rows = np.concatenate([rows_of[u] for u in pick])
        out[b] = stat(X[rows]) if len(rows) > 3 else np.nan
    return out


#: Planted flattenings of the plane claim: the spread of the good minima off their best plane scaled by these factors
#: (1 = as observed, 0 = exactly planar), to find how close to a plane they must lie for the test to say so.
PLANT_SCALES = (0.9, 0.8, 0.65, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0)


def flatten_off_plane(Y: np.ndarray, scale: float) -> np.ndarray:
    """``Y`` (n, 3) with its spread along the least principal axis scaled by ``scale``: a planted plane whose share
    of variance is known, the rest of the arrangement (and each point's chain) unchanged."""
    centre = Y.mean(axis=0)
    _, _, Vt = np.linalg.svd(Y - centre, full_matrices=False)
    normal = Vt[-1]
    off = (Y - centre) @ normal
    return Y - np.outer((1.0 - scale) * off, normal)


def _beats_nulls(boot: np.ndarray, boot_nulls: dict[str, np.ndarray],
                 alpha: float) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each null's p (the bootstrap share of boot - null ≤ 0), Holm-adjusted, and the nulls beaten at ``alpha``."""
    rows = {}
    for name, boot_null in boot_nulls.items():
        diff = boot - boot_null
        ok = np.isfinite(diff)
        rows[name] = {"difference_ci": percentile_interval(diff[ok], 1 - alpha),
                      "p_value": float((1 + np.sum(diff[ok] <= 0)) / (1 + ok.sum()))}
    adjusted = holm({k: v["p_value"] for k, v in rows.items()})
    for k in rows:
        rows[k]["p_holm"] = adjusted[k]
    return rows, [k for k, v in rows.items() if v["p_holm"] is not None and v["p_holm"] < alpha]


def plane_verdict(good: np.ndarray, good_units: np.ndarray, fit_draws: np.ndarray, nulls: dict[str, tuple],
                  n_boot: int = 200, alpha: float = 0.01, random_state: int = 0,
                  plant_scales: tuple[float, ...] = PLANT_SCALES) -> dict[str, Any]:
    """Whether the good minima (canonical forms, with the chain each came from) lie closer to a plane in the 3-D
    kernel-PCA map than structure-free sets of canonical forms, and how close to a plane they would have to lie for
    this test to say so.

    ``fit_draws`` (canonical) fit the embedding; ``nulls`` maps a name to ``(points, units)`` (units None: a
    parametric set, redrawn by ``points`` being a callable ``rng -> points``). The statistic is the share of the 3-D
    variance on the best plane; intervals come from resampling whole chains (good minima come in long runs inside a
    chain, so resampling single draws makes them too narrow). p for each null: the bootstrap share of ref - null ≤ 0;
    Holm over the nulls; the verdict is "planar" only if every null is beaten at ``alpha``.

    The power control: the same test on the good minima flattened toward their best plane (:func:`flatten_off_plane`,
    each factor of ``plant_scales``, chains kept). The least flattening it detects is the smallest effect it can see;
    where it detects none, a negative verdict is "underpowered", never "not planar". ``n_boot`` is raised where
    needed so that a set beating every resampling of every null clears Holm's strictest step (1/(n+1) · m < α/2):
    with fewer, not even an exact plane could be shown planar."""
    n_boot = max(n_boot, math.ceil(2 * max(len(nulls), 1) / alpha))
    rng = np.random.default_rng(random_state)
    emb = KernelEmbedding(3, random_state=random_state).fit(fit_draws)
    Yg = emb.transform(good)
    units = np.asarray(good_units)
    observed = plane_share(Yg)
    boot_ref = chain_bootstrap(plane_share, Yg, units, n_boot, rng)
    info, boot_nulls = {}, {}
    for name, (pts, null_units) in nulls.items():
        if callable(pts):
            draws = [pts(rng) for _ in range(n_boot + 1)]
            null_obs = plane_share(emb.transform(draws[0]))
            boot_nulls[name] = np.array([plane_share(emb.transform(d)) for d in draws[1:]])
            n = len(draws[0])
        else:
            if len(pts) <= 3:
                continue
            Yn = emb.transform(pts)
            null_obs = plane_share(Yn)
            boot_nulls[name] = chain_bootstrap(plane_share, Yn, np.asarray(null_units), n_boot, rng)
            n = len(pts)
        info[name] = {"share": null_obs, "ci": percentile_interval(boot_nulls[name]), "n": int(n)}
    tests, beaten = _beats_nulls(boot_ref, boot_nulls, alpha)
    rows = {k: {**info[k], **tests[k]} for k in info}
    planted = []
    for scale in plant_scales:
        Ys = flatten_off_plane(Yg, scale)
        _, hit = _beats_nulls(chain_bootstrap(plane_share, Ys, units, n_boot, rng), boot_nulls, alpha)
        planted.append({"scale": float(scale), "share": plane_share(Ys),
                        "detected": bool(boot_nulls) and len(hit) == len(boot_nulls)})
    seen = [r for r in planted if r["detected"]]
    least = max(seen, key=lambda r: r["scale"]) if seen else None
    if rows and len(beaten) == len(rows):
        verdict = "planar"
    elif least is None:
        verdict = "underpowered"
    else:
        verdict = "not shown planar"
    return {"share": observed, "ci": percentile_interval(boot_ref), "n_good": int(len(good)),
            "n_chains": int(len(np.unique(units))), "nulls": rows, "verdict": verdict,
            "beaten": beaten, "alpha": alpha, "n_boot": n_boot, "planted": planted,
            "min_detectable": least}


def pair_tests(RA: np.ndarray, RB: np.ndarray, ua: np.ndarray, ub: np.ndarray, spec: MLPSpec, probes: np.ndarray,
               n_test: int, n_perm: int, seed: int, weights: tuple[np.ndarray, np.ndarray]
               ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The function-space test (class probabilities of A's and of B's draws on ``probes``) and the
    weight-space test (scale-free canonical coordinates of ``weights``, standardized), whole units permuted; at most
    ``n_test`` draws of each side, thinned evenly over the units. (None, None) with under 10 draws on a side."""
    ia, ib = thin_by_unit(ua, n_test), thin_by_unit(ub, n_test)
    if min(len(ia), len(ib)) < 10:
        return None, None
    fa, fb = function_features(RA[ia], spec, probes), function_features(RB[ib], spec, probes)
    fn = unit_energy_test(fa, fb, ua[ia], ub[ib], n_perm, seed, max_rows=n_test)
    wa, wb = scale_free_features(weights[0][ia], spec), scale_free_features(weights[1][ib], spec)
    ws = unit_energy_test(wa, wb, ua[ia], ub[ib], n_perm, seed, max_rows=n_test, standardize=True)
    return fn, ws
