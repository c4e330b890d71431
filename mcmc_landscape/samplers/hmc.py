r"""Hamiltonian Monte Carlo over a batch of chains in PyTorch, on any device: all chains advance as one tensor.

Target π(θ) ∝ exp(-U(θ)/T) on the box [-L, L]^p. Each iteration draws a momentum r ~ N(0, M) per chain (M diagonal,
per chain), runs ``n_leapfrog`` leapfrog steps of size ε_c on H(θ, r) = U(θ)/T + ½ rᵀM⁻¹r, and accepts the end point
with probability min(1, exp(H_0 - H_1)) (Duane et al. 1987; Neal 2011).

The box is handled exactly: inside the leapfrog's position update a coordinate that leaves [-L, L] is reflected at
the wall and its momentum negated (Neal 2011, §5.1). Reflection keeps the map reversible and volume-preserving, so
the Metropolis correction keeps π exact. A trajectory whose energy or gradient becomes non-finite is rejected and
counted, never a crash.

Warm-up follows Stan: the step size of each chain is tuned by dual averaging toward a target acceptance (0.8 by
default; Hoffman and Gelman 2014), and a diagonal inverse mass matrix per chain is estimated from the draws of slow
windows of doubling length (75 / 25, 50, 100, ... / 50 iterations for a long warm-up), regularized toward 1e-3 as Stan
does; dual averaging restarts after each window. After warm-up ε and M are frozen. Trajectories have a fixed number of
steps so a batch stays in lockstep on a GPU; with ``jitter`` the count is drawn afresh each iteration (the same for
every chain) uniformly from [⌈n/2⌉, ⌊3n/2⌋]. With ``trajectory="chees"`` the length is tuned in warm-up over all
chains (:mod:`.chees`; by default to the squared jump of U per gradient) and the count is Halton-jittered each
iteration, still the same for every chain; the ChEES warm-up runs iteration by iteration (it reduces over the
chains between them), its sampling like any other.

One ``torch.Generator`` drives the whole batch; its state is part of the saved state, so on the CPU a resumed run
continues bit for bit.

The trajectory is :func:`leapfrog`, a torch loop with one batched gradient call per step, unless the caller passes a
``trajectory_fn`` with the same signature: the classifier energy supplies a Numba one on the CPU
(:func:`.hmc_mlp.mlp_torch_trajectory_fn`, every step of a chain in one call, tested equal to the loop),
which removes the per-step overhead of small tensors, and on a CUDA device one numba-cuda kernel for all steps of all
chains (:mod:`mcmc_landscape.samplers.hmc_gpu`, one thread per chain with θ in registers, no host synchronisation
inside a trajectory; tested equal to the loop in numba-cuda's simulator). Momenta, the accept step and adaptation
stay here in torch, except where the trajectory function also carries ``iterations``: the GPU kernel then runs whole
iterations (momentum, trajectory, accept, warm-up adaptation, kept draws) for a run of them in one launch, from random
numbers drawn here in the loop's order, so that the host's per-iteration work does not bound small batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from mcmc_landscape.devices import resolve_device  # noqa: F401  (re-exported: hmc.resolve_device)
from mcmc_landscape.errors import SpecError
from mcmc_landscape.samplers import chees
from mcmc_landscape.samplers.adaptation import MU_SHIFT, dual_average
from mcmc_landscape.samplers.bound import TorchKernel
from mcmc_landscape.samplers.start import uniform_start
from mcmc_landscape.samplers.walls import fold as _fold  # noqa: F401  (re-exported: hmc._fold)
from mcmc_landscape.samplers.walls import reflect

EnergyFn = Callable[[torch.Tensor], torch.Tensor]  # (C, p) -> (C,)
#: Optional (C, p) -> (U (C,), ∇U (C, p)); without one, autograd differentiates the energy.
EnergyGradFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: Optional fused trajectory with the signature of :func:`leapfrog` after its first argument; without one, the torch
#: loop of :func:`leapfrog` runs (a CPU energy can supply a compiled one: every step of a chain in one call).
TrajectoryFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]


class HMCSettings(NamedTuple):
    temperature: float = 1.0
    box: float = 10.0
    target_accept: float = 0.8
    warmup: int = 1000
    thin: int = 1
    n_leapfrog: int = 16
    jitter: bool = False
    initial_step: float = 0.05
    adapt_mass: bool = True
    trajectory: str = "fixed"  # "fixed" (n_leapfrog, or jittered around it) or "chees" (:mod:`.chees`)
    max_leapfrog: int = 1000  # ChEES: the most leapfrog steps an iteration takes
    chees_rate: bool = True  # ChEES "spread": maximize ChEES per unit of trajectory (per gradient), not ChEES itself
    #: ChEES: what the length maximizes per gradient: "energy", each chain's squared jump of U
    #: (:func:`.chees.energy_gradient`), or "spread", the chains' joint second moment (the paper's ChEES)
    chees_criterion: str = "energy"


class HMCState(NamedTuple):
    position: torch.Tensor  # (C, p)
    energy: torch.Tensor  # (C,) U
    grad: torch.Tensor  # (C, p) ∇U
    log_step: torch.Tensor  # (C,)
    log_step_bar: torch.Tensor
    h_bar: torch.Tensor
    mu: torch.Tensor
    inv_mass: torch.Tensor  # (C, p) diagonal of M⁻¹
    welford_n: int
    welford_mean: torch.Tensor  # (C, p)
    welford_m2: torch.Tensor  # (C, p)
    da_count: int  # iterations since dual averaging (re)started
    n_accepted: torch.Tensor  # (C,) int64, after warm-up
    n_nonfinite: torch.Tensor  # (C,) int64
    rng_state: torch.Tensor  # generator state (uint8)
    iteration: int
    # ChEES's host scalars (:class:`.chees.Chees`, field for field; unused with a fixed trajectory)
    chees_log_length: float = 0.0
    chees_log_length_ma: float = 0.0
    chees_adam_m: float = 0.0
    chees_adam_v: float = 0.0
    chees_updates: int = 0
    chees_halton: int = 0
    chees_mean_steps: float = 0.0

    def chees_scalars(self) -> chees.Chees:
        return chees.Chees(*(getattr(self, "chees_" + k) for k in chees.Chees._fields))

    def with_chees(self, c: chees.Chees) -> HMCState:
        return self._replace(**{"chees_" + k: v for k, v in c._asdict().items()})


def validate_settings(s: HMCSettings) -> None:
    if not s.temperature > 0 or not s.box > 0:
        raise SpecError("temperature and box half-width must be positive.")
    if not 0 < s.target_accept < 1:
        raise SpecError(f"target acceptance must lie in (0, 1), got {s.target_accept}.")
    if s.warmup < 0 or s.thin < 1 or s.n_leapfrog < 1:
        raise SpecError("warm-up must be ≥ 0, thinning ≥ 1 and the number of leapfrog steps ≥ 1.")
    if not s.initial_step > 0:
        raise SpecError(f"initial step size must be positive, got {s.initial_step}.")
    if s.trajectory not in ("fixed", "chees"):
        raise SpecError(f"the trajectory must be 'fixed' or 'chees', got {s.trajectory!r}.")
    if s.trajectory == "chees" and s.jitter:
        raise SpecError("a ChEES trajectory jitters its own length; drop --jitter.")
    if s.chees_criterion not in ("energy", "spread"):
        raise SpecError(f"the ChEES criterion must be 'energy' or 'spread', got {s.chees_criterion!r}.")
    if s.max_leapfrog < 1:
        raise SpecError(f"the most leapfrog steps an iteration takes must be ≥ 1, got {s.max_leapfrog}.")


def window_ends(warmup: int) -> tuple[int, int, list[int]]:
    """Stan's adaptation schedule: (start of slow windows, end of slow windows, iterations closing each window)."""
    if warmup < 20:
        return warmup, warmup, []
    init, term, base = 75, 50, 25
    if init + term + base > warmup:
        init, term = int(0.15 * warmup), int(0.1 * warmup)
        base = warmup - init - term
    start, stop = init, warmup - term
    ends, size, t = [], base, init
    while t < stop:
        nxt = t + size
        if nxt + 2 * size > stop:  # the last window absorbs what would be too short to stand alone
            nxt = stop
        ends.append(nxt)
        t, size = nxt, size * 2
    return start, stop, ends


def energy_and_grad(energy_fn: EnergyFn, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """U and ∇U for a batch: chains are independent, so the gradient of ΣU is every chain's own gradient."""
    with torch.enable_grad():
        x = theta.detach().requires_grad_(True)
        u = energy_fn(x)
        (g,) = torch.autograd.grad(u.sum(), x)
    return u.detach(), g.detach()


def leapfrog(eg: EnergyGradFn, pos: torch.Tensor, r: torch.Tensor, g: torch.Tensor, drift: torch.Tensor,
             kick: torch.Tensor, n_lf: int, box: float) -> tuple[torch.Tensor, ...]:
    """``n_lf`` ≥ 1 leapfrog steps from (pos, r) with ∇U = g there: position steps ``drift``·r (drift = εM⁻¹, (C, p)),
    momentum kicks ``kick``·∇U (kick = ε/T, (C, 1)), walls reflected inside each position step. Returns the end point,
    its momentum, U and ∇U."""
    x, rr = pos, torch.addcmul(r, kick, g, value=-0.5)
    for j in range(n_lf):
        x, rr = reflect(torch.addcmul(x, drift, rr), rr, box)
        uu, gg = eg(x)
        rr = torch.addcmul(rr, kick, gg, value=-1.0 if j < n_lf - 1 else -0.5)
    return x, rr, uu, gg


def init(energy_fn: EnergyFn, n_chains: int, p: int, seed: int, settings: HMCSettings,
         device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
         positions: torch.Tensor | np.ndarray | None = None, grad_fn: EnergyGradFn | None = None) -> HMCState:
    validate_settings(settings)
    if n_chains < 1:
        raise SpecError(f"the number of chains must be at least 1, got {n_chains}.")
    device = torch.device(device)
    if positions is None:
        positions = uniform_start(seed, (n_chains, p), settings.box)
    pos = torch.as_tensor(np.asarray(positions) if not torch.is_tensor(positions) else positions,
                          dtype=dtype).to(device).contiguous()
    if tuple(pos.shape) != (n_chains, p):
        raise SpecError(f"initial positions must have shape ({n_chains}, {p}), got {tuple(pos.shape)}.")
    if bool((pos.abs() > settings.box).any()):
        raise SpecError(f"initial positions must lie inside the box [-{settings.box}, {settings.box}].")
    u, g = grad_fn(pos) if grad_fn is not None else energy_and_grad(energy_fn, pos)
    if not bool(torch.isfinite(u).all()):
        raise SpecError("the energy is not finite at some initial positions; start the chains elsewhere.")
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.SeedSequence([int(seed), 2]).generate_state(1, np.uint64)[0] >> np.uint64(1)))
    zeros = torch.zeros(n_chains, dtype=dtype, device=device)
    zc = torch.zeros(n_chains, dtype=torch.int64, device=device)
    state = HMCState(
        pos, u, g, zeros + math.log(settings.initial_step), zeros.clone(), zeros.clone(),
        zeros + math.log(10 * settings.initial_step), torch.ones_like(pos), 0, torch.zeros_like(pos),
        torch.zeros_like(pos), 0, zc, zc.clone(), gen.get_state(), 0,
    )
    if settings.trajectory == "chees":
        # one step of the initial size, as the paper and BlackJAX: the criterion lengthens it where that pays, and
        # Adam's small steps do not come back from a long start within a few hundred warm-up iterations
        state = state.with_chees(chees.start(1, settings.initial_step))
    return state


class Schedule(NamedTuple):
    """What iteration ``it`` does in warm-up; the same for every chain, so the host follows it without the device."""

    warm: bool  # a warm-up iteration: dual averaging updates the step size
    da: int  # dual averaging's count at this iteration (its ``m``)
    slow: bool  # inside the slow windows: the new position enters the mass-matrix estimate
    w_n: int  # positions in the estimate, this one included
    window_end: bool  # the mass matrix is re-estimated and dual averaging restarts after this iteration
    last_warm: bool  # the step size freezes at its average after this iteration
    keep: bool  # a kept draw (after warm-up, on the thinning grid)

    def counters_after(self) -> tuple[int, int]:
        """(welford_n, da_count) for the next iteration."""
        return (0, 0) if self.window_end else (self.w_n, self.da)


def schedule_step(it: int, w_n: int, da: int, s: HMCSettings, start: int, stop: int,
                  ends: frozenset[int]) -> Schedule:
    """The warm-up decisions of iteration ``it``, given the counters before it."""
    warm = it < s.warmup
    slow = warm and s.adapt_mass and start <= it < stop
    da, w_n = da + warm, w_n + slow
    window_end = warm and s.adapt_mass and (it + 1) in ends and w_n > 1
    keep = not warm and (it - s.warmup + 1) % s.thin == 0
    return Schedule(warm, da, slow, w_n, window_end, warm and it == s.warmup - 1, keep)


#: Bytes of random numbers drawn ahead for a run of iterations (momenta and accept uniforms of every chain).
NOISE_BYTES = 64 << 20


class Noise(NamedTuple):
    """Random numbers of ``K`` iterations, drawn one iteration after another from the run's generator exactly as a
    one-iteration-at-a-time loop would draw them, so that draws do not depend on how iterations are grouped."""

    n_leapfrog: torch.Tensor  # (K,) int64: leapfrog steps of each iteration (all chains alike)
    normal: torch.Tensor  # (K, C, p) standard normal, scaled to the momentum by M^(1/2)
    uniform: torch.Tensor  # (K, C) uniform [0, 1) for the accept step


class FusedChains(NamedTuple):
    """The per-chain state a fused run of iterations updates in place (see :func:`run_block`)."""

    position: torch.Tensor
    energy: torch.Tensor
    grad: torch.Tensor
    log_step: torch.Tensor
    log_step_bar: torch.Tensor
    h_bar: torch.Tensor
    mu: torch.Tensor
    inv_mass: torch.Tensor
    welford_mean: torch.Tensor
    welford_m2: torch.Tensor
    n_accepted: torch.Tensor
    n_nonfinite: torch.Tensor


class FusedSchedule(NamedTuple):
    """Where a fused run of iterations starts: the counters before its first iteration and the warm-up schedule."""

    iteration: int
    welford_n: int
    da_count: int
    k_out: int  # kept draws of the block so far: the run writes its draws from this index on
    start: int
    stop: int
    ends: list[int]
    settings: HMCSettings
    inv_t: float


def draw_noise(gen: torch.Generator, k: int, shape: tuple[int, int], s: HMCSettings, device: torch.device,
               dtype: torch.dtype) -> Noise:
    """``k`` iterations' worth of noise, in the generator order of the loop: [jitter count], momenta, uniforms."""
    n_lf = torch.full((k,), s.n_leapfrog, dtype=torch.int64, device=device)
    normal = torch.empty((k, *shape), dtype=dtype, device=device)
    uniform = torch.empty((k, shape[0]), dtype=dtype, device=device)
    lo, hi = max(1, (s.n_leapfrog + 1) // 2), max(1, (3 * s.n_leapfrog) // 2)
    for i in range(k):
        if s.jitter:
            n_lf[i : i + 1] = torch.randint(lo, hi + 1, (1,), generator=gen, device=device)
        torch.randn(shape, generator=gen, device=device, dtype=dtype, out=normal[i])
        torch.rand(shape[0], generator=gen, device=device, dtype=dtype, out=uniform[i])
    return Noise(n_lf, normal, uniform)


def run_block(energy_fn: EnergyFn, state: HMCState, n_draws: int, settings: HMCSettings,
              max_warmup_steps: int | None = None, grad_fn: EnergyGradFn | None = None,
              trajectory_fn: TrajectoryFn | None = None):
    """Advance all chains: warm-up iterations first (at most ``max_warmup_steps``), then ``n_draws`` kept draws.

    Returns (state, theta (C, k, p), energy (C, k), accepted (C, k)) with draws as CPU numpy arrays, so device memory
    does not grow with the run.

    Random numbers are drawn ahead for runs of iterations (at most :data:`NOISE_BYTES`), in the order a loop of single
    iterations would draw them. Where the trajectory function carries ``iterations`` (the fused GPU kernel,
    :mod:`mcmc_landscape.samplers.hmc_gpu`), such a run of whole iterations, accept step and warm-up adaptation
    included, goes to the device in one launch; otherwise each iteration runs here in torch.
    """
    s = settings
    eg = grad_fn if grad_fn is not None else (lambda t: energy_and_grad(energy_fn, t))
    traj = trajectory_fn if trajectory_fn is not None else (lambda *args: leapfrog(eg, *args))
    fused_iterations = getattr(trajectory_fn, "iterations", None)
    warm_left = max(s.warmup - state.iteration, 0)
    warm_steps = warm_left if max_warmup_steps is None else min(warm_left, max_warmup_steps)
    if warm_steps < warm_left:
        n_draws = 0
    n_iter = warm_steps + n_draws * s.thin
    start, stop, ends = window_ends(s.warmup)
    ends_set = frozenset(ends)
    device = state.position.device
    gen = torch.Generator(device=device)
    gen.set_state(state.rng_state)
    pos, u, g = state.position, state.energy, state.grad
    log_step, ls_bar, h_bar, mu = (t.clone() for t in (state.log_step, state.log_step_bar, state.h_bar, state.mu))
    inv_mass = state.inv_mass
    w_n, w_mean, w_m2 = state.welford_n, state.welford_mean.clone(), state.welford_m2.clone()
    da = state.da_count
    n_acc, n_bad = state.n_accepted.clone(), state.n_nonfinite.clone()
    inv_t = 1.0 / s.temperature
    C, p = pos.shape
    # Draws of the block gather on the device and leave it once at the end: one transfer per block, and device
    # memory bounded by the block, not the run.
    out_theta = torch.empty((C, n_draws, p), dtype=pos.dtype, device=device)
    out_energy = torch.empty((C, n_draws), dtype=pos.dtype, device=device)
    out_acc = torch.empty((C, n_draws), dtype=torch.bool, device=device)
    k_out = 0
    it = state.iteration
    per_chunk = max(1, NOISE_BYTES // (C * (p + 1) * pos.element_size()))
    use_chees = s.trajectory == "chees"
    ch = state.chees_scalars()
    if fused_iterations is not None:  # the kernel updates the chain state in place
        pos, u, g, inv_mass = pos.clone(), u.clone(), g.clone(), inv_mass.clone()
    done = 0
    while done < n_iter:
        k = min(per_chunk, n_iter - done)
        chees_warm = use_chees and it < s.warmup  # ChEES's warm-up reduces over the chains between iterations
        if chees_warm:
            k = min(k, s.warmup - it)
        noise = draw_noise(gen, k, (C, p), s, device, pos.dtype)
        if use_chees and not chees_warm:
            lengths, ch = chees.sampling_steps(ch, k, s.max_leapfrog)
            noise.n_leapfrog.copy_(torch.tensor(lengths, dtype=torch.int64))
        done += k
        if fused_iterations is not None and not chees_warm:
            chains = FusedChains(pos, u, g, log_step, ls_bar, h_bar, mu, inv_mass, w_mean, w_m2, n_acc, n_bad)
            if fused_iterations(chains, noise, FusedSchedule(it, w_n, da, k_out, start, stop, ends, s, inv_t),
                                out_theta, out_energy, out_acc):
                for _ in range(k):  # the counters, as the kernel moved them
                    step = schedule_step(it, w_n, da, s, start, stop, ends_set)
                    w_n, da = step.counters_after()
                    k_out += step.keep
                    it += 1
                continue
            fused_iterations = None  # the kernel could not run: the torch iterations below take over
        for n_lf, normal, unif in zip(noise.n_leapfrog.tolist(), noise.normal, noise.uniform, strict=True):
            if chees_warm:
                n_lf = chees.warmup_steps(ch, log_step, s.max_leapfrog)
            r = normal / inv_mass.sqrt()
            h0 = u * inv_t + 0.5 * (r * r * inv_mass).sum(dim=1)
            eps = log_step.exp().unsqueeze(1)
            # the position step's scale and the momentum kick, fixed over the trajectory
            x, rr, uu, gg = traj(pos, r, g, eps * inv_mass, eps * inv_t, n_lf, s.box)
            h1 = uu * inv_t + 0.5 * (rr * rr * inv_mass).sum(dim=1)
            finite = torch.isfinite(h1) & torch.isfinite(gg).all(dim=1)
            log_a = torch.where(finite, torch.clamp(h0 - h1, max=0.0), torch.full_like(h1, -math.inf))
            a = log_a.exp()
            accept = (unif < a) & finite
            n_bad += (~finite).to(torch.int64)
            if chees_warm:
                time = n_lf * eps.squeeze(1)
                ch = chees.update(ch, chees.energy_gradient(u, uu, gg, rr, inv_mass, a, finite, time)
                                  if s.chees_criterion == "energy"
                                  else chees.gradient(pos, x, rr, inv_mass, a, finite, time, s.chees_rate))
            pos = torch.where(accept.unsqueeze(1), x, pos)
            u = torch.where(accept, uu, u)
            g = torch.where(accept.unsqueeze(1), gg, g)
            step = schedule_step(it, w_n, da, s, start, stop, ends_set)
            if step.warm:
                log_step, h_bar, ls_bar = dual_average(float(step.da), s.target_accept, a, h_bar, ls_bar, mu)
                if step.slow:
                    delta = pos - w_mean
                    w_mean = w_mean + delta / step.w_n
                    w_m2 = w_m2 + delta * (pos - w_mean)
                if step.window_end:
                    var = w_m2 / (step.w_n - 1)
                    inv_mass = (step.w_n / (step.w_n + 5.0)) * var + 1e-3 * (5.0 / (step.w_n + 5.0))
                    w_mean, w_m2 = torch.zeros_like(w_mean), torch.zeros_like(w_m2)
                    mu = log_step + MU_SHIFT
                    h_bar, ls_bar = torch.zeros_like(h_bar), torch.zeros_like(ls_bar)
                if step.last_warm:
                    log_step = ls_bar.clone()
                    if use_chees:
                        ch = chees.freeze(ch, log_step)
            else:
                n_acc += accept.to(torch.int64)
                if step.keep:
                    out_theta[:, k_out] = pos
                    out_energy[:, k_out] = u
                    out_acc[:, k_out] = accept
                    k_out += 1
            w_n, da = step.counters_after()
            it += 1
    new = HMCState(pos, u, g, log_step, ls_bar, h_bar, mu, inv_mass, w_n, w_mean, w_m2, da, n_acc, n_bad,
                   gen.get_state(), it).with_chees(ch)
    return new, out_theta.cpu().numpy(), out_energy.cpu().numpy(), out_acc.cpu().numpy()


class HMCKernel(TorchKernel):
    """HMC bound to a batched energy, settings, device and dtype, in the shape the runner drives."""

    name = "hmc"
    state_type = HMCState
    scalars = ("welford_n", "da_count", "iteration", "chees_updates", "chees_halton")
    floats = ("chees_log_length", "chees_log_length_ma", "chees_adam_m", "chees_adam_v", "chees_mean_steps")

    def __init__(self, energy_fn: EnergyFn, p: int, settings: HMCSettings, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float64, grad_fn: EnergyGradFn | None = None,
                 trajectory_fn: TrajectoryFn | None = None):
        validate_settings(settings)
        self.energy_fn, self.p, self.settings, self.grad_fn = energy_fn, p, settings, grad_fn
        self.trajectory_fn = trajectory_fn
        self.device, self.dtype = torch.device(device), dtype

    def init(self, n_chains: int, seed: int) -> HMCState:
        return init(self.energy_fn, n_chains, self.p, seed, self.settings, self.device, self.dtype,
                    grad_fn=self.grad_fn)

    def step_cost(self) -> int:
        return self.settings.thin * self.settings.n_leapfrog

    def run_block(self, state: HMCState, n_draws: int, max_warmup_steps: int | None = None):
        return run_block(self.energy_fn, state, n_draws, self.settings, max_warmup_steps, self.grad_fn,
                         self.trajectory_fn)

    def summary(self, state: HMCState) -> dict[str, float]:
        out = super().summary(state)
        if self.settings.trajectory == "chees":
            out["chees_length"] = math.exp(state.chees_log_length_ma)
            out["chees_mean_steps"] = state.chees_mean_steps
        return out
