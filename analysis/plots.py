"""Figures of the analysis (matplotlib, Agg), each saved as PNG beside the numbers behind it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def embedding_3d(Y: np.ndarray, loss: np.ndarray, path: str | Path, title: str = "") -> Path:
    """3-D kernel-PCA embedding coloured by log10 loss."""
    plt = _plt()
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    order = np.argsort(-loss)  # low loss drawn last, on top
    sc = ax.scatter(*Y[order].T, c=np.log10(np.maximum(loss[order], 1e-12)), s=2, cmap="viridis_r", alpha=0.6)
    fig.colorbar(sc, ax=ax, shrink=0.6, label="log10 loss")
    ax.set_xlabel("kPC 1")
    ax.set_ylabel("kPC 2")
    ax.set_zlabel("kPC 3")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def good_minima_2d(Z: np.ndarray, loss: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Good minima on their fitted plane (linear PCA of the 3-D coordinates)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(Z[:, 0], Z[:, 1], c=loss, s=3, cmap="viridis_r", alpha=0.7)
    fig.colorbar(sc, ax=ax, label="loss")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
