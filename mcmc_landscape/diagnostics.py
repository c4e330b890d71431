"""Convergence diagnostics through ArviZ: rank-normalized R-hat, bulk and tail ESS, MCSE, plus the report's check that
chain means are normally distributed across chains, acceptance, non-finite proposals, and one verdict.

This module is the only ArviZ bridge. It is written against arviz 0.2x (what Python 3.11 resolves), whose
``from_dict(posterior={var: array})`` and ``rhat/ess/mcse(idata, method=...)`` it uses; arviz 1.x changed that API.
Thresholds follow Vehtari et al. (2021): R-hat < 1.01 and bulk and tail ESS ≥ 400.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

RHAT_MAX = 1.01
ESS_MIN = 400.0
NORMALITY_ALPHA = 0.01


@dataclass
class Diagnosis:
    n_chains: int
    n_draws: int
    discard: int
    energy: dict[str, float]
    theta_max_rhat: float
    theta_worst_rhat_index: int
    theta_min_ess_bulk: float
    theta_min_ess_tail: float
    theta_min_ess_index: int
    acceptance_mean: float
    acceptance_min: float
    acceptance_max: float
    nonfinite: int
    normality_min_p: float
    normality_rejected: int
    normality_threshold: float
    converged: bool
    reasons: list[str] = field(default_factory=list)
    per_coordinate: dict[str, list[float]] = field(default_factory=dict)
    #: the coordinates diagnosed where not all of them were (a random subset of a wide run), and how many there are
    coordinates: list[int] | None = None
    n_params: int | None = None

    def verdict(self) -> str:
        scope = "" if self.coordinates is None else (
            f" (judged on U and {len(self.coordinates)} of the {self.n_params} coordinates, drawn at random)")
        if self.converged:
            return (f"converged: max R-hat {self._max_rhat():.4f} < {RHAT_MAX}, min ESS "
                    f"{self._min_ess():.0f} ≥ {ESS_MIN:.0f}, chain means consistent with a normal distribution{scope}.")
        return "not converged: " + "; ".join(self.reasons) + scope + "."

    def _max_rhat(self) -> float:
        return max(self.energy["rhat"], self.theta_max_rhat)

    def _min_ess(self) -> float:
        return min(self.energy["ess_bulk"], self.energy["ess_tail"], self.theta_min_ess_bulk, self.theta_min_ess_tail)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = self.verdict()
        return json_safe(d)


def json_safe(obj: Any) -> Any:
    """Numbers as plain JSON: NumPy scalars to Python ones, NaN and infinities to null."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return json_safe(obj.item())
    return obj


def _arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz 0.23 announces its 1.0 refactor on import
        import arviz

    return arviz


def to_inference_data(theta: np.ndarray, energy: np.ndarray, coordinates: np.ndarray | None = None):
    """Draws (chains, draws, p) and energies (chains, draws) as an ArviZ InferenceData; ``coordinates`` names the
    columns of ``theta`` where they are a subset of the run's."""
    az = _arviz()

    param = np.arange(theta.shape[2]) if coordinates is None else np.asarray(coordinates)
    return az.from_dict(posterior={"U": energy, "theta": theta}, dims={"theta": ["param"]}, coords={"param": param})


def summary_arrays(theta: np.ndarray, energy: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """R-hat (rank), bulk/tail ESS and MCSE of the mean for U and for every coordinate."""
    az = _arviz()

    idata = to_inference_data(theta, energy)
    out: dict[str, dict[str, np.ndarray]] = {}
    results = {
        "rhat": az.rhat(idata, method="rank"),
        "ess_bulk": az.ess(idata, method="bulk"),
        "ess_tail": az.ess(idata, method="tail"),
        "mcse_mean": az.mcse(idata, method="mean"),
    }
    for var in ("U", "theta"):
        out[var] = {k: np.asarray(v[var].values, dtype=float) for k, v in results.items()}
    return out


def chain_mean_normality(theta: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Shapiro-Wilk p-value of the chain means across chains, for U then each coordinate (NaN below 3 chains)."""
    means = np.concatenate([energy.mean(axis=1)[:, None], theta.mean(axis=1)], axis=1)
    if means.shape[0] < 3:
        return np.full(means.shape[1], np.nan)
    pvals = np.empty(means.shape[1])
    for j in range(means.shape[1]):
        col = means[:, j]
        pvals[j] = 1.0 if np.ptp(col) == 0 else stats.shapiro(col).pvalue
    return pvals


def diagnose(theta: np.ndarray, energy: np.ndarray, accepted: np.ndarray, nonfinite: int = 0,
             discard: int = 0, coordinates: np.ndarray | None = None, n_params: int | None = None) -> Diagnosis:
    """Diagnose committed draws (already past ``discard``): the numbers and a verdict with its reasons.

    ``coordinates``: the run's indices of ``theta``'s columns, where they are a subset of its ``n_params``."""
    n_chains, n_draws = energy.shape
    if n_draws < 4:
        raise ValueError("at least 4 draws per chain are needed to diagnose")
    s = summary_arrays(theta, energy)
    u, th = s["U"], s["theta"]
    pvals = chain_mean_normality(theta, energy)
    threshold = NORMALITY_ALPHA / len(pvals)  # Bonferroni over U and the p coordinates
    rejected = int(np.sum(pvals < threshold)) if np.all(np.isfinite(pvals)) else 0
    acc = accepted.mean(axis=1) if accepted.size else np.full(n_chains, np.nan)
    ess_min_theta = np.minimum(th["ess_bulk"], th["ess_tail"])
    worst_rhat = int(np.nanargmax(th["rhat"]))

    def name(j: Any) -> int:  # a column of ``theta`` → the run's coordinate
        return int(j) if coordinates is None else int(coordinates[j])

    reasons = []
    if n_chains < 2:
        reasons.append("R-hat needs at least 2 chains")
    max_rhat = float(np.nanmax(np.append(th["rhat"], u["rhat"])))
    if not max_rhat < RHAT_MAX:
        worst = "U" if u["rhat"] >= th["rhat"][worst_rhat] else f"theta[{name(worst_rhat)}]"
        reasons.append(f"max R-hat {max_rhat:.3f} ≥ {RHAT_MAX} (at {worst})")
    min_ess = float(np.nanmin(np.append(ess_min_theta, [u["ess_bulk"], u["ess_tail"]])))
    if not min_ess >= ESS_MIN:
        reasons.append(f"min ESS {min_ess:.0f} < {ESS_MIN:.0f}")
    if rejected:
        reasons.append(f"chain means of {rejected} variable(s) fail the Shapiro-Wilk normality test "
                       f"(p < {threshold:.2g}, Bonferroni)")
    if n_chains < 3:
        reasons.append("the normality check of chain means needs at least 3 chains")
    return Diagnosis(
        n_chains=n_chains, n_draws=n_draws, discard=discard,
        energy={"mean": float(energy.mean()), "rhat": float(u["rhat"]), "ess_bulk": float(u["ess_bulk"]),
                "ess_tail": float(u["ess_tail"]), "mcse_mean": float(u["mcse_mean"]),
                "normality_p": float(pvals[0])},
        theta_max_rhat=float(np.nanmax(th["rhat"])), theta_worst_rhat_index=name(worst_rhat),
        theta_min_ess_bulk=float(np.nanmin(th["ess_bulk"])), theta_min_ess_tail=float(np.nanmin(th["ess_tail"])),
        theta_min_ess_index=name(np.nanargmin(ess_min_theta)),
        acceptance_mean=float(np.mean(acc)), acceptance_min=float(np.min(acc)), acceptance_max=float(np.max(acc)),
        nonfinite=int(nonfinite), normality_min_p=float(np.nanmin(pvals)) if np.any(np.isfinite(pvals)) else math.nan,
        normality_rejected=rejected, normality_threshold=threshold, converged=not reasons, reasons=reasons,
        per_coordinate={"rhat": th["rhat"].tolist(), "ess_bulk": th["ess_bulk"].tolist(),
                        "ess_tail": th["ess_tail"].tolist(), "mcse_mean": th["mcse_mean"].tolist(),
                        "mean": theta.mean(axis=(0, 1)).tolist(), "normality_p": pvals[1:].tolist()},
        coordinates=None if coordinates is None else [int(c) for c in coordinates],
        n_params=n_params if n_params is not None else theta.shape[2],
    )


def plot_diagnostics(theta: np.ndarray, energy: np.ndarray, diag: Diagnosis, out_dir: str | Path,
                     n_coords: int = 4) -> list[Path]:
    """Trace and rank plots of U and of the ``n_coords`` coordinates with the worst R-hat, as PNG files."""
    import matplotlib.pyplot as plt  # ArviZ draws through pyplot: its figures are closed here, the backend left alone

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rhat = np.nan_to_num(np.asarray(diag.per_coordinate["rhat"]), nan=0.0)
    names = np.arange(theta.shape[2]) if diag.coordinates is None else np.asarray(diag.coordinates)
    worst = [int(names[i]) for i in np.argsort(-rhat)[:n_coords]]
    idata = to_inference_data(theta, energy, names)
    az = _arviz()
    written = []
    for kind, fn in (("trace", az.plot_trace), ("rank", az.plot_rank)):
        kwargs = {"compact": False} if kind == "trace" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # arviz 0.23 calls a matplotlib 3.11-deprecated API
            axes = fn(idata, var_names=["U", "theta"], coords={"param": worst}, figsize=(12, 2.6 * (len(worst) + 1)),
                      **kwargs)
        fig = np.ravel(axes)[0].get_figure()
        fig.tight_layout()
        path = out_dir / f"{kind}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
