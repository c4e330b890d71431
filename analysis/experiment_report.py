"""REPORT.md of an invariance experiment: one verdict table first, then the evidence behind each verdict.

A verdict is **confirmed**, **refuted** or **underpowered**. A prediction of "same" is confirmed only where the test
is shown to have power (the unmapped power control of that transform is detected, and the planted rotations give a
minimum detectable rotation); without power the verdict is "underpowered", never "same". A prediction of "different"
is confirmed by a rejection; a non-rejection is "underpowered" (absence of evidence is not evidence of sameness).
All p-values of the table are Holm-adjusted together.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mcmc_landscape.data.transforms import parse_transform

from .invariance import ALPHA, holm


def _fmt(v: Any, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _p_text(test: dict[str, Any] | None) -> str:
    if not test:
        return "n/a"
    lo, hi = test.get("p_interval", [test["p_value"]] * 2)
    exact = " exact" if test.get("exact") else ""
    return f"{test['p_value']:.4f} [{lo:.4f}, {hi:.4f}]{exact}"


def verdict_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the verdict table: each run's deciding test (function space, all draws), each affine transform's
    unmapped power control, and each pair of seed controls; Holm-adjusted together."""
    c = result["comparison"]
    power = c.get("power") or {}
    mdr = power.get("min_detectable_deg")
    rows: list[dict[str, Any]] = []
    for name, entry in c["tests"].items():
        run = result["runs"][name]
        role, spec = run["role"], run["transform"]
        if role == "transform":
            t = parse_transform(spec)
            kind = "mapped" if "mapped" in entry else "direct"
            predicted_same, theory = t.predicted_same(), t.prediction()
            if kind == "mapped" and not t.box_isometry:
                theory += " Tested on the draws inside both boxes (B ∩ Φ⁻¹B)."
            if kind == "mapped" and t.kind in ("scale", "shear", "translate"):
                theory += (" Carried back, the run's chains moved with other proposals than the reference's (the map "
                           "is not an isometry of parameter space), so this row's level rests on both runs having "
                           "converged, not on the chains being exchangeable.")
        elif role == "transported":
            kind, predicted_same = "transported", True
            theory = (f"the reference data sampled under the box carried back by {spec} (Φ⁻¹(B), a parallelepiped; a "
                      "random walk rejects outside it exactly): predicted equal everywhere to the transformed run "
                      "carried back, with nothing cut. The two runs' chains move with different proposals, so the "
                      "level rests on both having converged.")
        elif role == "control_seed":
            kind, predicted_same, theory = "direct", True, "the same target sampled with its own seed: the same landscape."
        else:
            kind, predicted_same = "direct", False
            theory = "labels drawn afresh: a different problem, the test must see it (its power)."
        rows.append({"run": name, "transform": spec, "role": role, "theory": theory, "test": kind,
                     "predicted_same": predicted_same, "result": (entry.get(kind) or {}).get("all"),
                     "weight_space": ((entry.get("weight_space") or {}).get(kind) or {}).get("all"),
                     "good": (entry.get(kind) or {}).get("good")})
        if kind == "mapped":
            rows.append({"run": name, "transform": spec, "role": "power_control", "test": "unmapped",
                         "theory": "not mapped back: the rotated/reflected/stretched functions differ from the "
                                   "reference's, and the test must see it (this transform's power control).",
                         "predicted_same": False, "result": (entry.get("unmapped") or {}).get("all"),
                         "weight_space": ((entry.get("weight_space") or {}).get("unmapped") or {}).get("all"),
                         "good": (entry.get("unmapped") or {}).get("good")})
    for pair in c.get("replicate_pairs", []):
        rows.append({"run": f"{pair['a']} vs {pair['b']}", "transform": "identity", "role": "replicate_pair",
                     "test": "direct", "theory": "two runs of the same target with their own seeds (the null).",
                     "predicted_same": True, "result": pair["function"], "weight_space": pair["weight_space"],
                     "good": None})
    adjusted = holm({str(k): (r["result"] or {}).get("p_value") for k, r in enumerate(rows)})
    for k, r in enumerate(rows):
        r["p_holm"] = adjusted[str(k)]
        r["mdr"] = mdr
    for r in rows:  # the verdicts need every row's adjusted p first (a mapped row leans on its power control)
        p = r["p_holm"]
        if p is None:
            r["verdict"] = "n/a"
        elif not r["predicted_same"]:
            r["verdict"] = "confirmed" if p < ALPHA else "underpowered"
        elif p < ALPHA:
            r["verdict"] = "refuted"
        else:
            of = r["run"] if r["role"] != "transported" else next(
                (x["run"] for x in rows if x["role"] == "transform" and x["transform"] == r["transform"]), None)
            control = next((x for x in rows if x["role"] == "power_control" and x["run"] == of), None)
            has_power = mdr is not None and (control is None or (control["p_holm"] or 1.0) < ALPHA)
            r["verdict"] = "confirmed" if has_power else "underpowered"
    return rows


def _verdict_table(rows: list[dict[str, Any]], result: dict[str, Any]) -> list[str]:
    c = result["comparison"]
    mdr = (c.get("power") or {}).get("min_detectable_deg")
    mdr_text = f"{mdr:g}°" if mdr is not None else "none ≤ " + f"{max((c.get('power') or {}).get('angles') or [0]):g}°"
    lines = ["| run | transform | test | prediction | p (Holm) | raw p [95% MC interval] | min. detectable rotation | "
             "verdict |", "|---|---|---|---|---:|---|---:|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['transform']} | {r['test']} | {'same' if r['predicted_same'] else 'different'}"
                     f" | {_fmt(r['p_holm'], '.4f')} | {_p_text(r['result'])} | {mdr_text} | **{r['verdict']}** |")
    return lines


def _power_lines(c: dict[str, Any]) -> list[str]:
    pw = c.get("power")
    if not pw or not pw.get("angles"):
        return ["No planted rotation (the inputs are not 2-D): the minimum detectable effect is unknown, so every "
                "'same' is underpowered."]
    halves = pw["units_per_half"]
    lines = [f"Half of the reference's chains ({halves[1]} of {sum(halves)}) pushed through the exact map of a "
             f"rotation of the data by δ (`transforms.absorb`, not mapped back) and tested against the other half, "
             f"{pw['n_splits']} random halvings, at level {pw['alpha']:.4g} (α = {ALPHA} over the "
             f"{round(ALPHA / pw['alpha'])} tests of the table, the strictest Holm step). Halves have half a run's "
             "chains, so a whole run against another detects at least as much.", "",
             "| δ | " + " | ".join(f"{a:g}°" for a in pw["angles"]) + " |",
             "|---|" + "---:|" * len(pw["angles"]),
             "| power | " + " | ".join(f"{p:.2f}" for p in pw["power"]) + " |", ""]
    m = pw["min_detectable_deg"]
    lines.append(f"**Minimum detectable rotation: {m:g}°** (the smallest δ detected in ≥ 80% of halvings)." if m is not
                 None else "**No planted rotation up to the largest tried is detected with 80% power: underpowered.**")
    if pw.get("null_rejection_rate") is not None:
        lines.append(f"At δ = 0 (two halves of one run: the null) {pw['null_rejection_rate']:.2f} of the halvings are "
                     f"rejected at {pw['alpha']:.4g}.")
    return lines


def _plane_lines(plane: dict[str, Any] | None, threshold: float) -> list[str]:
    if plane is None:
        return [f"Fewer than 10 good minima (loss < {threshold}) in the reference: no plane claim can be judged."]
    lines = [f"Good minima of the reference: {plane['n_good']} (from {plane['n_chains']} chains), embedded by kernel "
             f"PCA (3-D) fitted on its canonical draws. Share of their 3-D variance on the best plane: "
             f"**{plane['share']:.3f}** [95% CI by resampling chains: {_fmt(plane['ci'][0])}, {_fmt(plane['ci'][1])}].",
             "", "| null (canonical forms) | points | plane share [95% CI] | reference − null [99% CI] | p | p (Holm) |",
             "|---|---:|---|---|---:|---:|"]
    for name, n in plane["nulls"].items():
        lines.append(f"| {name} | {n['n']} | {_fmt(n['share'])} [{_fmt(n['ci'][0])}, {_fmt(n['ci'][1])}] | "
                     f"[{_fmt(n['difference_ci'][0])}, {_fmt(n['difference_ci'][1])}] | {_fmt(n['p_value'], '.4f')} | "
                     f"{_fmt(n['p_holm'], '.4f')} |")
    beaten = ", ".join(plane["beaten"]) or "none"
    lines += ["", f"**Verdict: {plane['verdict']}** at α = {plane['alpha']} (nulls beaten: {beaten})."
              + (f" {plane['note']}." if plane.get("note") else "")]
    planted = plane.get("planted") or []
    if planted:
        least = plane.get("min_detectable")
        power = (f"the least flattening detected keeps {least['scale']:g} of the spread off the plane (plane share "
                 f"{least['share']:.3f}): good minima at least that close to a plane would have been called planar"
                 if least else "no planted flattening is detected, not even an exact plane: the test has no power "
                 "here, so its negative verdict is \"underpowered\"")
        lines += ["", "Power control: the same test on the good minima flattened toward their best plane (the spread "
                  "off the plane scaled by s, chains kept): "
                  + ", ".join(f"s = {r['scale']:g} ({r['share']:.3f}) {'detected' if r['detected'] else 'missed'}"
                              for r in planted) + f"; {power}."]
    return lines


def report_markdown(result: dict[str, Any]) -> str:
    """The whole REPORT.md of an experiment's ``results.json`` content."""
    s = result["settings"]
    c = result["comparison"]
    rows = verdict_rows(result)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("confirmed", "refuted", "underpowered")}
    lines = [f"# {result['title']}", "",
             f"{counts['confirmed']} confirmed, {counts['refuted']} refuted, {counts['underpowered']} underpowered. "
             f"Statistic: the energy distance between the runs' class probabilities on {c.get('probes', 'n/a')} probe "
             f"points (the data and a {s.get('probe_grid', 9)}×{s.get('probe_grid', 9)} grid around them), which no "
             f"weight symmetry changes; whole chains are permuted ({c.get('n_perm', s['n_perm'])} permutations, or "
             f"every split), up to {s['n_test']} draws a side spread over the chains; all draws of each run. "
             f"α = {ALPHA} after Holm's correction over the table.", ""]
    lines += _verdict_table(rows, result)
    lines += ["", "Verdicts: *confirmed* = the prediction holds and, for a prediction of 'same', the test is shown to "
              "have power (the transform's unmapped control detected and a minimum detectable rotation found); "
              "*refuted* = the prediction fails; *underpowered* = not detected where a difference was predicted, or "
              "'same' without shown power.", "", "## The theory, transform by transform", ""]
    for r in rows:
        if r["role"] != "power_control":
            lines.append(f"- **{r['run']}** ({r['transform']}): {r['theory']}")
    lines += ["", "## Power: planted rotations (exact positive controls)", ""] + _power_lines(c)
    lines += ["", "## Evidence per test", "",
              "The function-space test decides (all draws); beside it the same test on the good minima only, and the "
              "weight-space test on scale-free canonical coordinates (per-unit directions and log norms, standardized)."
              , "", "| run | test | function space, all draws: p [MC] | good minima: p | weight space: p | units "
              "(chains) | box cut (ref / run) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        entry = c["tests"].get(r["run"], {})
        cut = (entry.get("box_cut_share") or {}).get("all")
        cut_text = f"{_fmt(cut['reference'], '.2f')} / {_fmt(cut['run'], '.2f')}" if cut else "—"
        units = (r["result"] or {}).get("units")
        lines.append(f"| {r['run']} | {r['test']} | {_p_text(r['result'])} | {_p_text(r['good'])} | "
                     f"{_p_text(r['weight_space'])} | {units[0]} vs {units[1] if units else ''} | {cut_text} |"
                     if units else f"| {r['run']} | {r['test']} | n/a | n/a | n/a | — | {cut_text} |")
    lines += _dose_lines(rows)
    lines += ["", "## The plane claim", ""] + _plane_lines(c.get("plane"), s["threshold"])
    lines += _per_run(result) + _shared(c)
    return "\n".join(lines) + "\n"


def _per_run(result: dict[str, Any]) -> list[str]:
    s = result["settings"]
    sampler = s["sampler"] + (f" ({s['temps']} temperatures up to {s['t_max']:g} T)" if s["sampler"] == "pt" else "")
    lines = ["", "## Per run", "",
             f"[{s['arch']}] {s['activation']} network, {sampler} sampler, {s['chains']} chains × {s['draws']} draws "
             f"(thin {s['thin']}, warm-up {s['warmup']}), box L = {s['box']}, T = {s['temperature']}, experiment seed "
             f"{s['seed']} (each run's own seed below, derived from it and the run's name); good minima: loss < "
             f"{s['threshold']}. Settings: `settings.toml`. Total time {result['seconds']:.0f} s.", "",
             f"![data above, good minima below]({result.get('sheet', 'figures.png')})", "",
             "Convergence is judged modulo the network's symmetries (on U and the canonical coordinates, what the "
             "analysis uses); the raw-coordinate verdict beside it.", "",
             "| run | data | seed | draws | max R-hat | min ESS | converged | raw coordinates | good share | "
             "2-D explained variance [95% CI] | seconds |", "|---|---|---:|---:|---:|---:|---|---|---:|---|---:|"]
    for name, r in result["runs"].items():
        d = r["diagnosis"]
        a = r["analysis"].get("canonical") or r["analysis"]["raw"]
        pl = a.get("plane")
        max_rhat = max(d["energy"]["rhat"] or 0, d["theta_max_rhat"] or 0)
        min_ess = min(d["theta_min_ess_bulk"] or 0, d["theta_min_ess_tail"] or 0, d["energy"]["ess_bulk"] or 0,
                      d["energy"]["ess_tail"] or 0)
        evr = f"{_fmt(pl['explained_variance_ratio'])} [{_fmt(pl['ci'][0])}, {_fmt(pl['ci'][1])}]" if pl else "n/a"
        lines.append(f"| {name} | {r['transform']} | {r['seed']} | {d['n_chains'] * d['n_draws']} | {max_rhat:.3f} | "
                     f"{min_ess:.0f} | {'yes' if d['converged'] else 'no'} | "
                     f"{'converged' if d['raw_coordinates']['converged'] else 'not converged'} | "
                     f"{_fmt(a['good_share'], '.4f')} | {evr} | {r['seconds']:.0f} |")
    n_conv = sum(r["diagnosis"]["converged"] for r in result["runs"].values())
    lines += ["", f"{n_conv} of {len(result['runs'])} runs pass `diagnose` modulo symmetry (R-hat < 1.01, bulk and "
              "tail ESS ≥ 400, chain means consistent with a normal distribution). The tests above permute whole "
              "chains, so their level does not rest on convergence; their power does."]
    return lines


def _shared(c: dict[str, Any]) -> list[str]:
    lines = ["", "## Shared embedding", "",
             "One kernel-PCA fit for all runs (canonical draws as sampled, not mapped back); each run's plane of good "
             "minima in it (intervals by resampling chains).", "",
             "| run | good minima | 2-D explained variance [95% CI] | plane angle to reference | Procrustes disparity "
             "of the 2-D arrangement to reference |", "|---|---:|---|---:|---:|"]
    for name, sh in c["shared_embedding"].items():
        ci = sh.get("ci") or [None, None]
        lines.append(f"| {name} | {sh['n_good']} | {_fmt(sh.get('explained_variance_ratio'))} [{_fmt(ci[0])}, "
                     f"{_fmt(ci[1])}] | {_fmt(sh.get('plane_angle_to_reference_deg'), '.1f')}° | "
                     f"{_fmt(sh.get('procrustes_to_reference'), '.3f')} |")
    return lines


def _dose_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The sampled dose-response controls (noise, flipped labels): the distance should grow with the dose."""
    doses = []
    for r in rows:
        if r["role"] == "transform" and r["result"]:
            t = parse_transform(r["transform"])
            if t.kind in ("noise", "flip-labels"):
                doses.append((t.kind, t.params[0], r))
    if not doses:
        return []
    lines = ["", "## Dose response (sampled controls)", "",
             "Predicted different, by more as the dose grows: the energy distance in function space should rise with "
             "the noise level σ and with the number K of labels changed.", "",
             "| control | dose | energy distance | p (Holm) | verdict |", "|---|---:|---:|---:|---|"]
    for kind, dose, r in sorted(doses, key=lambda d: (d[0], d[1])):
        lines.append(f"| {kind} | {dose:g} | {r['result']['energy_distance']:.4f} | {_fmt(r['p_holm'], '.4f')} | "
                     f"{r['verdict']} |")
    lines.append("")
    for kind, summary in dose_summary(doses).items():
        least, seen = summary["least_detected"], summary["detected"]
        lines.append(f"- {kind}: detected at {', '.join(f'{d:g}' for d in seen) or 'no dose'} of "
                     f"{', '.join(f'{d:g}' for d in summary['doses'])}; smallest dose detected "
                     + (f"**{least:g}**" if least is not None else "**none** (every dose underpowered)")
                     + "; the distance "
                     + ("rises with every step of the dose" if summary["monotone"] else "does not rise at every step")
                     + ".")
    return lines


def dose_summary(doses: list[tuple[str, float, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per dose family (``(kind, dose, verdict row)`` triples): the doses, the smallest one detected (the family's
    smallest detectable effect, on its own scale) and whether the energy distance rises with the dose."""
    out: dict[str, dict[str, Any]] = {}
    for kind in sorted({k for k, _, _ in doses}):
        rows = sorted(((float(d), r) for k, d, r in doses if k == kind), key=lambda dr: dr[0])
        detected = [d for d, r in rows if r["verdict"] == "confirmed"]
        dist = [r["result"]["energy_distance"] for _, r in rows]
        out[kind] = {"doses": [d for d, _ in rows], "detected": detected,
                     "least_detected": min(detected) if detected else None,
                     "monotone": bool(all(b > a for a, b in zip(dist, dist[1:], strict=False)))}
    return out
