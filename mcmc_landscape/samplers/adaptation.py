r"""Dual averaging of the log step size toward a target acceptance, written once for every sampler.

Nesterov (2009) as Hoffman and Gelman (2014, §3.2) use it: after m warm-up iterations with acceptance a_m,
h̄ ← (1 - 1/(m+t₀)) h̄ + (δ - a_m)/(m+t₀), log ε = μ - √m/γ · h̄, and the averaged iterate
log ε̄ ← m^{-κ} log ε + (1 - m^{-κ}) log ε̄, with γ = 0.05, t₀ = 10, κ = 0.75 and μ = log(10 ε₀). The same Python
functions serve floats inside Numba kernels (compiled with ``numba.njit``), NumPy arrays and torch tensors; the
fused GPU kernel of :mod:`.hmc_gpu` takes these constants as its globals, so no copy can drift. Both functions are
``register_jitable``: plain Python from Python, compiled where a Numba kernel calls them.
"""

from __future__ import annotations

import math
from typing import Any

from numba.extending import register_jitable

#: γ: how strongly log ε is pulled toward the shrinkage point μ.
GAMMA = 0.05
#: t₀: iterations of "burn-in" for the running mean h̄, which damps the first updates.
T0 = 10.0
#: κ: the decay exponent of the averaging weights.
KAPPA = 0.75
#: μ = log ε + log 10: the shrinkage point sits at ten times the step reached (Stan's choice).
MU_SHIFT = math.log(10.0)


@register_jitable
def restart_at(warmup: int) -> int:
    """The random walk's restart of the averaging halfway through a warm-up of 200 steps or more (0: none)."""
    return warmup // 2 if warmup >= 200 else 0


@register_jitable
def dual_average(m: float, target: float, a: Any, h_bar: Any, ls_bar: Any, mu: Any) -> tuple[Any, Any, Any]:
    """One update at count ``m`` ≥ 1 with acceptance ``a``: (log step, h̄, averaged log step)."""
    w = 1.0 / (m + T0)
    h_bar = (1.0 - w) * h_bar + w * (target - a)
    ls = mu - math.sqrt(m) / GAMMA * h_bar
    eta = m**-KAPPA
    ls_bar = eta * ls + (1.0 - eta) * ls_bar
    return ls, h_bar, ls_bar


@register_jitable
def adapt_step(t: int, restart: int, warmup: int, a: Any, target: float, ls: Any, hb: Any, ls_bar: Any,
               mu: Any) -> tuple[Any, Any, Any, Any]:
    """Warm-up step ``t`` of the random walk's adaptation, restarted at step ``restart`` (> 0) from the step reached;
    at the last warm-up step the averaged log step is taken. Returns (log step, h̄, averaged log step, μ)."""
    if t == restart and restart > 0:
        mu = ls + MU_SHIFT
        hb = 0.0 * hb
        ls_bar = 0.0 * ls_bar
    m = t + 1.0 - restart if t >= restart else t + 1.0
    ls, hb, ls_bar = dual_average(m, target, a, hb, ls_bar, mu)
    if t == warmup - 1:
        ls = ls_bar
    return ls, hb, ls_bar, mu
