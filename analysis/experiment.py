"""The invariance experiment over transforms of the data, end to end, with the theory's prediction and a verdict that
carries its controls.

Runs, each with its own seed (:func:`run_seed`: from the experiment's seed and the run's name, so no two runs share a
chain's random stream): the untransformed data (the reference), one run per transform
(:mod:`mcmc_landscape.data.transforms`), ``replicates`` runs of the reference data (the null: they must come out *the
same*, as each other and as the reference) and the data with its labels drawn afresh (``control_relabelled``: must
come out *different*). For each run: sample exp(-U/T), diagnose modulo the network's symmetries, analyse (kernel PCA,
good minima and their plane), draw the data. Then, against the reference, in **function space** (each draw's class
probabilities on a probe set, invariant to every weight symmetry; :mod:`analysis.invariance`), whole chains permuted:

* **mapped test** (transforms with a parameter map: affine maps through the first layer, swapped classes through the
  last): the run's draws carried back (:meth:`~mcmc_landscape.data.transforms.Transform.map_back`), cut to the part of
  parameter space inside both boxes (nothing is cut for a box isometry), and compared with the reference's;
* **unmapped test** (the per-transform power control): the same comparison without mapping back;
* **direct test** (label permutation or flips, noise, controls): no map exists; the draws are compared as they are.

A weight-space test on scale-free canonical coordinates is reported beside each. The planted rotations of half the
reference's chains give the power and the minimum detectable rotation; the plane claim is judged against canonical-form
nulls with intervals from whole chains. Holm's correction runs over the verdict table that opens REPORT.md
(:mod:`analysis.experiment_report`). Every stage is stored under the output folder, so ``reuse`` redoes only what is
missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.data.transforms import Transform, parse_transform
from mcmc_landscape.diagnostics import diagnose, json_safe
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import canonicalize
from mcmc_landscape.storage.store import ChainReader

from .comparison import matched_procrustes, plane_angle_degrees
from .experiment_report import report_markdown
from .invariance import (
    ALPHA,
    chain_bootstrap,
    pair_tests,
    plane_verdict,
    probe_points,
    rotation_power,
)
from .minima import percentile_interval, plane_share
from .pipeline import AnalysisSettings, analyze_file, write_outputs
from .reduction import KernelEmbedding, PlaneFit

log = logging.getLogger("mcmc_landscape.experiment")

#: The sampled dose-response controls: differences that grow with the noise level and with the labels changed.
DOSE_TRANSFORMS = ["noise:0.02", "noise:0.05", "noise:0.1", "flip-labels:1", "flip-labels:2", "flip-labels:5"]
DEFAULT_TRANSFORMS = ["rotate:120", "reflect:x", "scale:0.5", "translate:0.2,0", "shear:0.3", "permute-labels",
                      "noise:0.05"]


@dataclass
class SamplingStudySettings:
    """What every invariance study (`experiment`, `rotation`) shares: the network, the sampler and the analysis; the
    defaults reach `diagnose`'s "converged" (bench/RESULTS.md, "Converging the rotation experiment")."""

    arch: str = "2,2"
    activation: str = "relu"
    sampler: str = "pt"
    chains: int = 32
    draws: int = 2000
    warmup: int = 20000
    thin: int = 500
    temps: int = 5
    t_max: float = 20.0
    seed: int = 0
    box: float = 10.0
    temperature: float = 1.0
    threshold: float = 0.1
    max_draws: int = 20000
    n_boot: int = 200
    n_boot_kernel: int = 2  # refits of the embedding for the left-out share's interval (each ~7 CPU-s at the defaults)
    n_test: int = 2000  # rows a side in a two-sample test, spread evenly over the chains
    n_perm: int = 2000  # permutations of whole chains (every split when there are fewer)
    control: bool = True
    labels_seed: int = 1
    replicates: int = 2  # seed controls: runs of the reference data with their own seeds (the null)
    power_splits: int = 20  # random halvings of the reference's chains per planted rotation
    power_angles: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 15.0, 30.0, 45.0, 90.0])
    probe_grid: int = 9  # the probe set: the data points plus a probe_grid × probe_grid lattice
    transported: bool = False  # sample the reference under each non-isometric map's transported box Φ⁻¹(B)


@dataclass
class ExperimentSettings(SamplingStudySettings):
    """Everything that defines an experiment; written to ``settings.toml`` and read back by ``--config``."""

    transforms: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSFORMS))
    data: str = "points10"  # the reference's data (a name or CSV, with transforms after '|')
    dose_response: bool = False  # add the sampled dose-response controls (DOSE_TRANSFORMS), one run each
    transported: bool = True


@dataclass
class RunPlan:
    """One run of the experiment: its folder name, transform (None for the relabelled control) and seed."""

    name: str
    transform: Transform | None
    seed: int
    role: str  # "reference", "transform", "transported", "control_seed", "control_relabelled"
    box_transform: str | None = None  # "transported": the reference data under the box carried back by this transform


def load_toml(path: str | Path) -> dict[str, Any]:
    import tomllib

    with open(path, "rb") as fh:
        return tomllib.load(fh)


def dump_toml(s: Any, title: str = "landscape experiment") -> str:
    lines = [f"# {title} settings (written back by the run; pass with --config to repeat it)"]
    items = asdict(s)
    shared = {f.name for f in fields(SamplingStudySettings)}
    for k in sorted(items, key=lambda k: k in shared):  # the study's own settings first (transforms, angles, ...)
        v = items[k]
        if isinstance(v, bool):
            lines.append(f"{k} = {str(v).lower()}")
        elif isinstance(v, str):
            lines.append(f'{k} = "{v}"')
        elif isinstance(v, list):
            lines.append(f"{k} = [{', '.join(json.dumps(a) if isinstance(a, str) else repr(float(a)) for a in v)}]")
        else:
            lines.append(f"{k} = {v!r}")
    return "\n".join(lines) + "\n"


def run_seed(seed: int, name: str) -> int:
    """The seed of one run, derived from the experiment's seed and the run's name: runs never share a chain's random
    stream, so chains of two runs are independent, as the tests that permute them between runs require."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    return int(np.random.SeedSequence([int(seed), key]).generate_state(1, np.uint32)[0] & 0x7FFFFFFF)


def plan_runs(s: ExperimentSettings, names: dict[str, str] | None = None) -> list[RunPlan]:
    """The reference, one run per transform and the controls (``replicates`` runs of the reference data with their
    own seeds, and the relabelled data); ``names`` renames runs (spec or role → folder). Each run's seed comes from
    :func:`run_seed`."""
    names = names or {}
    ref = names.get("identity", "identity")
    plans = [RunPlan(ref, parse_transform("identity"), run_seed(s.seed, ref), "reference")]
    seen = {plans[0].name}
    specs = list(s.transforms)
    if getattr(s, "dose_response", False):
        given = {parse_transform(t).spec for t in specs}
        specs += [t for t in DOSE_TRANSFORMS if parse_transform(t).spec not in given]
    for spec in specs:
        t = parse_transform(spec)
        name = names.get(spec, t.name)
        if name in seen:
            from mcmc_landscape.errors import SpecError

            raise SpecError(f"transform {spec!r} is given twice; give each transform once.")
        seen.add(name)
        plans.append(RunPlan(name, t, run_seed(s.seed, name), "transform"))
    if s.transported:
        for plan in list(plans[1:]):
            t = plan.transform
            if t.has_parameter_map and not t.box_isometry:
                name = f"{plan.name}_transported_box"
                plans.append(RunPlan(name, parse_transform("identity"), run_seed(s.seed, name), "transported",
                                     box_transform=t.spec))
    if s.control:
        for k in range(1, s.replicates + 1):
            name = "control_seed" if k == 1 else f"control_seed_{k}"
            plans.append(RunPlan(name, parse_transform("identity"), run_seed(s.seed, name), "control_seed"))
        plans.append(RunPlan("control_relabelled", None, run_seed(s.seed, "control_relabelled"),
                             "control_relabelled"))
    return plans


def _sample(s: ExperimentSettings, data: str, seed: int, path: Path, reuse: bool, quiet: bool,
            box_transform: str | None = None) -> None:
    from mcmc_landscape.runs.sampling import start_run

    if reuse and path.exists():
        with ChainReader(path) as r:
            if r.committed_draws >= s.draws and r.config.get("seed") == seed and r.config.get("chains") == s.chains:
                log.info("reusing %s", path)
                return
    cfg = {"arch": s.arch, "activation": s.activation, "sampler": s.sampler, "chains": s.chains, "draws": s.draws,
           "warmup": s.warmup, "thin": s.thin, "seed": seed, "box": s.box, "temperature": s.temperature,
           "data": data}
    if s.sampler == "pt":
        cfg.update(temps=s.temps, t_max=s.t_max)
    if box_transform is not None:
        cfg["box_transform"] = box_transform
    start_run(cfg, path, "chains", force=True, device="auto").run(quiet=quiet)


def sample_task(settings: dict[str, Any], data: str, seed: int, path: str, reuse: bool,
                box_transform: str | None = None) -> str:
    """One run's sampling as a pure task (``--cluster``): it writes its own chain file (resumable, reused when
    complete) and returns the file's path; no arrays pass through the scheduler."""
    _sample(ExperimentSettings(**settings), data, seed, Path(path), reuse, quiet=True, box_transform=box_transform)
    return path


def relabelled_data(s: ExperimentSettings, folder: Path) -> Path:
    """The power control's data: the same 10 points, half of them labelled 1 at random (seed ``labels_seed``)."""
    from mcmc_landscape.data.datasets import load_dataset, write_points_csv

    ds = load_dataset(s.data)
    rng = np.random.default_rng(s.labels_seed)
    y = rng.permutation(np.r_[np.zeros(ds.n // 2, int), np.ones(ds.n - ds.n // 2, int)]).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.csv"
    write_points_csv(replace(ds, y=y), path, header=f"{s.data} with labels drawn afresh (seed {s.labels_seed})")
    return path


def diagnose_modulo_symmetry(path: Path, spec: MLPSpec) -> dict[str, Any]:
    """``diagnose`` on U and the canonical coordinates (modulo the network's symmetries), and on the raw coordinates.

    Symmetric copies of a mode (hidden units permuted, relu units rescaled) are one mode for everything the analysis
    measures, so mixing is judged on what the analysis uses: U and the canonical forms of the draws.
    """
    with ChainReader(path) as r:
        theta, energy, accepted = r.get_chain(), r.get_energy(), r.get("accepted")
        state = r.state()
    bad = int(state["n_nonfinite"].sum()) if "n_nonfinite" in state else 0
    C, D, p = theta.shape
    canon = canonicalize(theta.reshape(-1, p), spec).reshape(C, D, p)
    d = diagnose(canon, energy, accepted, bad).to_dict()
    raw = diagnose(theta, energy, accepted, bad).to_dict()
    d["verdict"] = d["verdict"] + " (judged modulo the network's symmetries: U and the canonical coordinates)"
    d["raw_coordinates"] = {k: raw[k] for k in ("converged", "verdict", "theta_max_rhat", "theta_min_ess_bulk",
                                                 "normality_rejected")}
    if "swap_tried" in state:
        tried = state["swap_tried"].sum(axis=0)
        d["ladder"] = {"temperatures": np.asarray(state["temperatures"]).tolist(),
                       "swap_rates": (state["swap_accepted"].sum(axis=0) / np.maximum(tried, 1)).tolist()}
    return d


def _load(path: Path, units_per_chain: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All committed draws of a run, flattened, with their loss U/n and the exchangeable unit each came from: its
    chain, or with ``units_per_chain`` > 1 one of that many consecutive blocks of its chain."""
    with ChainReader(path) as r:
        energy = r.get_energy()
        n_chains, n = energy.shape
        block = np.arange(n) * units_per_chain // max(n, 1)
        unit = (np.arange(n_chains)[:, None] * units_per_chain + block[None, :]).reshape(-1)
        return r.get_chain(flat=True), energy.reshape(-1) / len(r.extra("data/y")), unit


def data_figure(path: Path, x: np.ndarray, y: np.ndarray, title: str) -> Path:
    from mcmc_landscape.figures import new_figure

    fig = new_figure(figsize=(4, 4))
    ax = fig.subplots()
    for label, colour in ((0, "tab:blue"), (1, "tab:orange")):
        ax.scatter(*x[y == label].T[:2], c=colour, s=60, label=f"class {label}", edgecolors="k")
    lim = max(1.5, float(np.abs(x[:, :2]).max()) * 1.1)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, c="0.8", lw=0.5)
    ax.axvline(0, c="0.8", lw=0.5)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def run_experiment(s: ExperimentSettings, out: str | Path, reuse: bool = False, quiet: bool = False,
                   names: dict[str, str] | None = None, title: str = "Invariance experiment",
                   sheet: str = "figures.png", run_tasks: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Sample, diagnose and analyse every run, compare each with the reference, write results.json and REPORT.md.

    With ``run_tasks`` (``run_tasks(fn, items)`` yields results as tasks complete, e.g. on a Dask cluster) every run's
    sampling is first sent out as one :func:`sample_task`; the analysis then reads the files the tasks wrote."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.toml").write_text(dump_toml(s, title))
    t0 = time.perf_counter()
    plans = plan_runs(s, names)
    a_settings = AnalysisSettings(max_draws=s.max_draws, threshold=s.threshold, n_boot=s.n_boot,
                                  n_boot_kernel=s.n_boot_kernel, seed=s.seed)
    runs: dict[str, Any] = {}
    spec = None
    datas = {}
    for plan in plans:
        folder = out / plan.name
        folder.mkdir(exist_ok=True)
        if plan.transform is None:
            datas[plan.name] = str(relabelled_data(s, folder))
        else:
            datas[plan.name] = s.data if plan.transform.kind == "identity" else f"{s.data}|{plan.transform.spec}"
    if run_tasks is not None:
        items = [(asdict(s), datas[p.name], p.seed, str(out / p.name / "chains.h5"), reuse, p.box_transform)
                 for p in plans]
        for path in run_tasks(sample_task, items):
            log.info("sampled %s", path)
    for plan in plans:
        folder = out / plan.name
        chains = folder / "chains.h5"
        t = time.perf_counter()
        if run_tasks is None:
            _sample(s, datas[plan.name], plan.seed, chains, reuse, quiet, plan.box_transform)
        with ChainReader(chains) as r:
            x, y, widths = r.extra("data/x"), r.extra("data/y"), r.config["widths"]
        spec = MLPSpec.from_widths(widths, s.activation)
        d = diagnose_modulo_symmetry(chains, spec)
        (folder / "diagnosis.json").write_text(json.dumps(json_safe(d), indent=1))
        summary, arrays = analyze_file(str(chains), a_settings)
        write_outputs(summary, arrays, folder / "analysis")
        label = "labels drawn afresh" if plan.transform is None else (
            "another seed" if plan.role == "control_seed" else
            f"box carried back by {plan.box_transform}" if plan.role == "transported" else plan.transform.spec)
        data_figure(folder / "data.png", x, y, f"{plan.name}: {label}")
        runs[plan.name] = {"role": plan.role, "transform": plan.box_transform if plan.role == "transported" else
                           plan.transform.spec if plan.transform else "relabel",
                           "seed": plan.seed, "diagnosis": d,
                           "analysis": {k: summary[k] for k in ("canonical", "raw") if k in summary},
                           "seconds": time.perf_counter() - t}
    comparison = compare(s, out, plans, spec)
    result = {"title": title, "settings": asdict(s), "runs": runs, "comparison": comparison,
              "seconds": time.perf_counter() - t0}
    (out / "results.json").write_text(json.dumps(json_safe(result), indent=1))
    figure_sheet(out, [p.name for p in plans if p.role in ("reference", "transform")], sheet)
    result["sheet"] = sheet
    (out / "REPORT.md").write_text(report_markdown(result))
    return result


def _inside(theta: np.ndarray, box: float) -> np.ndarray:
    return np.all(np.abs(theta) <= box * (1 + 1e-12), axis=1)


def family_size(plans: list[RunPlan]) -> int:
    """The tests of the verdict table that Holm's correction runs over: a mapped and an unmapped row per transform with
    a parameter map, one row per other run, and one per pair of seed replicates."""
    rows = sum(2 if p.role == "transform" and p.transform.has_parameter_map else 1 for p in plans[1:])
    seeds = sum(p.role == "control_seed" for p in plans)
    return rows + seeds * (seeds - 1) // 2


def compare(s: ExperimentSettings, out: Path, plans: list[RunPlan], spec: MLPSpec, units_per_chain: int = 1,
            embedding: bool = True) -> dict[str, Any]:
    """Each run against the reference in function space (deciding) and in scale-free weight space (beside it):
    mapped and unmapped tests for affine transforms, direct ones otherwise; the seed controls against each other
    (the null); the planted rotations that measure the power; the plane claim with its nulls; then one shared
    kernel-PCA embedding (left out with ``embedding=False``). The tests permute whole chains, or with
    ``units_per_chain`` > 1 that many blocks of consecutive draws of each chain."""
    n_family = family_size(plans)
    # enough permutations that a split beating all of them clears Holm's strictest step: 1/(n+1) · m < α/2
    s = replace(s, n_perm=max(s.n_perm, math.ceil(2 * n_family / ALPHA)))
    layout = spec.offsets()
    ref = plans[0].name
    draws = {p.name: _load(out / p.name / "chains.h5", units_per_chain) for p in plans}
    with ChainReader(out / ref / "chains.h5") as r:
        x_ref = r.extra("data/x")
    probes = probe_points(x_ref, s.probe_grid)
    th_ref, loss_ref, ch_ref = draws[ref]
    tests: dict[str, dict[str, Any]] = {}
    by_spec = {p.transform.spec: p.name for p in plans if p.role == "transform"}
    for i, plan in enumerate(plans[1:]):
        th, loss, ch = draws[plan.name]
        entry: dict[str, Any] = {"weight_space": {}}
        if plan.role == "transported":
            tests[plan.name] = _transported_tests(s, spec, plan, draws[by_spec[plan.box_transform]], draws[plan.name],
                                                  probes, s.seed + 10 * i)
            continue
        mappable = plan.transform is not None and plan.transform.has_parameter_map and plan.role == "transform"
        for subset, keep_ref, keep in (("all", np.ones(len(th_ref), bool), np.ones(len(th), bool)),
                                       ("good", loss_ref < s.threshold, loss < s.threshold)):
            R, B, cr, cb = th_ref[keep_ref], th[keep], ch_ref[keep_ref], ch[keep]
            seed = s.seed + 10 * i
            if mappable:
                # mapped back, the run's draws compute on the probes what they computed on the transformed probes
                # (f_θ'(Φ(g)) = f_Φ*θ'(g)), so probing the mapped draws at G is probing the run at Φ(G)
                mapped = plan.transform.map_back(B, layout, spec.n_in)
                in_ref = _inside(plan.transform.carry(R, layout, spec.n_in), s.box)  # reference draws whose image is in B
                in_run = _inside(mapped, s.box)  # mapped draws inside the reference's box
                fn, ws = pair_tests(R[in_ref], mapped[in_run], cr[in_ref], cb[in_run], spec, probes, s.n_test,
                                    s.n_perm, seed, (R[in_ref], mapped[in_run]))
                entry.setdefault("mapped", {})[subset] = fn
                entry["weight_space"].setdefault("mapped", {})[subset] = ws
                fn, ws = pair_tests(R, B, cr, cb, spec, probes, s.n_test, s.n_perm, seed + 2, (R, B))
                entry.setdefault("unmapped", {})[subset] = fn
                entry["weight_space"].setdefault("unmapped", {})[subset] = ws
                entry.setdefault("box_cut_share", {})[subset] = {
                    "reference": float(1 - in_ref.mean()) if len(R) else None,
                    "run": float(1 - in_run.mean()) if len(B) else None}
            else:
                fn, ws = pair_tests(R, B, cr, cb, spec, probes, s.n_test, s.n_perm, seed, (R, B))
                entry.setdefault("direct", {})[subset] = fn
                entry["weight_space"].setdefault("direct", {})[subset] = ws
        tests[plan.name] = entry
    seeds = [p.name for p in plans if p.role == "control_seed"]
    replicate_pairs = []
    for j, a in enumerate(seeds):
        for b in seeds[j + 1 :]:
            (ta, _, ca), (tb, _, cb) = draws[a], draws[b]
            fn, ws = pair_tests(ta, tb, ca, cb, spec, probes, s.n_test, s.n_perm, s.seed + 7 * j + 3, (ta, tb))
            replicate_pairs.append({"a": a, "b": b, "function": fn, "weight_space": ws})
    alpha_power = ALPHA / max(n_family, 1)  # the strictest step of Holm's procedure over the family
    power = rotation_power(th_ref, ch_ref, spec, probes, tuple(s.power_angles), s.power_splits, alpha_power,
                           s.n_perm, s.n_test, s.seed) if spec.n_in == 2 else None
    plane = plane_claim(s, spec, plans, draws)
    shared = shared_embedding(s, spec, [p.name for p in plans], draws) if embedding else \
        {"runs": {}, "left_out_share": None}
    return {"reference": ref, "tests": tests, "replicate_pairs": replicate_pairs, "probes": len(probes),
            "power": power, "alpha_power": alpha_power, "n_perm": s.n_perm, "n_family": n_family, "plane": plane,
            "shared_embedding": shared["runs"],
            "shared_left_out_share": shared["left_out_share"]}


def _transported_tests(s: ExperimentSettings, spec: MLPSpec, plan: RunPlan,
                       run: tuple[np.ndarray, np.ndarray, np.ndarray], transported: tuple[np.ndarray, np.ndarray,
                                                                                          np.ndarray],
                       probes: np.ndarray, seed: int) -> dict[str, Any]:
    """The transformed run carried back (every draw, nothing cut) against the reference data sampled under the box
    carried back, Φ⁻¹(B): predicted equal everywhere."""
    t = parse_transform(plan.box_transform)
    th, loss, ch = run
    tt, lt, ct = transported
    back = t.map_back(th, spec.offsets(), spec.n_in)
    entry: dict[str, Any] = {"weight_space": {}, "of": plan.box_transform}
    for subset, keep_t, keep in (("all", np.ones(len(tt), bool), np.ones(len(th), bool)),
                                 ("good", lt < s.threshold, loss < s.threshold)):
        fn, ws = pair_tests(tt[keep_t], back[keep], ct[keep_t], ch[keep], spec, probes, s.n_test, s.n_perm, seed,
                             (tt[keep_t], back[keep]))
        entry.setdefault("transported", {})[subset] = fn
        entry["weight_space"].setdefault("transported", {})[subset] = ws
    return entry


def plane_claim(s: ExperimentSettings, spec: MLPSpec, plans: list[RunPlan],
                draws: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], max_points: int = 2000
                ) -> dict[str, Any] | None:
    """The report's claim that good minima lie on a plane of the kernel-PCA map, judged on the reference against
    three sets of canonical forms: the good minima of the random-label data set (the relabelled control), the
    high-loss draws, and a Gaussian fitted to the good minima themselves; intervals by resampling whole chains."""
    th, loss, ch = draws[plans[0].name]
    rng = np.random.default_rng(s.seed)
    good = np.flatnonzero(loss < s.threshold)
    if len(good) < 10:
        return None
    good = np.sort(rng.choice(good, min(len(good), max_points), replace=False))
    G = canonicalize(th[good], spec)
    fit_rows = rng.choice(len(th), min(len(th), s.max_draws), replace=False)
    nulls: dict[str, tuple] = {}
    relabelled = [p.name for p in plans if p.role == "control_relabelled"]
    if relabelled:
        tr, lr, cr = draws[relabelled[0]]
        rg = np.flatnonzero(lr < s.threshold)
        rg = np.sort(rng.choice(rg, min(len(rg), max_points), replace=False)) if len(rg) else rg
        nulls["random labels"] = (canonicalize(tr[rg], spec), cr[rg])
    high = np.flatnonzero(loss >= s.threshold)
    if len(high) >= len(good):
        high = np.sort(rng.choice(high, len(good), replace=False))
        nulls["high loss"] = (canonicalize(th[high], spec), ch[high])
    mean, cov = G.mean(axis=0), np.cov(G, rowvar=False)
    nulls["gaussian fit to good minima"] = (
        lambda g: canonicalize(g.multivariate_normal(mean, cov, size=len(G), method="eigh"), spec), None)
    out = plane_verdict(G, ch[good], canonicalize(th[fit_rows], spec), nulls, s.n_boot, ALPHA, s.seed)
    if "random labels" not in out["nulls"] and relabelled:
        out["note"] = "the random-label run has too few good minima to serve as a null"
    return out


def shared_embedding(s: ExperimentSettings, spec: MLPSpec, names: list[str],
                     draws: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """One kernel-PCA fit for all runs (canonical draws as sampled), each run's plane of good minima in it."""
    pooled, good_sets, good_chains = [], {}, {}
    for name in names:
        th, loss, ch = draws[name]
        rng = np.random.default_rng(s.seed)
        keep = rng.choice(len(th), min(len(th), s.max_draws // len(names)), replace=False)
        pooled.append(canonicalize(th[keep], spec))
        good_sets[name] = canonicalize(th[loss < s.threshold], spec)
        good_chains[name] = ch[loss < s.threshold]
    emb = KernelEmbedding(3, random_state=s.seed).fit(np.concatenate(pooled))
    planes, arrangements, shared = {}, {}, {}
    for name in names:
        G = good_sets[name]
        if len(G) > 3:
            Y = emb.transform(G)
            fit = PlaneFit().fit(Y)
            planes[name], arrangements[name] = fit.components_, fit.transform(Y)
            shared[name] = {"n_good": len(G), "explained_variance_ratio": fit.plane_share_,
                            "ci": percentile_interval(chain_bootstrap(plane_share, Y, good_chains[name], s.n_boot,
                                                                      np.random.default_rng(s.seed))),
                            "spectrum_3d": fit.spectrum_.tolist()}
        else:
            shared[name] = {"n_good": len(G), "explained_variance_ratio": None}
    ref = names[0]
    for name in names:
        if name in planes and ref in planes:
            shared[name]["plane_angle_to_reference_deg"] = plane_angle_degrees(planes[ref], planes[name])
            shared[name]["procrustes_to_reference"] = matched_procrustes(arrangements[ref], arrangements[name],
                                                                         random_state=s.seed)
    return {"runs": shared, "left_out_share": emb.left_out_share_}


def figure_sheet(out: Path, names: list[str], filename: str) -> Path:
    """The data sets above, their good minima (canonical, 2-D plane) below: one column per run."""
    import matplotlib.image as mpimg

    from mcmc_landscape.figures import new_figure

    fig = new_figure(figsize=(4.5 * len(names), 8.5))
    axes = fig.subplots(2, len(names))
    axes = np.atleast_2d(axes).reshape(2, -1)
    for j, name in enumerate(names):
        for i, img in enumerate((out / name / "data.png", out / name / "analysis" / "good_minima_2d_canonical.png")):
            axes[i, j].axis("off")
            if img.exists():
                axes[i, j].imshow(mpimg.imread(img))
    fig.tight_layout()
    path = out / filename
    fig.savefig(path, dpi=80)
    return path
