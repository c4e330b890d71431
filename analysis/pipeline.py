"""The report's pipeline on a stored run, with the numbers that make it honest.

draws (after warm-up) → optional canonicalization modulo symmetries → RBF kernel PCA to 3-D (share of kernel variance
left out, pre-image reconstruction error) → good minima (loss < threshold) → linear PCA of their 3-D coordinates to
2-D (explained variance) → the same for null sets of the same count → bootstrap intervals → PCA spectrum and TwoNN
dimension of the good minima in parameter space. Run with and without canonicalization so the difference is shown.

Memory stays bounded whatever the file size (a convnet's draws: p ≥ 1e5, a file of many gigabytes): draws are read
in blocks of at most a quarter of ``memory_budget_mb``, the embedding is fitted on at most that budget's worth of
draws (Nyström landmarks among them), the null sets hold at most as many rows, and everything else is applied block by
block. Canonicalization modulo symmetries is defined for MLPs only: a zoo model's draws are analysed raw.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import IncrementalPCA

from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.symmetry import canonicalize
from mcmc_landscape.storage.store import ChainReader

from .minima import bootstrap_ci, null_sets, pca_spectrum, percentile_interval, plane_share, twonn_dimension
from .reduction import KernelEmbedding, PlaneFit, reconstruction_error


@dataclass(frozen=True)
class AnalysisSettings:
    discard: int = 0
    thin: int = 1
    max_draws: int = 20000
    threshold: float = 0.1
    gamma: float | None = None
    canonicalize: bool = True
    solver: str = "nystroem"
    n_landmarks: int = 500
    n_boot: int = 200
    n_boot_kernel: int = 5
    seed: int = 0
    memory_budget_mb: float = 512.0
    chunk_draws: int = 1024


@dataclass
class Selection:
    """Which draws are analysed: flat indices into (chains, kept draws) after discard and thinning."""

    chains: int
    draws: int  # per chain after discard and thin
    index: np.ndarray  # sorted flat indices c * draws + d


def select_draws(reader: ChainReader, s: AnalysisSettings) -> Selection:
    kept = len(range(min(s.discard, reader.committed_draws), reader.committed_draws, s.thin))
    total = reader.n_chains * kept
    rng = np.random.default_rng(s.seed)
    index = np.arange(total) if total <= s.max_draws else np.sort(rng.choice(total, s.max_draws, replace=False))
    return Selection(reader.n_chains, kept, index)


def iter_selected(reader: ChainReader, sel: Selection, s: AnalysisSettings, rows: np.ndarray | None = None,
                  read_theta: bool = True):
    """Yield (positions in the selection, theta rows or None, energy rows) chunk by chunk, reading only needed
    chunks (and no theta at all when ``read_theta`` is false)."""
    idx = sel.index if rows is None else sel.index[rows]
    pos_all = np.arange(len(sel.index)) if rows is None else np.asarray(rows)
    chain, draw = np.divmod(idx, sel.draws) if sel.draws else (idx, idx)
    file_draw = s.discard + draw * s.thin
    step = read_block_draws(reader, s) if read_theta else s.chunk_draws * s.thin
    order = np.argsort(file_draw, kind="stable")
    sorted_draw = file_draw[order]
    for start in range(s.discard, s.discard + sel.draws * s.thin, step):
        lo, hi = np.searchsorted(sorted_draw, [start, start + step])
        if lo == hi:
            continue
        in_chunk = np.sort(order[lo:hi])
        stop = min(start + step, reader.committed_draws)
        c, d = chain[in_chunk], file_draw[in_chunk] - start
        theta = reader.read_block("theta", start, stop)[c, d] if read_theta else None
        yield pos_all[in_chunk], theta, reader.read_block("energy", start, stop)[c, d]


def read_block_draws(reader: ChainReader, s: AnalysisSettings) -> int:
    """Draws (of every chain) read at once: ``chunk_draws`` thinned draws, fewer when a block of the stored θ would
    exceed a quarter of the memory budget (one draw at the least)."""
    item = reader.read_block("theta", 0, 0).dtype.itemsize  # float32 or float64, as stored
    per_draw = reader.n_chains * reader.n_params * item
    return max(1, min(s.chunk_draws * s.thin, int(s.memory_budget_mb * 2**20 / 4 // per_draw)))


def load_rows(reader: ChainReader, sel: Selection, s: AnalysisSettings, rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Theta and energy of the selected draws (all, or the sorted positions ``rows`` in the selection)."""
    wanted = np.arange(len(sel.index)) if rows is None else np.asarray(rows)
    theta = np.empty((len(wanted), reader.n_params))
    energy = np.empty(len(wanted))
    for pos, t, e in iter_selected(reader, sel, s, rows):
        k = np.searchsorted(wanted, pos)
        theta[k], energy[k] = t, e
    return theta, energy


def _geometry(theta_fit: np.ndarray, loss_fit: np.ndarray, transform_all, loss: np.ndarray,
              spec_info: dict[str, Any], s: AnalysisSettings, good_theta_loader, max_rows: int
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    emb = KernelEmbedding(3, s.gamma, s.solver, s.n_landmarks, s.seed).fit(theta_fit)
    Y = transform_all(emb)
    rng = np.random.default_rng(s.seed + 1)
    boot_left = []
    for b in range(s.n_boot_kernel):
        rows = rng.integers(0, len(theta_fit), len(theta_fit))
        boot_left.append(KernelEmbedding(3, s.gamma, s.solver, s.n_landmarks, s.seed + b + 1)
                         .fit(theta_fit[rows]).left_out_share_)
    recon = [reconstruction_error(theta_fit, 3, s.gamma, random_state=s.seed + b)
             for b in range(max(1, s.n_boot_kernel))]
    good = loss < s.threshold
    n_good = int(good.sum())
    out: dict[str, Any] = {
        "kernel_pca": {
            "gamma": emb.gamma_, "solver": s.solver, "n_fit": len(theta_fit),
            "left_out_share": emb.left_out_share_, "left_out_share_ci": percentile_interval(boot_left),
            "eigenvalues": emb.explained_variance_.tolist(),
            "reconstruction_error": float(np.median(recon)), "reconstruction_error_ci": percentile_interval(recon),
        },
        "n_draws": len(loss), "n_good": n_good, "good_share": n_good / len(loss),
    }
    arrays = {"embedding": Y, "loss": loss, "good": good}
    if n_good > 3:
        Yg = Y[good]
        plane = PlaneFit(2).fit(Yg)
        arrays["plane"] = plane.transform(Yg)
        out["plane"] = {"explained_variance_ratio": plane.plane_share_,
                        "ci": bootstrap_ci(plane_share, Yg, s.n_boot, random_state=s.seed),
                        "spectrum_3d": plane.spectrum_.tolist()}
        nulls = {}
        # as many points as good minima, up to the rows the memory budget holds (p ≥ 1e5: a few hundred)
        nulls_pts = null_sets(theta_fit, loss_fit, s.threshold, min(n_good, max_rows), spec_info["box"], s.seed)
        for name, pts in nulls_pts.items():
            Y0 = emb.transform(pts)
            nulls[name] = {"explained_variance_ratio": plane_share(Y0),
                           "ci": bootstrap_ci(plane_share, Y0, s.n_boot, random_state=s.seed)}
        out["plane"]["null"] = nulls
        good_theta = good_theta_loader(good)
        out["parameter_space"] = {
            "pca_spectrum": _ipca_spectrum(good_theta, s),
            "twonn_dimension": twonn_dimension(good_theta[: 5000], random_state=s.seed),
            "twonn_dimension_3d": twonn_dimension(Yg, random_state=s.seed),
            "p": int(theta_fit.shape[1]),
        }
    else:
        out["plane"] = None
        out["note"] = f"only {n_good} draws have loss < {s.threshold}; no plane can be fitted."
    return out, arrays


def _ipca_spectrum(X: np.ndarray, s: AnalysisSettings) -> list[float]:
    if X.shape[1] <= 2000:
        return pca_spectrum(X).tolist()
    k = min(20, len(X) - 1)
    ipca = IncrementalPCA(n_components=k, batch_size=max(k + 1, 256))
    for i in range(0, len(X), 256):
        if len(X[i : i + 256]) > k:
            ipca.partial_fit(X[i : i + 256])
    return ipca.explained_variance_ratio_.tolist()


def fit_rows_for(reader: ChainReader, sel: Selection, s: AnalysisSettings) -> tuple[int, np.ndarray]:
    """Rows held in RAM under the memory budget, and the (seeded) selected rows the kernel PCA is fitted on."""
    budget_rows = int(max(100, s.memory_budget_mb * 2**20 / (reader.n_params * 8) / 4))
    n_fit = min(len(sel.index), budget_rows)
    rng = np.random.default_rng(s.seed + 7)
    fit_rows = np.sort(rng.choice(len(sel.index), n_fit, replace=False)) if n_fit < len(sel.index) \
        else np.arange(len(sel.index))
    return budget_rows, fit_rows


def analyze_file(path: str, s: AnalysisSettings, run: str | None = None) -> tuple[dict[str, Any], dict]:
    """Run the pipeline on a chain file; returns (numbers, arrays) for the canonical and the raw draws."""
    with ChainReader(path, run) as reader:
        cfg = reader.config
        zoo = "model" in cfg  # a zoo model: no MLP symmetries to canonicalize
        spec = None if zoo else MLPSpec.from_widths(cfg["widths"], cfg["activation"])
        n_data = int(len(reader.extra("data/y")))
        sel = select_draws(reader, s)
        if len(sel.index) < 10:
            raise ValueError(f"only {len(sel.index)} draws to analyse")
        budget_rows, fit_rows = fit_rows_for(reader, sel, s)
        theta_fit_raw, energy_fit = load_rows(reader, sel, s, fit_rows)
        energy_all = np.empty(len(sel.index))
        for pos, _, e in iter_selected(reader, sel, s, read_theta=False):
            energy_all[pos] = e
        loss = energy_all / n_data
        spec_info = {"box": float(cfg["box"]), "n_data": n_data}
        results, arrays = {}, {}
        modes = [True, False] if s.canonicalize and not zoo else [False]
        for canon in modes:
            prep = (lambda t: canonicalize(t, spec)) if canon else (lambda t: t)
            theta_fit = prep(theta_fit_raw)

            def transform_all(emb, prep=prep):
                Y = np.empty((len(sel.index), 3))
                for pos, t, _ in iter_selected(reader, sel, s):
                    Y[pos] = emb.transform(prep(t))
                return Y

            def good_loader(good, prep=prep):
                rows = np.flatnonzero(good)
                if len(rows) > budget_rows:
                    rows = np.sort(np.random.default_rng(s.seed).choice(rows, budget_rows, replace=False))
                return prep(load_rows(reader, sel, s, rows)[0])

            key = "canonical" if canon else "raw"
            results[key], arrays[key] = _geometry(theta_fit, energy_fit / n_data, transform_all, loss, spec_info, s,
                                                  good_loader, budget_rows)
    summary = {"file": str(path), "run": cfg, "settings": asdict(s), "n_selected": len(sel.index),
               "chains": sel.chains, "draws_per_chain": sel.draws, "n_data": n_data, **results}
    if zoo and s.canonicalize:
        summary["canonicalization"] = f"skipped: symmetries are defined for MLPs, not for {cfg['model']}"
    if "canonical" in results and results["canonical"].get("plane") and results["raw"].get("plane"):
        summary["canonicalization_effect"] = {
            "explained_variance_ratio": [results["raw"]["plane"]["explained_variance_ratio"],
                                         results["canonical"]["plane"]["explained_variance_ratio"]],
            "left_out_share": [results["raw"]["kernel_pca"]["left_out_share"],
                               results["canonical"]["kernel_pca"]["left_out_share"]],
            "twonn_dimension": [results["raw"]["parameter_space"]["twonn_dimension"],
                                results["canonical"]["parameter_space"]["twonn_dimension"]],
        }
    return summary, arrays


def write_outputs(summary: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]], out_dir) -> list[str]:
    """summary.json, coords_<mode>.npz and the two figures per mode into ``out_dir``."""
    import json
    from pathlib import Path

    from mcmc_landscape.diagnostics import json_safe

    from .plots import embedding_3d, good_minima_2d

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for mode, arr in arrays.items():
        np.savez_compressed(out / f"coords_{mode}.npz", **arr)
        written.append(str(embedding_3d(arr["embedding"], arr["loss"], out / f"embedding_3d_{mode}.png",
                                        f"RBF kernel PCA to 3-D ({mode} draws)")))
        if "plane" in arr:
            written.append(str(good_minima_2d(arr["plane"], arr["loss"][arr["good"]], out / f"good_minima_2d_{mode}.png",
                                              f"good minima (loss < {summary['settings']['threshold']}), {mode}")))
    (out / "summary.json").write_text(json.dumps(json_safe(summary), indent=1))
    written.append(str(out / "summary.json"))
    return written
