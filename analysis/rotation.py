"""The rotation experiment of the report: the invariance experiment (:mod:`analysis.experiment`) with rotations only.

The first angle is the reference (usually 0); every other angle is the transform ``rotate:(angle - first)`` of it,
so each run's draws are mapped back by W1 → Rᵀ W1 and tested against the reference's on the intersection of the two
boxes, with the controls of the experiment (another seed; labels drawn afresh). Runs are stored as ``angle_<deg>``;
the six figures (the rotated data sets above, their good minima below) go to ``six_figures.png``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.models.nets import MLPSpec

from .comparison import unrotate
from .experiment import ExperimentSettings, SamplingStudySettings, load_toml, run_experiment
from .experiment import dump_toml as _dump_toml

__all__ = ["RotationSettings", "dump_toml", "load_toml", "run_rotation", "experiment_settings"]


@dataclass
class RotationSettings(SamplingStudySettings):
    """The rotation experiment's settings: the angles, the first the reference; the rest as every study's."""

    angles: list[float] = field(default_factory=lambda: [0.0, 120.0, 240.0])


def dump_toml(s: RotationSettings) -> str:
    return _dump_toml(s, "landscape rotation")


def experiment_settings(s: RotationSettings) -> tuple[ExperimentSettings, dict[str, str]]:
    """The experiment that is this rotation experiment, and its run names (``angle_<deg>``)."""
    a0 = float(s.angles[0])
    base = "points10" if a0 == 0 else f"points10|rotate:{a0:g}"
    transforms = [f"rotate:{float(a) - a0:g}" for a in s.angles[1:]]
    names = {"identity": f"angle_{a0:g}"}
    names.update({t: f"angle_{float(a):g}" for t, a in zip(transforms, s.angles[1:], strict=True)})
    keep = {k: v for k, v in vars(s).items() if k != "angles"}
    return ExperimentSettings(transforms=transforms, data=base, **keep), names


def run_rotation(s: RotationSettings, out: str | Path, reuse: bool = False, quiet: bool = False) -> dict[str, Any]:
    exp, names = experiment_settings(s)
    out = Path(out)
    result = run_experiment(exp, out, reuse=reuse, quiet=quiet, names=names, title="Rotation experiment",
                            sheet="six_figures.png")
    (out / "settings.toml").write_text(dump_toml(s))
    result["settings"] = vars(s) | {"angles": list(s.angles)}
    return result


def _in_both_boxes(theta0: np.ndarray, spec: MLPSpec, angles: tuple[float, float], box: float) -> np.ndarray:
    """Rows (in angle-0 coordinates) inside the images of the box of both runs: B_a = {θ : unrotate(θ, -a) ∈ B}."""
    keep = np.ones(len(theta0), bool)
    for a in angles:
        keep &= np.all(np.abs(unrotate(theta0, spec, -a)) <= box * (1 + 1e-12), axis=1)
    return keep
