"""Drawing the connectivity graph of good minima (written by ``dss``) on the maps of ``landscape analyze``.

The maps are refitted exactly as the analysis fits them (same draws, same seed, same settings), on the raw draws:
a string is a continuous path in θ, and canonicalization is not continuous along it, so the raw map is the one on which
edges can be drawn. Nodes are coloured by component at each level; edges are their strings (beads and the straight
links between them) mapped through the same kernel PCA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.storage.store import ChainReader

from .pipeline import AnalysisSettings, fit_rows_for, iter_selected, load_rows, select_draws
from .plots import _figure, _save
from .reduction import KernelEmbedding, PlaneFit


def fit_maps(path: str | Path, s: AnalysisSettings, run: str | None = None) -> tuple[KernelEmbedding, PlaneFit | None]:
    """The raw-draw kernel PCA map (3-D) and the plane of good minima (2-D), fitted as ``analyze_file`` fits them."""
    with ChainReader(path, run) as reader:
        n_data = int(len(reader.extra("data/y")))
        sel = select_draws(reader, s)
        _, fit_rows = fit_rows_for(reader, sel, s)
        theta_fit, _ = load_rows(reader, sel, s, fit_rows)
        emb = KernelEmbedding(3, s.gamma, s.solver, s.n_landmarks, s.seed).fit(theta_fit)
        Y = np.empty((len(sel.index), 3))
        loss = np.empty(len(sel.index))
        for pos, t, e in iter_selected(reader, sel, s):
            Y[pos] = emb.transform(t)
            loss[pos] = e / n_data
    good = loss < s.threshold
    plane = PlaneFit(2).fit(Y[good]) if good.sum() > 3 else None
    return emb, plane


def _edge_points(path: list[list[float]], per_link: int = 6) -> np.ndarray:
    beads = np.asarray(path)
    t = np.linspace(0, 1, per_link, endpoint=False)
    pts = [beads[k] + t[:, None] * (beads[k + 1] - beads[k]) for k in range(len(beads) - 1)]
    return np.concatenate(pts + [beads[-1:]])


def plot_graph(graph: dict[str, Any], minima: np.ndarray, emb: KernelEmbedding, plane: PlaneFit | None,
               folder: Path) -> list[Path]:
    """One 3-D figure (kernel PCA) and one 2-D figure (plane of good minima) with a panel per level."""
    import matplotlib

    levels = graph["levels"]
    node_y = emb.transform(minima)
    files = []
    for kind in ("kpca3d", "plane2d"):
        if kind == "plane2d" and plane is None:
            continue
        fig = _figure(figsize=(5 * len(levels), 4.6))
        for li, lv in enumerate(levels):
            ax = fig.add_subplot(1, len(levels), li + 1, projection="3d" if kind == "kpca3d" else None)
            colour = np.zeros(len(minima), dtype=int)
            for ci, comp in enumerate(lv["components"]):
                colour[comp] = ci
            cmap = matplotlib.colormaps["tab10"]
            for e in lv["edges"]:
                pts = emb.transform(_edge_points(e["path"]))
                c = cmap(colour[e["i"]] % 10)
                if kind == "kpca3d":
                    ax.plot(pts[:, 0], pts[:, 1], pts[:, 2], color=c, lw=0.8)
                else:
                    q = plane.transform(pts)
                    ax.plot(q[:, 0], q[:, 1], color=c, lw=0.8)
            if kind == "kpca3d":
                ax.scatter(node_y[:, 0], node_y[:, 1], node_y[:, 2], c=[cmap(k % 10) for k in colour], s=25,
                           edgecolors="k")
            else:
                q = plane.transform(node_y)
                ax.scatter(q[:, 0], q[:, 1], c=[cmap(k % 10) for k in colour], s=25, edgecolors="k")
            ax.set_title(f"L0 = {lv['l0']:g}: {lv['n_components']} component(s), {lv['dss_runs']} DSS runs",
                         fontsize=9)
        fig.suptitle("good minima coloured by component; edges are certified DSS strings "
                     + ("(kernel PCA map of `analyze`, raw draws)" if kind == "kpca3d" else
                        "(plane of good minima of `analyze`, raw draws)"), fontsize=8)
        files.append(_save(fig, folder / f"graph_{kind}.png"))
    return files
