"""Pictures of strings and sweeps (matplotlib figures made directly, the backend left alone), each saved beside
the numbers behind it.

* the loss along the string against arc length (every link's evaluated curve, the limit τ·L0 drawn);
* the paper's Figure 7: beads projected on the three leading principal axes of the converged string (PCA of the
  beads of the final string), the string drawn through its interpolated curves, coloured by log loss; snapshots as
  the algorithm proceeds and an animated GIF of them;
* the paper's Figures 2 and 3: mean ± standard deviation of normalized length and of bead count against L0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np  # noqa: E402

from mcmc_landscape.figures import new_figure

from .string import StringState  # noqa: E402


def _links_of(state: StringState, order: list[int]) -> list[int | None]:
    index = {(lk.left, lk.right): i for i, lk in enumerate(state.links)}
    return [index.get((a, b)) for a, b in zip(order[:-1], order[1:], strict=True)]


def string_polyline(state: StringState, order: list[int], n_per_link: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Points along the string (straight links sampled at the evaluated t's) and their loss: (m, p), (m,)."""
    pts, losses = [], []
    for (a, b), li in zip(zip(order[:-1], order[1:], strict=True), _links_of(state, order), strict=True):
        pa, pb = state.beads[a], state.beads[b]
        curve = state.curves.get(li) if li is not None else None
        if curve is not None:
            keep = np.unique(np.r_[0, np.linspace(0, len(curve.t) - 1, n_per_link).astype(int), len(curve.t) - 1])
            t, loss = curve.t[keep], curve.loss[keep]
        else:
            t = np.array([0.0, 1.0])
            loss = np.array([state.bead_loss[a], state.bead_loss[b]])
        pts.append(pa[None] + t[:, None] * (pb - pa)[None])
        losses.append(loss)
    return np.concatenate(pts), np.concatenate(losses)


def principal_axes(state: StringState, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Centre and the ``k`` leading principal axes of the beads of the final string (the paper's Appendix C)."""
    beads = state.path()
    centre = beads.mean(axis=0)
    _, _, vt = np.linalg.svd(beads - centre, full_matrices=False)
    axes = np.zeros((k, beads.shape[1]))
    axes[: min(k, vt.shape[0])] = vt[:k]
    return centre, axes


def _draw_string(ax: Any, state: StringState, order: list[int], centre: np.ndarray, axes: np.ndarray, limit: float,
                 vmin: float, vmax: float) -> Any:
    pts, loss = string_polyline(state, order)
    xyz = (pts - centre) @ axes.T
    logl = np.log10(np.clip(loss, 1e-12, None))
    ax.plot(xyz[:, 0], xyz[:, 1], xyz[:, 2], color="0.7", lw=0.6)
    sc = ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=logl, cmap="coolwarm", vmin=vmin, vmax=vmax, s=6)
    bz = (np.stack([state.beads[i] for i in order]) - centre) @ axes.T
    ax.scatter(bz[:, 0], bz[:, 1], bz[:, 2], c="k", s=14, marker="o")
    ax.set_xlabel("PC1")
    ax.set_ylabel("PC2")
    ax.set_zlabel("PC3")
    return sc


def plot_string(state: StringState, outcome: dict[str, Any], folder: Path, stem: str = "string",
                gif: bool = True) -> list[Path]:
    """The loss profile, the 3-D projection, four snapshots and (optionally) an animated GIF of the snapshots."""
    folder.mkdir(parents=True, exist_ok=True)
    limit = outcome["limit"]
    files: list[Path] = []
    # loss along the string
    pts, loss = string_polyline(state, state.order, n_per_link=10_000)
    arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))]
    fig = new_figure(figsize=(7, 3.2))
    ax = fig.subplots()
    ax.semilogy(arc / max(outcome["straight_distance"], 1e-300), np.clip(loss, 1e-12, None), lw=1)
    bead_arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(state.path(), axis=0), axis=1))]
    ax.semilogy(bead_arc / max(outcome["straight_distance"], 1e-300),
                [max(state.bead_loss[i], 1e-12) for i in state.order], "k.", label="beads")
    ax.axhline(limit, color="r", ls="--", lw=0.8, label="τ·L0")
    ax.set_xlabel("arc length / straight distance")
    ax.set_ylabel("held-out loss")
    verdict = "connected" if outcome["connected"] else f"not connected ({outcome['reason']})"
    ax.set_title(f"L0 = {outcome['l0']:g}: {verdict}; {outcome['n_beads']} beads, "
                 f"normalized length {outcome['normalized_length']:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    files.append(folder / f"{stem}_profile.png")
    fig.savefig(files[-1], dpi=120)
    # projection of the final string and snapshots, on the axes of the final string
    centre, axes = principal_axes(state)
    all_loss = np.clip(np.concatenate([c.loss for c in state.curves.values()] or [np.array([limit])]), 1e-12, None)
    vmin, vmax = np.log10(min(all_loss.min(), limit)), np.log10(max(all_loss[np.isfinite(all_loss)].max(), limit * 1.01))
    snaps = state.snapshots or [state.order]
    picks = sorted({0, len(snaps) // 3, (2 * len(snaps)) // 3, len(snaps) - 1})
    fig = new_figure(figsize=(10, 8))
    for j, s in enumerate(picks):
        ax = fig.add_subplot(2, 2, j + 1, projection="3d")
        sc = _draw_string(ax, state, snaps[s], centre, axes, limit, vmin, vmax)
        ax.set_title(f"round {s} of {len(snaps) - 1}: {len(snaps[s])} beads", fontsize=9)
    fig.colorbar(sc, ax=fig.axes, shrink=0.6, label="log10 held-out loss")
    files.append(folder / f"{stem}_snapshots.png")
    fig.savefig(files[-1], dpi=110)
    fig = new_figure(figsize=(6, 5))
    ax = fig.add_subplot(projection="3d")
    sc = _draw_string(ax, state, state.order, centre, axes, limit, vmin, vmax)
    fig.colorbar(sc, ax=ax, shrink=0.6, label="log10 held-out loss")
    ax.set_title(f"{verdict}: beads on the 3 leading principal axes", fontsize=9)
    files.append(folder / f"{stem}_pca3d.png")
    fig.savefig(files[-1], dpi=120)
    if gif:
        from matplotlib.animation import FuncAnimation, PillowWriter

        fig = new_figure(figsize=(5, 4.5))
        ax = fig.add_subplot(projection="3d")

        def frame(j: int) -> None:
            ax.cla()
            _draw_string(ax, state, snaps[j], centre, axes, limit, vmin, vmax)
            ax.set_title(f"round {j}: {len(snaps[j])} beads", fontsize=9)

        anim = FuncAnimation(fig, frame, frames=len(snaps))
        files.append(folder / f"{stem}.gif")
        anim.save(files[-1], writer=PillowWriter(fps=2))
    (folder / f"{stem}_outcome.json").write_text(json.dumps(outcome, indent=1, default=float))
    files.append(folder / f"{stem}_outcome.json")
    return files


def plot_sweep(result: dict[str, Any], path: Path) -> Path:
    """Normalized length and beads against L0 (mean ± sd over connected pairs), the paper's Figures 2 and 3."""
    rows = result["levels"]
    l0 = np.array([r["l0"] for r in rows])
    fig = new_figure(figsize=(9, 3.4))
    axs = fig.subplots(1, 2)
    for ax, key, label in ((axs[0], "length", "normalized geodesic length"), (axs[1], "beads", "beads (incl. ends)")):
        mean = np.array([r[f"{key}_mean"] for r in rows])
        sd = np.nan_to_num(np.array([r[f"{key}_sd"] for r in rows]))
        ax.errorbar(l0, mean, yerr=sd, marker="o", capsize=3)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel(f"L0 ({result['task'].get('level', 'held-out loss')})")
        ax.set_ylabel(label)
        for x, m, r in zip(l0, mean, rows, strict=True):
            if np.isfinite(m):
                ax.annotate(f"{r['connected']}/{r['pairs']}", (x, m), fontsize=7, textcoords="offset points",
                            xytext=(4, 4))
    fig.suptitle(f"{result['description']} — {result['warm_start']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
