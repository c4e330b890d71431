"""Named data sets for the sampler: the report's 10-point set, user CSV files, rotation about the origin, and any
transform of :mod:`mcmc_landscape.data.transforms` written after the name (``points10|reflect:x|noise:0.05@1``).

The 10-point set is 10 points uniform in [-1, 1]^2 with random fixed labels, generated once from ``POINTS10_SEED`` and
shipped as ``data/points10.csv``; :func:`make_points10` regenerates it, and a test holds the two equal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mcmc_landscape.errors import DataError

POINTS10_SEED = 20201201  # the report's date, December 1, 2020
REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
DATA_ENV = "MCMC_LANDSCAPE_DATA"


@dataclass(frozen=True)
class Dataset:
    """Inputs ``x`` of shape (n, d) and integer class labels ``y`` of shape (n,)."""

    x: np.ndarray
    y: np.ndarray
    name: str
    angle: float = 0.0

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def n_in(self) -> int:
        return self.x.shape[1]

    @property
    def n_classes(self) -> int:
        return int(self.y.max()) + 1

    def rotated(self, angle_deg: float) -> Dataset:
        """The same points rotated counter-clockwise by ``angle_deg`` degrees about the origin (2-D inputs only)."""
        return replace(self, x=self.x @ rotation_matrix(angle_deg).T, angle=self.angle + float(angle_deg))


def rotation_matrix(angle_deg: float) -> np.ndarray:
    """Counter-clockwise rotation by ``angle_deg`` degrees: x' = R x."""
    a = np.deg2rad(float(angle_deg))
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s], [s, c]])


def make_points10(seed: int = POINTS10_SEED) -> Dataset:
    """Regenerate the report's set: 10 points uniform in [-1,1]^2, labels 0/1 at random (both classes present)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(10, 2))
    while True:
        y = rng.integers(0, 2, size=10)
        if 0 < y.sum() < 10:
            break
    return Dataset(np.round(x, 6), y.astype(np.int64), "points10")


def write_points_csv(ds: Dataset, path: Path, header: str = "") -> None:
    """Write ``x1,...,xd,label`` rows with a comment header."""
    cols = ",".join(f"x{i + 1}" for i in range(ds.n_in)) + ",label"
    lines = [f"# {line}" for line in header.splitlines()] + [cols]
    lines += [",".join(f"{v:.6f}" for v in row) + f",{lab}" for row, lab in zip(ds.x, ds.y, strict=False)]
    Path(path).write_text("\n".join(lines) + "\n")


def read_points_csv(path: str | os.PathLike) -> Dataset:
    """Read a classification CSV (``x1,...,xd,label``, ``#`` comments, one header row) and validate it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; give a CSV with columns x1,...,xd,label.")
    try:
        rows = [r for r in path.read_text().splitlines() if r.strip() and not r.lstrip().startswith("#")]
        if rows and not _is_number(rows[0].split(",")[0]):
            rows = rows[1:]
        table = np.array([[float(v) for v in r.split(",")] for r in rows], dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"data file {str(path)!r} is not a numeric CSV ({exc}); write rows as x1,...,xd,label.") from None
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2:
        raise DataError(
            f"data file {str(path)!r} must hold at least 2 rows of the form x1,...,xd,label; got shape {table.shape}."
        )
    return validate_dataset(table[:, :-1], table[:, -1], name=path.stem, source=str(path))


def validate_dataset(x: np.ndarray, y: np.ndarray, name: str, source: str = "data") -> Dataset:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise DataError(f"{source}: inputs must be (n, d) and labels (n,); got {x.shape} and {y.shape}.")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        bad = int(np.sum(~np.isfinite(x)) + np.sum(~np.isfinite(y)))
        raise DataError(f"{source} holds {bad} NaN or infinite value(s); remove or fix those rows.")
    if np.any(y != np.round(y)) or np.any(y < 0):
        raise DataError(f"{source}: labels must be non-negative integers 0, 1, ...; found {sorted(set(y.tolist()))[:5]}.")
    if len(np.unique(y)) < 2:
        raise DataError(f"{source}: all points carry one label; a classifier needs at least two classes.")
    return Dataset(x, y.astype(np.int64), name)


def load_dataset(name: str = "points10", angle: float = 0.0) -> Dataset:
    """A named set (``points10``) or a CSV path, then the transforms written after it (``points10|rotate:120|...``,
    applied in order), then rotated by ``angle`` degrees."""
    name, *specs = str(name).split("|")
    if name == "points10":
        shipped = REPO_DATA_DIR / "points10.csv"
        ds = read_points_csv(shipped) if shipped.is_file() else make_points10()
        ds = replace(ds, name="points10")
    else:
        ds = read_points_csv(name)
    if specs:
        from mcmc_landscape.data.transforms import apply_transforms

        x, y = apply_transforms(ds.x, ds.y, specs)
        ds = replace(ds, x=x, y=y, name="|".join([ds.name, *specs]))
    if angle:
        if ds.n_in != 2:
            raise DataError(f"rotation needs 2-D inputs, but {name!r} has {ds.n_in} input columns.")
        ds = ds.rotated(angle)
    return ds


def real_data_dir() -> Path | None:
    """Folder of the real data sets (MNIST, PTB, CIFAR-10): ``$MCMC_LANDSCAPE_DATA``, else ``../shared/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    fallback = REPO_DATA_DIR.parent.parent / "shared" / "data"
    return fallback if fallback.is_dir() else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def data_digest(x: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of inputs (as float64) and labels (as int64): what a run stores to refuse a resume on other data."""
    import hashlib

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()
