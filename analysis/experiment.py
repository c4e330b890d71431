"""The invariance experiment over transforms of the data, end to end, with the theory's prediction beside the measurement.

Runs: the untransformed data (the reference), one run per transform (:mod:`mcmc_landscape.data.transforms`), and controls:
the same data with another seed (``control_seed``: must come out *the same*, so a "different" verdict elsewhere is not
the sampler's noise) and the data with its labels drawn afresh (``control_relabelled``: must come out *different*, so
the test has power). For each run: sample exp(-U/T), diagnose modulo the network's symmetries, analyse (kernel PCA,
good minima and their plane), draw the data. Then, against the reference:

* **mapped test** (affine transforms): the run's draws mapped back by the inverse of the first-layer map that absorbs
  the transform (:func:`mcmc_landscape.data.transforms.unabsorb`), cut to the part of parameter space inside both boxes
  (where the map carries one target onto the other exactly), canonicalized, and compared with the reference's
  draws by the energy-distance permutation test, on all draws and on the good minima;
* **unmapped test** (the per-transform power control): the same comparison without mapping back; wherever the
  transform moves the landscape it must come out different, or the mapped test's "same" carries no weight;
* **direct test** (label permutation, noise, controls): no map exists; the draws are compared as they are.

Predictions: an affine transform is absorbed by the first layer, so the mapped draws are predicted the same (exactly
for rotation and reflection; on the shared box only for scale, shear and translation, and the share of draws that
the box cuts away is reported); label permutation and noise are not symmetries and are predicted different.
REPORT.md states, per transform, prediction, measurement and whether they agree. Every stage is stored under the
output folder, so ``reuse`` redoes only what is missing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.data.transforms import Transform, absorb, parse_transform, unabsorb
from mcmc_landscape.diagnostics import diagnose, json_safe
from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import canonicalize
from mcmc_landscape.storage.store import ChainReader

from .comparison import energy_test, matched_procrustes, plane_angle_degrees
from .minima import bootstrap_ci, plane_share
from .pipeline import AnalysisSettings, analyze_file, write_outputs
from .reduction import KernelEmbedding, PlaneFit

log = logging.getLogger("mcmc_landscape.experiment")

ALPHA = 0.01  # a test "detects a difference" below this p-value
DEFAULT_TRANSFORMS = ["rotate:120", "reflect:x", "scale:0.5", "translate:0.2,0", "shear:0.3", "permute-labels",
                      "noise:0.05"]


@dataclass
class SamplingStudySettings:
    """What every invariance study (`experiment`, `rotation`) shares: the network, the sampler and the analysis; the
    defaults reach `diagnose`'s "converged" (bench/RESULTS.md, "Converging the rotation experiment")."""

    arch: str = "2,2"
    activation: str = "relu"
    sampler: str = "pt"
    chains: int = 16
    draws: int = 4000
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
    n_boot_kernel: int = 5
    n_test: int = 500
    n_perm: int = 200
    control: bool = True
    labels_seed: int = 1


@dataclass
class ExperimentSettings(SamplingStudySettings):
    """Everything that defines an experiment; written to ``settings.toml`` and read back by ``--config``."""

    transforms: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSFORMS))
    data: str = "points10"  # the reference's data (a name or CSV, with transforms after '|')
    control_seed: int = 1


@dataclass
class RunPlan:
    """One run of the experiment: its folder name, transform (None for the relabelled control) and seed."""

    name: str
    transform: Transform | None
    seed: int
    role: str  # "reference", "transform", "control_seed", "control_relabelled"


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


def plan_runs(s: ExperimentSettings, names: dict[str, str] | None = None) -> list[RunPlan]:
    """The reference, one run per transform and the controls; ``names`` renames runs (spec or role → folder)."""
    names = names or {}
    plans = [RunPlan(names.get("identity", "identity"), parse_transform("identity"), s.seed, "reference")]
    seen = {plans[0].name}
    for spec in s.transforms:
        t = parse_transform(spec)
        name = names.get(spec, t.name)
        if name in seen:
            from mcmc_landscape.errors import SpecError

            raise SpecError(f"transform {spec!r} is given twice; give each transform once.")
        seen.add(name)
        plans.append(RunPlan(name, t, s.seed, "transform"))
    if s.control:
        plans.append(RunPlan("control_seed", parse_transform("identity"), s.seed + s.control_seed, "control_seed"))
        plans.append(RunPlan("control_relabelled", None, s.seed, "control_relabelled"))
    return plans


def _sample(s: ExperimentSettings, data: str, seed: int, path: Path, reuse: bool, quiet: bool) -> None:
    from mcmc_landscape.runs.sampling import start_run

    if reuse and path.exists():
        with ChainReader(path) as r:
            if r.committed_draws >= s.draws:
                log.info("reusing %s", path)
                return
    cfg = {"arch": s.arch, "activation": s.activation, "sampler": s.sampler, "chains": s.chains, "draws": s.draws,
           "warmup": s.warmup, "thin": s.thin, "seed": seed, "box": s.box, "temperature": s.temperature,
           "data": data}
    if s.sampler == "pt":
        cfg.update(temps=s.temps, t_max=s.t_max)
    start_run(cfg, path, "chains", force=True, device="auto").run(quiet=quiet)


def sample_task(settings: dict[str, Any], data: str, seed: int, path: str, reuse: bool) -> str:
    """One run's sampling as a pure task (``--cluster``): it writes its own chain file (resumable, reused when
    complete) and returns the file's path; no arrays pass through the scheduler."""
    _sample(ExperimentSettings(**settings), data, seed, Path(path), reuse, quiet=True)
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
        items = [(asdict(s), datas[p.name], p.seed, str(out / p.name / "chains.h5"), reuse) for p in plans]
        for path in run_tasks(sample_task, items):
            log.info("sampled %s", path)
    for plan in plans:
        folder = out / plan.name
        chains = folder / "chains.h5"
        t = time.perf_counter()
        if run_tasks is None:
            _sample(s, datas[plan.name], plan.seed, chains, reuse, quiet)
        with ChainReader(chains) as r:
            x, y, widths = r.extra("data/x"), r.extra("data/y"), r.config["widths"]
        spec = MLPSpec.from_widths(widths, s.activation)
        d = diagnose_modulo_symmetry(chains, spec)
        (folder / "diagnosis.json").write_text(json.dumps(json_safe(d), indent=1))
        summary, arrays = analyze_file(str(chains), a_settings)
        write_outputs(summary, arrays, folder / "analysis")
        label = "labels drawn afresh" if plan.transform is None else (
            "another seed" if plan.role == "control_seed" else plan.transform.spec)
        data_figure(folder / "data.png", x, y, f"{plan.name}: {label}")
        runs[plan.name] = {"role": plan.role, "transform": plan.transform.spec if plan.transform else "relabel",
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


def _subsample(n_rows: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, min(n, n_rows), replace=False))


def _test(A: np.ndarray, B: np.ndarray, chains: tuple[np.ndarray, np.ndarray], spec: MLPSpec, s: ExperimentSettings,
          seed: int) -> dict[str, Any] | None:
    """The energy test on at most ``n_test`` draws a side, whole chains permuted (draws of a chain are dependent)."""
    ia, ib = _subsample(len(A), s.n_test, seed), _subsample(len(B), s.n_test, seed + 1)
    if min(len(ia), len(ib)) < 10:
        return None
    return energy_test(canonicalize(A[ia], spec), canonicalize(B[ib], spec), s.n_perm, s.seed,
                       groups=(chains[0][ia], chains[1][ib]))


def compare(s: ExperimentSettings, out: Path, plans: list[RunPlan], spec: MLPSpec, units_per_chain: int = 1,
            embedding: bool = True) -> dict[str, Any]:
    """Each run against the reference: mapped, unmapped or direct tests, then one shared kernel-PCA embedding (left
    out with ``embedding=False``). The tests permute whole chains, or with ``units_per_chain`` > 1 that many blocks of
    consecutive draws of each chain (``bench/comparison_units.py`` shows how the verdicts move with it)."""
    layout = spec.offsets()
    ref = plans[0].name
    draws = {p.name: _load(out / p.name / "chains.h5", units_per_chain) for p in plans}
    th_ref, loss_ref, ch_ref = draws[ref]
    tests: dict[str, dict[str, Any]] = {}
    for i, plan in enumerate(plans[1:]):
        th, loss, ch = draws[plan.name]
        entry: dict[str, Any] = {}
        affine = plan.transform is not None and plan.transform.is_affine and plan.role == "transform"
        for subset, keep_ref, keep in (("all", np.ones(len(th_ref), bool), np.ones(len(th), bool)),
                                       ("good", loss_ref < s.threshold, loss < s.threshold)):
            R, B, cr, cb = th_ref[keep_ref], th[keep], ch_ref[keep_ref], ch[keep]
            seed = s.seed + 10 * i
            if affine:
                A, t = plan.transform.affine(spec.n_in)
                mapped = unabsorb(B, layout, A, t)
                in_ref = _inside(absorb(R, layout, A, t), s.box)  # reference draws whose image lies in the box
                in_run = _inside(mapped, s.box)  # mapped draws inside the reference's box
                entry.setdefault("mapped", {})[subset] = _test(R[in_ref], mapped[in_run], (cr[in_ref], cb[in_run]),
                                                                spec, s, seed)
                entry.setdefault("unmapped", {})[subset] = _test(R, B, (cr, cb), spec, s, seed + 2)
                entry.setdefault("box_cut_share", {})[subset] = {
                    "reference": float(1 - in_ref.mean()) if len(R) else None,
                    "run": float(1 - in_run.mean()) if len(B) else None}
            else:
                entry.setdefault("direct", {})[subset] = _test(R, B, (cr, cb), spec, s, seed)
        tests[plan.name] = entry
    shared = shared_embedding(s, spec, [p.name for p in plans], draws) if embedding else \
        {"runs": {}, "left_out_share": None}
    return {"reference": ref, "tests": tests, "shared_embedding": shared["runs"],
            "shared_left_out_share": shared["left_out_share"]}


def shared_embedding(s: ExperimentSettings, spec: MLPSpec, names: list[str],
                     draws: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """One kernel-PCA fit for all runs (canonical draws as sampled), each run's plane of good minima in it."""
    pooled, good_sets = [], {}
    for name in names:
        th, loss, _ = draws[name]
        rng = np.random.default_rng(s.seed)
        keep = rng.choice(len(th), min(len(th), s.max_draws // len(names)), replace=False)
        pooled.append(canonicalize(th[keep], spec))
        good_sets[name] = canonicalize(th[loss < s.threshold], spec)
    emb = KernelEmbedding(3, random_state=s.seed).fit(np.concatenate(pooled))
    planes, arrangements, shared = {}, {}, {}
    for name in names:
        G = good_sets[name]
        if len(G) > 3:
            Y = emb.transform(G)
            fit = PlaneFit().fit(Y)
            planes[name], arrangements[name] = fit.components_, fit.transform(Y)
            shared[name] = {"n_good": len(G), "explained_variance_ratio": fit.plane_share_,
                            "ci": bootstrap_ci(plane_share, Y, s.n_boot, random_state=s.seed),
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


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def key_test(tests: dict[str, dict | None]) -> tuple[str, dict | None]:
    """The test that decides: on the good minima where there are enough of them, else on all draws."""
    if tests.get("good"):
        return "good minima", tests["good"]
    return "all draws", tests.get("all")


def verdict_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per non-reference run: prediction, measurement and agreement (the numbers REPORT.md states)."""
    rows = []
    for name, entry in result["comparison"]["tests"].items():
        run = result["runs"][name]
        role, spec = run["role"], run["transform"]
        if role == "transform":
            t = parse_transform(spec)
            kind = "mapped" if t.is_affine else "direct"
            predicted_same, theory = t.predicted_same(), t.prediction()
        elif role == "control_seed":
            kind, predicted_same, theory = "direct", True, "the same target sampled again: the same landscape."
        else:
            kind, predicted_same = "direct", False
            theory = "other labels: a different problem, the test must see it (its power)."
        which, test = key_test(entry.get(kind, {}))
        measured_same = None if test is None else test["p_value"] >= ALPHA
        power = None
        if kind == "mapped":
            _, raw = key_test(entry.get("unmapped", {}))
            power = None if raw is None else raw["p_value"] < ALPHA
        rows.append({"run": name, "transform": spec, "role": role, "theory": theory, "test": kind, "on": which,
                     "predicted_same": predicted_same, "measured_same": measured_same,
                     "p_value": None if test is None else test["p_value"],
                     "unmapped_detected": power,
                     "agree": None if measured_same is None else measured_same == predicted_same})
    return rows


def report_markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    sampler = s["sampler"] + (f" ({s['temps']} temperatures up to {s['t_max']:g} T)" if s["sampler"] == "pt" else "")
    lines = [f"# {result['title']}", "",
             f"[{s['arch']}] {s['activation']} network, {sampler} sampler, {s['chains']} chains × {s['draws']} "
             f"draws (thin {s['thin']}, warm-up {s['warmup']}), box L = {s['box']}, T = {s['temperature']}, seed "
             f"{s['seed']}; good minima: loss < {s['threshold']}. Settings: `settings.toml`. Total time "
             f"{result['seconds']:.0f} s.", "", f"![data above, good minima below]({result.get('sheet', 'figures.png')})",
             "", "## Per run", "",
             "Convergence is judged modulo the network's symmetries (hidden-unit permutations, positive rescaling of "
             "relu units, sign flips of tanh/sigmoid units): on U and the canonical coordinates, which is what the "
             "analysis uses; the raw-coordinate verdict is given beside it.", "",
             "| run | data | draws | max R-hat | min ESS | normality rejected | converged | raw coordinates | "
             "good share | 2-D explained variance [95% CI] | seconds |",
             "|---|---|---:|---:|---:|---:|---|---|---:|---|---:|"]
    verdicts = []
    for name, r in result["runs"].items():
        d = r["diagnosis"]
        a = r["analysis"].get("canonical") or r["analysis"]["raw"]
        pl = a.get("plane")
        max_rhat = max(d["energy"]["rhat"] or 0, d["theta_max_rhat"] or 0)
        min_ess = min(d["theta_min_ess_bulk"] or 0, d["theta_min_ess_tail"] or 0, d["energy"]["ess_bulk"] or 0,
                      d["energy"]["ess_tail"] or 0)
        evr = f"{_fmt(pl['explained_variance_ratio'])} [{_fmt(pl['ci'][0])}, {_fmt(pl['ci'][1])}]" if pl else "n/a"
        lines.append(f"| {name} | {r['transform']} | {d['n_chains'] * d['n_draws']} | {max_rhat:.3f} | "
                     f"{min_ess:.0f} | {d['normality_rejected']} | {'yes' if d['converged'] else 'no'} | "
                     f"{'converged' if d['raw_coordinates']['converged'] else 'not converged'} | "
                     f"{_fmt(a['good_share'], '.4f')} | {evr} | {r['seconds']:.0f} |")
        verdicts.append(d["converged"])
    c = result["comparison"]
    lines += ["", "## Prediction and measurement", "",
              f"Reference: `{c['reference']}`. Energy-distance permutation test ({s['n_test']} canonical draws a side, "
              f"{s['n_perm']} permutations of whole chains: the draws of one chain are dependent, the chains are "
              "not), on the good minima where each side has at least 10, else on all draws; "
              f"'same' means p ≥ {ALPHA}. Affine transforms: the run's draws mapped back by the inverse of the "
              "first-layer map and cut to the part of parameter space inside both boxes (*mapped*); the same test "
              "without mapping back is the power control (*unmapped*: it must detect the change).", "",
              "| run | theory | predicted | test | p | p on all draws | measured | unmapped (power control) | "
              "box cut (ref / run) | agree |", "|---|---|---|---|---:|---:|---|---|---|---|"]
    rows = verdict_rows(result)
    for row in rows:
        entry = c["tests"][row["run"]]
        cut = entry.get("box_cut_share", {})
        cut = cut.get("good" if row["on"] == "good minima" else "all") if cut else None
        cut_text = f"{_fmt(cut['reference'], '.2f')} / {_fmt(cut['run'], '.2f')}" if cut else "—"
        if row["unmapped_detected"] is None:
            power = "—"
        else:
            _, raw = key_test(entry.get("unmapped", {}))
            power = f"p = {_fmt(raw['p_value'])}: " + ("detected" if row["unmapped_detected"] else "NOT detected")
        measured = "n/a" if row["measured_same"] is None else ("same" if row["measured_same"] else "different")
        agree = "n/a" if row["agree"] is None else ("**yes**" if row["agree"] else "**no**")
        on_all = (entry.get(row["test"]) or {}).get("all")  # the same test on all draws: more of them, for context
        lines.append(f"| {row['run']} | {row['theory']} | {'same' if row['predicted_same'] else 'different'} | "
                     f"{row['test']}, {row['on']} | {_fmt(row['p_value'])} | "
                     f"{_fmt(on_all['p_value']) if on_all else '—'} | {measured} | {power} | {cut_text} | {agree} |")
    lines += ["", "## Shared embedding", "",
              "One kernel-PCA fit for all runs (canonical draws as sampled, not mapped back); each run's plane of good "
              "minima in it.", "",
              "| run | good minima | 2-D explained variance [95% CI] | plane angle to reference | Procrustes disparity "
              "of the 2-D arrangement to reference |", "|---|---:|---|---:|---:|"]
    for name, sh in c["shared_embedding"].items():
        ci = sh.get("ci") or [None, None]
        lines.append(f"| {name} | {sh['n_good']} | {_fmt(sh.get('explained_variance_ratio'))} [{_fmt(ci[0])}, "
                     f"{_fmt(ci[1])}] | {_fmt(sh.get('plane_angle_to_reference_deg'), '.1f')}° | "
                     f"{_fmt(sh.get('procrustes_to_reference'), '.3f')} |")
    lines += ["", "## Conclusions (generated from the numbers above)", ""]
    lines.append(f"- Convergence: {sum(verdicts)} of {len(verdicts)} runs pass `diagnose` modulo symmetry (R-hat < "
                 "1.01, bulk and tail ESS ≥ 400, chain means consistent with a normal distribution)."
                 + ("" if all(verdicts) else " Where they do not, differences between runs may come from sampling "
                    "rather than from the landscape; run longer (`--draws`, `--thin`) or with more chains."))
    judged = [r for r in rows if r["agree"] is not None]
    agree = [r["run"] for r in judged if r["agree"]]
    disagree = [r["run"] for r in judged if not r["agree"]]
    lines.append(f"- Theory and measurement agree for {len(agree)} of {len(judged)} runs"
                 + (f" ({', '.join(agree)})" if agree else "") + "; they disagree for "
                 + (", ".join(disagree) if disagree else "none") + ".")
    weak = [r["run"] for r in rows if r["unmapped_detected"] is False]
    if weak:
        lines.append(f"- The power control did not detect the unmapped change for {', '.join(weak)}: there the "
                     "mapped 'same' carries little weight.")
    for row in rows:
        if row["role"] == "control_seed" and row["measured_same"] is not None:
            lines.append(f"- Control, same data with another seed: p = {row['p_value']:.3f}, "
                         + ("no difference, as it must be." if row["measured_same"] else
                            "a difference: the runs are not sampled well enough for the other verdicts to hold."))
        if row["role"] == "control_relabelled" and row["measured_same"] is not None:
            lines.append(f"- Control, labels drawn afresh: p = {row['p_value']:.3f}; the test "
                         + ("detects the change of labels, so it has power here." if not row["measured_same"] else
                            "does NOT detect the change of labels, so a 'same' verdict above carries little weight."))
    return "\n".join(lines) + "\n"
