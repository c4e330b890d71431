r"""ChEES: one HMC trajectory length tuned jointly over many chains (Hoffman, Radul and Sountsov, AISTATS 2021).

Why: a fixed number of leapfrog steps is either too short (a random walk in disguise) or too long (U-turns, wasted
gradients), and NUTS finds the length per chain by building trees, which breaks the lockstep a batch of chains needs
on a GPU. ChEES picks one length T for all chains by gradient ascent on the Change in the Estimator of the Expected
Square, ChEES(T) = ¼ E[(‖θ' - E θ'‖² - ‖θ - E θ‖²)²], estimated across the chains each warm-up iteration.

Its gradient in log T for chain c, whose trajectory ran for time t_c and ended at θ'_c with velocity v'_c = M⁻¹r'_c:

    g_c = t_c · (‖θ'_c - m'‖² - ‖θ_c - m‖²) · (θ'_c - m')·v'_c,

m, m' the chains' means of start and end (the end weighted by acceptance). The chains' g_c are averaged with their
acceptance probabilities as weights (non-finite trajectories weigh nothing) and divided by the square of the chains'
mean square spread (ChEES scales as a variance squared: without it the first iterations from a uniform start over
the box, far wider than the target, give gradients so large that Adam's second moment stalls the length for the rest
of the warm-up; the sign is unchanged). Adam steps log T up that gradient
(β₁ = 0, β₂ = 0.95, rate 0.025, each step clipped to ±0.35, as the paper and TFP); the length used is a moving average
of the iterates with weight k^(-1/2) (BlackJAX's decay), which settles the noise of the estimate.

Lockstep: T is a time, but every chain takes the same number of steps, ⌈h_k · T / ε̄⌉ (at least 1, at most a cap),
ε̄ the geometric mean of the chains' step sizes and h_k ∈ (0, 1) the k-th point of the base-2 Halton (van der Corput)
sequence: the jitter that breaks periodic orbits, spread more evenly than uniform draws, and drawing no random
numbers, so the run's random stream is the fixed-length sampler's. After warm-up the mean number of steps is frozen
(T over the frozen ε̄) and only the Halton jitter moves it.

The sampler's default criterion is not that spread but each chain's own expected squared jump of the energy per
gradient, E[a·(U' - U)²] / T (:func:`energy_gradient`), with the same Adam, averaging and jitter: on the report's
[2,2] landscape the chains' joint spread keeps paying for long trajectories (drift across basins and along flat
directions) while the ESS of U per iteration hardly depends on the length, so the spread buys ~20× the gradients
for 2× the ESS of U (``bench/RESULTS.md``, ChEES). Both start from one leapfrog step of the initial step size.

Everything here is host-side scalars (the length, Adam's moments, the counters) plus one reduction over the chains
per warm-up iteration; :func:`mcmc_landscape.samplers.hmc.run_block` calls it and stores the scalars in the run's
state, so a resumed run continues bit for bit.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

#: Adam's settings for log T and the clip of one step (Hoffman et al. 2021, §4; TFP's defaults).
RATE, BETA1, BETA2, ADAM_EPS, CLIP = 0.025, 0.0, 0.95, 1e-8, 0.35
#: The moving average of log T weighs iterate k by k^(-DECAY).
DECAY = 0.5


class Chees(NamedTuple):
    """The ChEES scalars a run carries (host floats and ints; stored with the run's state)."""

    log_length: float  # log T, Adam's iterate (a time: steps × step size)
    log_length_ma: float  # its moving average: the length in use
    adam_m: float
    adam_v: float
    updates: int  # Adam steps taken
    halton: int  # iterations run with a ChEES length: the index into the Halton sequence
    mean_steps: float  # after warm-up: the frozen mean number of steps, T / ε̄ (before: the initial count)


def start(n_leapfrog: int, initial_step: float) -> Chees:
    """Start at ``n_leapfrog`` steps of the initial step size (the sampler starts from one)."""
    log_t = math.log(n_leapfrog * initial_step)
    return Chees(log_t, log_t, 0.0, 0.0, 0, 0, float(n_leapfrog))


def halton(i: int) -> float:
    """Point ``i`` ≥ 0 of the base-2 Halton (van der Corput) sequence, in (0, 1): 1/2, 1/4, 3/4, 1/8, ..."""
    i += 1
    out, f = 0.0, 0.5
    while i:
        out += f * (i & 1)
        i >>= 1
        f *= 0.5
    return out


def steps(mean_steps: float, i: int, max_steps: int) -> int:
    """Leapfrog steps of iteration ``i``: the mean length jittered by Halton point ``i`` (uniform on (0, 2·mean),
    so the mean is kept), at least 1 and at most ``max_steps``."""
    return max(1, min(max_steps, math.ceil(2.0 * halton(i) * mean_steps)))


def reference_step(log_step: torch.Tensor) -> float:
    """ε̄: the geometric mean of the chains' step sizes (a host synchronisation)."""
    return math.exp(float(log_step.double().mean()))


def warmup_steps(c: Chees, log_step: torch.Tensor, max_steps: int) -> int:
    """Steps of the next warm-up iteration: the current length over the chains' current step size, jittered."""
    return steps(math.exp(c.log_length_ma) / reference_step(log_step), c.halton, max_steps)


def gradient(x0: torch.Tensor, x1: torch.Tensor, r1: torch.Tensor, inv_mass: torch.Tensor, accept_prob: torch.Tensor,
             finite: torch.Tensor, time: torch.Tensor, rate: bool = False) -> float:
    """The acceptance-weighted mean over chains of ChEES's gradient in log T (see the module docstring), or with
    ``rate`` the gradient of log(ChEES / T), ChEES per unit of trajectory, i.e. per gradient evaluation.

    ``x0`` (C, p) the starts, ``x1``/``r1`` the proposals and their momenta, ``inv_mass`` (C, p) the diagonal of M⁻¹,
    ``accept_prob`` (C,), ``finite`` (C,) bool, ``time`` (C,) each chain's trajectory time (steps × its step size)."""
    w = torch.where(finite, accept_prob, torch.zeros_like(accept_prob)).double()
    x1s = torch.where(finite.unsqueeze(1), x1, x0).double()  # a non-finite proposal weighs nothing; keep it finite
    r1s = torch.where(finite.unsqueeze(1), r1, torch.zeros_like(r1)).double()
    c0 = x0.double() - x0.double().mean(dim=0)
    m1 = (w.unsqueeze(1) * x1s).sum(dim=0) / (w.sum() + 1e-20)
    c1 = x1s - m1
    change = (c1 * c1).sum(dim=1) - (c0 * c0).sum(dim=1)
    per_chain = time.double() * change * (c1 * r1s * inv_mass.double()).sum(dim=1)
    grad = (w * per_chain).sum() / (w.sum() + 1e-20)
    if rate:  # d log(ChEES/T) / d log T = (d ChEES / d log T) / ChEES - 1
        return float(grad / (0.25 * (w * change * change).sum() / (w.sum() + 1e-20)) - 1.0)
    spread = (c0 * c0).sum(dim=1).mean()  # the chains' square spread: ChEES scales as its square
    return float(grad / (spread * spread + 1e-300))


def energy_gradient(u0: torch.Tensor, u1: torch.Tensor, g1: torch.Tensor, r1: torch.Tensor, inv_mass: torch.Tensor,
                    accept_prob: torch.Tensor, finite: torch.Tensor, time: torch.Tensor) -> float:
    """The gradient in log T of log(E[a·(U' - U)²] / T): the expected squared jump of the energy per gradient.

    Why: the chains' joint spread (:func:`gradient`) keeps growing with T where chains sit in different basins or
    drift along flat, box-bounded directions, so it buys long trajectories; but U, the quantity the analysis reads,
    changes between iterations mostly through the fresh momentum (H is conserved along a trajectory), so once a
    trajectory has turned kinetic energy into potential, longer ones only cost gradients. Each chain's own jump is
    measured, no centring over chains, so the spread between basins does not enter. The pathwise derivative is
    d(U' - U)²/d log T = 2 (U' - U) · t · ∇U(θ')·v', v' = M⁻¹r' the velocity at the end (as in ChEES).

    ``u0``/``u1`` (C,) the energies at start and proposal, ``g1`` (C, p) ∇U at the proposal, the rest as in
    :func:`gradient`. The temperature cancels in the ratio."""
    w = torch.where(finite, accept_prob, torch.zeros_like(accept_prob)).double()
    du = torch.where(finite, u1 - u0, torch.zeros_like(u0)).double()
    slope = torch.where(finite, (g1 * r1 * inv_mass).sum(dim=1), torch.zeros_like(u0)).double()
    num = (w * 2.0 * du * time.double() * slope).sum()
    den = (w * du * du).sum()
    return float(num / den - 1.0) if float(den) > 0 else float("nan")


def update(c: Chees, grad: float) -> Chees:
    """One Adam step of log T up ``grad`` (skipped if the gradient is not finite), and the moving average."""
    if not math.isfinite(grad):
        return c._replace(halton=c.halton + 1)
    t = c.updates + 1
    m = BETA1 * c.adam_m + (1.0 - BETA1) * grad
    v = BETA2 * c.adam_v + (1.0 - BETA2) * grad * grad
    m_hat, v_hat = m / (1.0 - BETA1**t), v / (1.0 - BETA2**t)
    step = max(-CLIP, min(CLIP, RATE * m_hat / (math.sqrt(v_hat) + ADAM_EPS)))
    log_t = c.log_length + step
    w = t**-DECAY
    return Chees(log_t, (1.0 - w) * c.log_length_ma + w * log_t, m, v, t, c.halton + 1, c.mean_steps)


def freeze(c: Chees, log_step: torch.Tensor) -> Chees:
    """At the end of warm-up: the mean number of steps from the length in use and the frozen step sizes."""
    return c._replace(mean_steps=math.exp(c.log_length_ma) / reference_step(log_step))


def sampling_steps(c: Chees, k: int, max_steps: int) -> tuple[list[int], Chees]:
    """Steps of the next ``k`` iterations after warm-up (the frozen mean, Halton-jittered), and the advanced state."""
    return [steps(c.mean_steps, c.halton + j, max_steps) for j in range(k)], c._replace(halton=c.halton + k)
