"""The rotation experiment of the report, end to end and measured.

For each angle: rotate the 10-point data set, sample exp(-U), diagnose, run the analysis pipeline. Then compare:
(a) map every angle's draws back to angle 0 by the isometry W1 → Rᵀ W1 and test them against the angle-0 draws
(energy distance, permutation p-value), canonicalized modulo hidden-unit symmetries; (b) one kernel-PCA fit shared by
all angles, with each angle's plane of good minima, its explained-variance spectrum, the principal angle between
planes and the Procrustes disparity of the 2-D arrangements (pairs found by assignment); (c) a control that must
come out different: angle 0 with its labels drawn afresh. Every stage is stored under the output folder, so ``reuse``
redoes only what is missing. REPORT.md is generated from the numbers.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.diagnostics import diagnose, json_safe
from mcmc_landscape.nets import MLPSpec
from mcmc_landscape.store import ChainReader
from mcmc_landscape.symmetry import canonicalize

from .comparison import energy_test, matched_procrustes, plane_angle_degrees, unrotate
from .minima import bootstrap_ci, plane_share
from .pipeline import AnalysisSettings, analyze_file, write_outputs
from .reduction import KernelEmbedding, PlaneFit

log = logging.getLogger("mcmc_landscape.rotation")


@dataclass
class RotationSettings:
    angles: list[float] = field(default_factory=lambda: [0.0, 120.0, 240.0])
    arch: str = "2,2"
    activation: str = "relu"
    sampler: str = "rw"
    chains: int = 32
    draws: int = 10000
    warmup: int = 100000
    thin: int = 100
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


def load_toml(path: str | Path) -> dict[str, Any]:
    import tomllib

    with open(path, "rb") as fh:
        return tomllib.load(fh)


def dump_toml(s: RotationSettings) -> str:
    lines = ["# landscape rotation settings (written back by the run; pass with --config to repeat it)"]
    for k, v in asdict(s).items():
        if isinstance(v, bool):
            lines.append(f"{k} = {str(v).lower()}")
        elif isinstance(v, str):
            lines.append(f'{k} = "{v}"')
        elif isinstance(v, list):
            lines.append(f"{k} = [{', '.join(repr(float(a)) for a in v)}]")
        else:
            lines.append(f"{k} = {v!r}")
    return "\n".join(lines) + "\n"


def _sample(s: RotationSettings, angle: float, path: Path, reuse: bool, quiet: bool, extra: dict | None = None) -> None:
    from mcmc_landscape.sampling import start_run

    if reuse and path.exists():
        with ChainReader(path) as r:
            if r.committed_draws >= s.draws:
                log.info("reusing %s", path)
                return
    cfg = {"arch": s.arch, "activation": s.activation, "sampler": s.sampler, "chains": s.chains, "draws": s.draws,
           "warmup": s.warmup, "thin": s.thin, "seed": s.seed, "box": s.box, "temperature": s.temperature,
           "angle": float(angle), **(extra or {})}
    start_run(cfg, path, "chains", force=True, device="auto").run(quiet=quiet)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """All committed draws of a run, flattened, with their loss U/n."""
    with ChainReader(path) as r:
        return r.get_chain(flat=True), r.get_energy(flat=True) / len(r.extra("data/y"))


def _in_both_boxes(theta0: np.ndarray, spec: MLPSpec, angles: tuple[float, float], box: float) -> np.ndarray:
    """Rows (in angle-0 coordinates) inside the images of the box of both runs: B_a = {θ : unrotate(θ, -a) ∈ B}."""
    keep = np.ones(len(theta0), bool)
    for a in angles:
        keep &= np.all(np.abs(unrotate(theta0, spec, -a)) <= box * (1 + 1e-12), axis=1)
    return keep


def _matched_samples(pool_ref: np.ndarray, pool: np.ndarray, spec: MLPSpec, a_ref: float, a: float, box: float,
                     n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Both runs mapped to angle 0 and cut to the intersection of their boxes, where the isometry is exact; then
    ``n`` random draws of each, canonicalized."""
    out = []
    for k, (P, angle) in enumerate(((pool_ref, a_ref), (pool, a))):
        T = unrotate(P, spec, angle)
        T = T[_in_both_boxes(T, spec, (a_ref, a), box)]
        rng = np.random.default_rng(seed + k)
        T = T[np.sort(rng.choice(len(T), min(n, len(T)), replace=False))]
        out.append(canonicalize(T, spec) if len(T) else T)
    return out[0], out[1]


def relabelled_data(s: RotationSettings, folder: Path) -> Path:
    """The control's data: the same 10 points, half of them labelled 1 at random (seed ``labels_seed``), as a CSV."""
    from mcmc_landscape.data import load_dataset, write_points_csv

    ds = load_dataset("points10")
    rng = np.random.default_rng(s.labels_seed)
    y = rng.permutation(np.r_[np.zeros(ds.n // 2, int), np.ones(ds.n - ds.n // 2, int)]).astype(np.int64)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "data.csv"
    write_points_csv(replace(ds, y=y), path, header=f"points10 with labels drawn afresh (seed {s.labels_seed})")
    return path


def data_figure(path: Path, x: np.ndarray, y: np.ndarray, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    for label, colour in ((0, "tab:blue"), (1, "tab:orange")):
        ax.scatter(*x[y == label].T, c=colour, s=60, label=f"class {label}", edgecolors="k")
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_aspect("equal")
    ax.axhline(0, c="0.8", lw=0.5)
    ax.axvline(0, c="0.8", lw=0.5)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run_rotation(s: RotationSettings, out: str | Path, reuse: bool = False, quiet: bool = False) -> dict[str, Any]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "settings.toml").write_text(dump_toml(s))
    t0 = time.perf_counter()
    a_settings = AnalysisSettings(max_draws=s.max_draws, threshold=s.threshold, n_boot=s.n_boot,
                                  n_boot_kernel=s.n_boot_kernel, seed=s.seed)
    per_angle: dict[str, Any] = {}
    runs = [(f"angle_{a:g}", a, None) for a in s.angles]
    if s.control:
        runs.append(("control_relabelled", s.angles[0], {"data": str(relabelled_data(s, out / "control_relabelled"))}))
    for name, angle, extra in runs:
        folder = out / name
        folder.mkdir(exist_ok=True)
        chains = folder / "chains.h5"
        t = time.perf_counter()
        _sample(s, angle, chains, reuse, quiet, extra)
        with ChainReader(chains) as r:
            d = diagnose(r.get_chain(), r.get_energy(), r.get("accepted"), int(r.state()["n_nonfinite"].sum())
                         if "n_nonfinite" in r.state() else 0)
            x, y = r.extra("data/x"), r.extra("data/y")
        (folder / "diagnosis.json").write_text(json.dumps(d.to_dict(), indent=1))
        summary, arrays = analyze_file(str(chains), a_settings)
        write_outputs(summary, arrays, folder / "analysis")
        data_figure(folder / "data.png", x, y, f"data rotated by {angle:g}°" + (" (labels re-drawn)" if extra else ""))
        per_angle[name] = {"angle": angle, "control": bool(extra), "diagnosis": d.to_dict(),
                           "analysis": {k: summary[k] for k in ("canonical", "raw") if k in summary},
                           "seconds": time.perf_counter() - t}
    comparison = compare(s, out, [n for n, _, _ in runs], [a for _, a, _ in runs])
    result = {"settings": asdict(s), "runs": per_angle, "comparison": comparison,
              "seconds": time.perf_counter() - t0}
    (out / "results.json").write_text(json.dumps(json_safe(result), indent=1))
    six_figures(out, runs)
    (out / "REPORT.md").write_text(report_markdown(result))
    return result


def compare(s: RotationSettings, out: Path, names: list[str], angles: list[float]) -> dict[str, Any]:
    spec = MLPSpec.from_string(s.arch, activation=s.activation)
    # (a) the isometry test, on all draws and on the good minima alone (the isometry preserves the energy, so both
    # sets must match); the good minima depend on the labels most, which gives the test its power. Draws are compared
    # in angle-0 coordinates on the intersection of the two runs' boxes, where the isometry maps one target onto the
    # other exactly.
    ref = names[0]
    draws = {name: _load(out / name / "chains.h5") for name in names}
    tests: dict[str, dict[str, Any]] = {}
    for subset, thr in (("all", None), ("good", s.threshold)):
        pools = {name: th if thr is None else th[loss < thr] for name, (th, loss) in draws.items()}
        for i, (name, angle) in enumerate(zip(names[1:], angles[1:], strict=True)):
            A, B = _matched_samples(pools[ref], pools[name], spec, angles[0], angle, s.box, s.n_test, s.seed + 2 * i)
            if min(len(A), len(B)) >= 10:
                tests.setdefault(name, {})[subset] = energy_test(A, B, s.n_perm, s.seed)
    # (b) one kernel-PCA fit shared by all angles, on the draws as sampled (canonicalized, not mapped back)
    pooled, good_sets = [], {}
    for name in names:
        th, loss = draws[name]
        rng = np.random.default_rng(s.seed)
        keep = rng.choice(len(th), min(len(th), s.max_draws // len(names)), replace=False)
        pooled.append(canonicalize(th[keep], spec))  # canonicalization is row by row: only the rows used
        good_sets[name] = canonicalize(th[loss < s.threshold], spec)
    emb = KernelEmbedding(3, random_state=s.seed).fit(np.concatenate(pooled))
    planes, arrangements, shared = {}, {}, {}
    for name in names:
        G = good_sets[name]
        if len(G) > 3:
            Y = emb.transform(G)
            fit = PlaneFit().fit(Y)
            planes[name] = fit.components_
            arrangements[name] = fit.transform(Y)
            shared[name] = {"n_good": len(G), "explained_variance_ratio": fit.explained_variance_ratio_,
                            "ci": bootstrap_ci(plane_share, Y, s.n_boot, random_state=s.seed),
                            "spectrum_3d": fit.spectrum_.tolist()}
        else:
            shared[name] = {"n_good": len(G), "explained_variance_ratio": None}
    for name in names:
        if name in planes and ref in planes:
            shared[name]["plane_angle_to_reference_deg"] = plane_angle_degrees(planes[ref], planes[name])
            shared[name]["procrustes_to_reference"] = matched_procrustes(arrangements[ref], arrangements[name],
                                                                         random_state=s.seed)
    return {"reference": ref, "isometry_tests": tests, "shared_embedding": shared,
            "shared_left_out_share": emb.left_out_share_}


def six_figures(out: Path, runs: list) -> Path:
    """The report's six figures in one sheet: the rotated data sets above, their good minima below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    angles = [(n, a) for n, a, extra in runs if extra is None]
    fig, axes = plt.subplots(2, len(angles), figsize=(4.5 * len(angles), 8.5))
    axes = np.atleast_2d(axes).reshape(2, -1)
    for j, (name, _) in enumerate(angles):
        for i, img in enumerate((out / name / "data.png", out / name / "analysis" / "good_minima_2d_canonical.png")):
            axes[i, j].axis("off")
            if img.exists():
                axes[i, j].imshow(mpimg.imread(img))
    fig.tight_layout()
    path = out / "six_figures.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def report_markdown(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = ["# Rotation experiment", "",
             f"[{s['arch']}] {s['activation']} network, {s['sampler']} sampler, {s['chains']} chains × {s['draws']} "
             f"draws (thin {s['thin']}, warm-up {s['warmup']}), box L = {s['box']}, T = {s['temperature']}, seed "
             f"{s['seed']}; good minima: loss < {s['threshold']}. Settings: `settings.toml`. Total time "
             f"{result['seconds']:.0f} s.", "", "![the six figures](six_figures.png)", "",
             "## Per run", "",
             "| run | angle | draws | max R-hat | min ESS | converged | left-out kernel variance | pre-image error | "
             "good share | 2-D explained variance [95% CI] | null: uniform / gaussian / high-loss |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|"]
    verdicts = []
    for name, r in result["runs"].items():
        d = r["diagnosis"]
        a = r["analysis"].get("canonical") or r["analysis"]["raw"]
        k = a["kernel_pca"]
        pl = a.get("plane")
        max_rhat = max(d["energy"]["rhat"] or 0, d["theta_max_rhat"] or 0)
        min_ess = min(d["theta_min_ess_bulk"] or 0, d["theta_min_ess_tail"] or 0, d["energy"]["ess_bulk"] or 0)
        evr = f"{_fmt(pl['explained_variance_ratio'])} [{_fmt(pl['ci'][0])}, {_fmt(pl['ci'][1])}]" if pl else "n/a"
        nulls = " / ".join(_fmt(pl["null"].get(n, {}).get("explained_variance_ratio"))
                           for n in ("uniform", "gaussian", "high_loss")) if pl else "n/a"
        lines.append(f"| {name} | {r['angle']:g} | {d['n_chains'] * d['n_draws']} | {max_rhat:.3f} | {min_ess:.0f} | "
                     f"{'yes' if d['converged'] else 'no'} | {_fmt(k['left_out_share'], '.4f')} | "
                     f"{_fmt(k['reconstruction_error'], '.4f')} | {_fmt(a['good_share'], '.4f')} | {evr} | {nulls} |")
        verdicts.append(d["converged"])
    c = result["comparison"]
    lines += ["", "## Comparison", "", f"Reference: `{c['reference']}`. Draws of each run are mapped back to angle 0 by "
              "the isometry W1 → Rᵀ W1, cut to the intersection of both runs' boxes (where the isometry is exact), "
              "canonicalized, and tested against the reference (energy distance, "
              f"permutation p-value, {s['n_test']} draws each, {s['n_perm']} permutations).", "",
              "| run | all draws: energy distance, p | good minima: energy distance, p | good minima | "
              "2-D explained variance (shared fit) [95% CI] | plane angle to reference | "
              "Procrustes disparity of the 2-D arrangement to reference |",
              "|---|---|---|---:|---|---:|---:|"]

    def cell(t: dict | None) -> str:
        return f"{_fmt(t['energy_distance'], '.4f')}, p = {_fmt(t['p_value'], '.3f')}" if t else "—"

    for name, sh in c["shared_embedding"].items():
        t = c["isometry_tests"].get(name, {})
        ev = sh.get("explained_variance_ratio")
        ci = sh.get("ci") or [None, None]
        lines.append(f"| {name} | {cell(t.get('all'))} | {cell(t.get('good'))} | {sh['n_good']} | "
                     f"{_fmt(ev)} [{_fmt(ci[0])}, {_fmt(ci[1])}] | "
                     f"{_fmt(sh.get('plane_angle_to_reference_deg'), '.1f')}° | "
                     f"{_fmt(sh.get('procrustes_to_reference'), '.3f')} |")
    lines += ["", "## Conclusions (generated from the numbers above)", ""]
    rotated = [n for n, r in result["runs"].items() if not r["control"] and n != c["reference"]]
    control = [n for n, r in result["runs"].items() if r["control"]]

    def key_test(n: str) -> tuple[str, dict]:
        t = c["isometry_tests"].get(n, {})
        return ("good minima", t["good"]) if "good" in t else ("all draws", t["all"])

    same = [n for n in rotated if key_test(n)[1]["p_value"] >= 0.01]
    lines.append(f"- Convergence: {sum(verdicts)} of {len(verdicts)} runs pass `diagnose` (R-hat < 1.01, ESS ≥ 400)."
                 + ("" if all(verdicts) else " Where they do not, differences between runs may come from sampling "
                    "rather than from the landscape; run longer (`--draws`, `--thin`) or use `--sampler hmc`."))
    lines.append(f"- Isometry: {len(same)} of {len(rotated)} rotated runs are statistically indistinguishable from the "
                 "reference after mapping back (p ≥ 0.01; the test on good minima where there are enough, else on all "
                 "draws): " + (", ".join(same) or "none") + ".")
    for n in control:
        which, t = key_test(n)
        p = t["p_value"]
        lines.append(f"- Control ({n}, test on {which}): p = {p:.3f}; the test "
                     + ("detects" if p < 0.01 else "does NOT detect")
                     + " the change of labels, " + ("so it has power here." if p < 0.01 else
                                                    "so a 'same' verdict above carries little weight."))
    evs = [c["shared_embedding"][n]["explained_variance_ratio"] for n in [c["reference"], *rotated]]
    if all(e is not None for e in evs):
        lines.append(f"- Plane of good minima in the shared embedding: explained variance {min(evs):.3f}–{max(evs):.3f} "
                     "across angles.")
    return "\n".join(lines) + "\n"
