"""How complete a census is: the minima not yet seen, estimated from how often each was hit.

Quenches are draws from a population of basins; ``f_k`` is the number of minima hit exactly k times in n quenches.

* :func:`chao1`: the bias-corrected Chao1 lower-bound estimate of the number of minima,
  S_obs + (n−1)/n · f1(f1−1) / (2(f2+1)), with its variance (Chao 2005, EstimateS) and the log-normal 95% interval
  of Chao (1987), whose lower end is never below S_obs.
* :func:`good_turing_new`: the Good–Turing probability that the next quench finds a minimum not seen yet, f1/n
  (with ``n`` every quench, minima or not: a quench ending elsewhere finds no new minimum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def frequency_counts(labels: np.ndarray) -> np.ndarray:
    """``f[k]`` = number of minima hit exactly k times (``labels`` ≥ 0 name minima; −1: not a minimum)."""
    labels = np.asarray(labels)
    hits = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
    hits = hits[hits > 0]
    return np.bincount(hits, minlength=3) if hits.size else np.zeros(3, int)


def chao1(labels: np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Bias-corrected Chao1 estimate of the number of minima, its standard error and log-normal interval."""
    from scipy.stats import norm

    f = frequency_counts(labels)
    n = int((np.arange(len(f)) * f).sum())
    s_obs = int(f[1:].sum())
    f1, f2 = int(f[1]), int(f[2])
    if n == 0:
        return {"s_obs": 0, "n": 0, "f1": 0, "f2": 0, "estimate": 0.0, "unseen": 0.0, "se": 0.0,
                "low": 0.0, "high": 0.0, "confidence": confidence}
    a = (n - 1) / n
    unseen = a * f1 * (f1 - 1) / (2 * (f2 + 1))
    if f2 > 0:                              # the bias-corrected variance (EstimateS)
        var = (a * f1 * (f1 - 1) / (2 * (f2 + 1)) + a**2 * f1 * (2 * f1 - 1) ** 2 / (4 * (f2 + 1) ** 2)
               + a**2 * f1**2 * f2 * (f1 - 1) ** 2 / (4 * (f2 + 1) ** 4))
    else:
        var = a * f1 * (f1 - 1) / 2 + a**2 * f1 * (2 * f1 - 1) ** 2 / 4 - a**2 * f1**4 / (4 * max(unseen + s_obs, 1))
    var = max(var, 0.0)
    z = float(norm.ppf(0.5 + confidence / 2))
    if unseen > 0 and var > 0:
        k = math.exp(z * math.sqrt(math.log(1 + var / unseen**2)))
        low, high = s_obs + unseen / k, s_obs + unseen * k
    else:                                   # nothing seen once more than once: no log-normal interval to take
        low, high = float(s_obs), s_obs + z * math.sqrt(var)
    return {"s_obs": s_obs, "n": n, "f1": f1, "f2": f2, "estimate": s_obs + unseen, "unseen": unseen,
            "se": math.sqrt(var), "low": low, "high": high, "confidence": confidence}


def good_turing_new(labels: np.ndarray, n_quenched: int | None = None) -> float:
    """Probability that the next quench ends at a minimum not seen yet: f1 / n (Good–Turing)."""
    f = frequency_counts(labels)
    n = len(labels) if n_quenched is None else n_quenched
    return float(f[1]) / n if n else float("nan")
