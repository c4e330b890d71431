"""Figures of the analysis (matplotlib figures made directly, the backend left alone), each saved as PNG beside the
numbers behind it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _figure(**kwargs):
    from mcmc_landscape.figures import new_figure

    return new_figure(**kwargs)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def embedding_3d(Y: np.ndarray, loss: np.ndarray, path: str | Path, title: str = "") -> Path:
    """3-D kernel-PCA embedding coloured by log10 loss."""
    fig = _figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    order = np.argsort(-loss)  # low loss drawn last, on top
    sc = ax.scatter(*Y[order].T, c=np.log10(np.maximum(loss[order], 1e-12)), s=2, cmap="viridis_r", alpha=0.6)
    fig.colorbar(sc, ax=ax, shrink=0.6, label="log10 loss")
    ax.set(xlabel="kPC 1", ylabel="kPC 2", zlabel="kPC 3", title=title)
    return _save(fig, path)


def good_minima_2d(Z: np.ndarray, loss: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Good minima on their fitted plane (linear PCA of the 3-D coordinates)."""
    fig = _figure(figsize=(6, 5))
    ax = fig.subplots()
    sc = ax.scatter(Z[:, 0], Z[:, 1], c=loss, s=3, cmap="viridis_r", alpha=0.7)
    fig.colorbar(sc, ax=ax, label="loss")
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    return _save(fig, path)
