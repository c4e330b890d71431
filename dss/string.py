"""The string of beads and greedy Dynamic String Sampling (Freeman and Bruna, Algorithm 1), with its constrained form.

Two models θ_A, θ_B with held-out loss ≤ L0 are joined by a string of beads. For every link whose interpolated loss
exceeds τ·L0, a bead is inserted at the maximum t* (or at t = 0.5), trained until its loss is ≤ α·L0, and the two new
links are examined in turn, down to a depth limit. The paper's recursion is run level by level: all links of one depth
are scanned in one batched pass and all the beads they need are trained together in one batch; since links are
independent the string is the one the recursion builds.

Conventions, stated in every output: the bead count includes both endpoints (as the paper's figures count them);
lengths are Euclidean over all parameters (weights and biases); the normalized geodesic length is the string's length
over ‖θ_B − θ_A‖. A connection *fails* in one of three ways, reported per link: ``depth`` (the depth limit was
reached), ``budget`` (a bead could not be trained below τ·L0 within its step budget, or the run's budget ran out), or
``persistent`` (a high-loss link: its maximum is at least ``persist_factor``·τ·L0 and its excess over τ·L0 is still at
least ``persist_ratio`` times its ancestor's excess ``persist_depth`` splits earlier; splitting does not bring it
down, the paper's sign of a disconnection), also when the bead inserted at its maximum settles on a plateau or local
minimum at ``persist_factor``·τ·L0 or more (it cannot be trained into the level set from there; the midpoint of θ and
θ with two hidden units swapped is such a point). A link that hovers just above the limit at the depth limit is
``depth``.

Constrained DSS (the paper's appendix A) trains a bead on F̃(θ) = F(θ) + ζ(‖θ_l − θ‖ + ‖θ_r − θ‖) + κ·|cos∠(θ_l − θ_r,
θ − m)| with θ_l, θ_r the link's ends and m their midpoint: ζ makes the string springy, κ keeps the bead near the
hyperplane equidistant from its neighbours (the printed formula writes the midpoint as (θ_{i-1} − θ_{i+1})/2; the
equidistant hyperplane passes through (θ_{i-1} + θ_{i+1})/2, which is what is used).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from mcmc_landscape.errors import SpecError

from .device import as_beads
from .interpolation import LinkCurve, scan_links
from .optim import METHODS, SCHEDULES, train_to

CONVENTIONS = ("bead count includes both endpoints; lengths are Euclidean over all parameters (weights and biases); "
               "normalized length = string length / straight distance; the thresholded loss is the held-out loss")


@dataclass
class DSSSettings:
    """Everything that decides a string; stored with it (a resume must match)."""

    l0: float
    alpha: float = 0.95
    tau: float = 1.0
    max_depth: int = 10
    t_star: str = "peak"
    n_grid: int = 65
    optimizer: str = "adam"
    lr: float = 0.05
    max_steps: int = 20000
    max_total_steps: int = 2_000_000
    max_beads: int = 512
    zeta: float = 0.0
    kappa: float = 0.0
    check_every: int = 10
    schedule: str = "plateau"
    persist_ratio: float = 0.5
    persist_depth: int = 3
    persist_factor: float = 5.0
    jitter: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.l0) and self.l0 > 0):
            raise SpecError(f"L0 must be a positive number, got {self.l0}.")
        if not 0 < self.alpha <= 1:
            raise SpecError(f"α must be in (0, 1], got {self.alpha}; beads are trained to α·L0.")
        if self.tau < 1:
            raise SpecError(f"τ must be at least 1 (a link passes when its maximum is ≤ τ·L0), got {self.tau}.")
        if self.t_star not in ("peak", "mid"):
            raise SpecError(f"t* must be 'peak' or 'mid', got {self.t_star!r}.")
        if self.optimizer not in METHODS:
            raise SpecError(f"optimizer must be one of {', '.join(METHODS)}, got {self.optimizer!r}.")
        if self.schedule not in SCHEDULES:
            raise SpecError(f"the learning-rate schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}.")

    @property
    def variant(self) -> str:
        return "constrained" if (self.zeta > 0 or self.kappa > 0) else "greedy"


@dataclass
class Link:
    left: int
    right: int
    depth: int
    parent: int = -1
    status: str = "pending"          # pending | passed | split | failed
    max_loss: float = float("nan")
    t_max: float = float("nan")
    reason: str = ""


@dataclass
class StringState:
    """A string as it grows: every bead ever trained, every link ever scanned, the current order, and counters."""

    beads: list[np.ndarray]
    bead_loss: list[float]
    bead_steps: list[int]
    bead_link: list[int]             # the link a bead was inserted into (-1 for the endpoints)
    order: list[int]                 # bead ids along the string
    links: list[Link]
    curves: dict[int, LinkCurve] = field(default_factory=dict)
    snapshots: list[list[int]] = field(default_factory=list)
    rounds: int = 0
    grad_steps: int = 0
    wall_s: float = 0.0
    finished: bool = False

    @classmethod
    def start(cls, a: np.ndarray, b: np.ndarray, loss_a: float, loss_b: float) -> StringState:
        return cls([np.asarray(a, np.float64), np.asarray(b, np.float64)], [loss_a, loss_b], [0, 0], [-1, -1], [0, 1],
                   [Link(0, 1, 0)], snapshots=[[0, 1]])

    # -- views ----------------------------------------------------------------------------------------------------
    def current_links(self) -> list[int]:
        """Links between consecutive beads of the current string, in order."""
        index = {(lk.left, lk.right): i for i, lk in enumerate(self.links) if lk.status != "split"}
        return [index[(l, r)] for l, r in zip(self.order[:-1], self.order[1:], strict=True)]

    def path(self) -> np.ndarray:
        return np.stack([self.beads[i] for i in self.order])

    def lineage(self, link: int) -> list[float]:
        """Maxima of a link and of its ancestors, newest first."""
        out = []
        while link >= 0:
            out.append(self.links[link].max_loss)
            link = self.links[link].parent
        return out

    def outcome(self, settings: DSSSettings) -> dict[str, Any]:
        """The numbers a user reads: connected or not (and how), beads, lengths, Γ̃, cost."""
        path = self.path()
        seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
        straight = float(np.linalg.norm(path[-1] - path[0]))
        links = self.current_links()
        failed = [i for i in links if self.links[i].status == "failed"]
        pending = [i for i in links if self.links[i].status == "pending"]
        reasons = sorted({self.links[i].reason for i in failed})
        connected = self.finished and not failed and not pending
        reason = "" if connected else ("persistent" if "persistent" in reasons else reasons[0] if reasons
                                       else "unfinished")
        maxima = [m for m in (self.links[i].max_loss for i in links) if not np.isnan(m)]
        return {
            "connected": bool(connected), "reason": reason, "variant": settings.variant,
            "l0": settings.l0, "tau": settings.tau, "alpha": settings.alpha, "limit": settings.tau * settings.l0,
            "n_beads": len(self.order), "length": float(seg.sum()), "straight_distance": straight,
            "normalized_length": float(seg.sum() / straight) if straight > 0 else float("nan"),
            "max_interpolated_loss": float(max(maxima)) if maxima else float("nan"),
            "max_bead_loss": float(max(self.bead_loss[i] for i in self.order)),
            "depth": int(max((self.links[i].depth for i in links), default=0)),
            "rounds": self.rounds, "grad_steps": int(self.grad_steps), "wall_s": round(self.wall_s, 3),
            "beads_trained": len(self.beads) - 2,
            "failed_links": [{"link": i, "left": self.links[i].left, "right": self.links[i].right,
                              "reason": self.links[i].reason, "max_loss": self.links[i].max_loss,
                              "t_max": self.links[i].t_max, "lineage_maxima": self.lineage(i),
                              "rejected_bead_loss": [self.bead_loss[j] for j, lk in enumerate(self.bead_link) if lk == i],
                              "length": float(np.linalg.norm(self.beads[self.links[i].right]
                                                             - self.beads[self.links[i].left]))}
                             for i in failed],
            "conventions": CONVENTIONS,
        }


def _persistent(state: StringState, link: int, settings: DSSSettings) -> bool:
    """Splitting did not lower the link's excess over the limit: after ``persist_depth`` splits it is still at least
    ``persist_ratio`` times what it was (a converging link loses most of its excess at every split)."""
    lineage = state.lineage(link)
    if len(lineage) <= settings.persist_depth:
        return False
    limit = settings.tau * settings.l0
    high = lineage[0] >= settings.persist_factor * limit
    return high and lineage[0] - limit >= settings.persist_ratio * (lineage[settings.persist_depth] - limit)


def _spring_penalty(left: torch.Tensor, right: torch.Tensor, zeta: float, kappa: float):
    """Constrained DSS: springs to both neighbours and a pull toward their equidistant hyperplane."""
    axis = left - right
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-300)
    mid = 0.5 * (left + right)

    def penalty(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = zeta * ((left[rows] - x).norm(dim=1) + (right[rows] - x).norm(dim=1))
        if kappa > 0:
            off = x - mid[rows]
            cos = (off * axis[rows]).sum(1) / off.norm(dim=1).clamp_min(1e-12)
            out = out + kappa * cos.abs()
        return out

    return penalty


def _scan(task, items: list[tuple[StringState, int]], settings: DSSSettings) -> list[LinkCurve]:
    a = as_beads(task, np.stack([st.beads[st.links[i].left] for st, i in items]))
    b = as_beads(task, np.stack([st.beads[st.links[i].right] for st, i in items]))
    return scan_links(task, a, b, n_grid=settings.n_grid, floor=settings.tau * settings.l0)


def start_string(task, a: np.ndarray, b: np.ndarray, settings: DSSSettings) -> StringState:
    """A two-bead string; both ends must already lie in the level set (held-out loss ≤ τ·L0)."""
    limit = settings.tau * settings.l0
    with torch.no_grad():
        ends = task.loss_eval(as_beads(task, np.stack([a, b]))).cpu().numpy()
    for name, value in zip(("first", "second"), ends, strict=True):
        if not value <= limit:
            raise SpecError(f"the {name} model has held-out loss {value:.4g} above τ·L0 = {limit:.4g}; train it "
                            f"below L0 first (or raise --l0).")
    return StringState.start(a, b, float(ends[0]), float(ends[1]))


def connect(task, a: np.ndarray | None = None, b: np.ndarray | None = None, settings: DSSSettings | None = None,
            state: StringState | None = None, on_round: Callable[[StringState], None] | None = None) -> StringState:
    """Greedy DSS between ``a`` and ``b`` (flat vectors), or continue ``state`` (a resumed string).

    ``on_round(state)`` is called after every level (the CLI saves the string there, atomically).
    """
    if settings is None:
        raise SpecError("connect needs DSSSettings (at least L0).")
    if state is None:
        state = start_string(task, a, b, settings)
    callback = None if on_round is None else (lambda states: on_round(states[0]))
    return connect_many(task, [state], settings, callback)[0]


def connect_many(task, states: list[StringState], settings: DSSSettings,
                 on_round: Callable[[list[StringState]], None] | None = None) -> list[StringState]:
    """Grow several strings in lockstep: one batched scan of every pending link of every string per level, and one
    batch for all the beads they need. Each string ends as it would alone (links and strings are independent)."""
    limit = settings.tau * settings.l0
    while True:
        pending = [(st, i) for st in states for i in st.current_links() if st.links[i].status == "pending"]
        if not pending:
            break
        t0 = time.perf_counter()
        to_split: list[tuple[StringState, int]] = []
        for (st, i), curve in zip(pending, _scan(task, pending, settings), strict=True):
            lk = st.links[i]
            lk.max_loss, lk.t_max = curve.max_loss, curve.t_max
            st.curves[i] = curve
            if curve.max_loss <= limit:
                lk.status = "passed"
            elif lk.depth >= settings.max_depth:
                lk.status, lk.reason = "failed", "persistent" if _persistent(st, i, settings) else "depth"
            elif st.grad_steps >= settings.max_total_steps or len(st.beads) >= settings.max_beads:
                lk.status, lk.reason = "failed", "budget"
            else:
                to_split.append((st, i))
        if to_split:
            left = as_beads(task, np.stack([st.beads[st.links[i].left] for st, i in to_split]))
            right = as_beads(task, np.stack([st.beads[st.links[i].right] for st, i in to_split]))
            t = as_beads(task, np.asarray([st.links[i].t_max if settings.t_star == "peak" else 0.5
                                           for st, i in to_split])).unsqueeze(1)
            start = left + t * (right - left)
            if settings.jitter > 0:
                start = start + _jitter(to_split, left, right, settings)
            penalty = (_spring_penalty(left, right, settings.zeta, settings.kappa) if settings.variant == "constrained"
                       else None)
            res = train_to(task, start, settings.alpha * settings.l0, settings.max_steps,
                           settings.lr, settings.optimizer, settings.check_every, penalty,
                           schedule=settings.schedule, seed=_round_seed(states, settings))
            theta, loss = res.theta.cpu().numpy().astype(np.float64), res.loss.cpu().numpy()  # once per depth
            stalled, steps = res.stalled.cpu().numpy(), res.steps.cpu().numpy()
            for k, (st, i) in enumerate(to_split):
                stuck = bool(stalled[k]) and float(loss[k]) >= settings.persist_factor * limit
                _insert(st, i, theta[k], float(loss[k]), int(steps[k]), limit, stuck)
        elapsed = time.perf_counter() - t0
        busy = {id(st) for st, _ in pending}
        for st in states:
            if id(st) in busy:
                st.rounds += 1
                st.snapshots.append(list(st.order))
                st.wall_s += elapsed
        if on_round is not None:
            on_round(states)
    for st in states:
        st.finished = True
    return states


def _jitter(items: list[tuple[StringState, int]], left: torch.Tensor, right: torch.Tensor,
            settings: DSSSettings) -> torch.Tensor:
    """A tiny seeded perturbation of each new bead (``jitter`` × link length / √p in norm, on average).

    The midpoint of θ and its copy with two hidden units swapped has those two units identical, and gradient descent
    keeps them identical forever; stochastic training would break that tie, so we do, reproducibly: the noise depends
    only on the seed and the bead's index, so a resumed string is the same string.
    """
    noise = torch.empty(left.shape, dtype=left.dtype)
    scale = settings.jitter * (right - left).norm(dim=1) / left.shape[1] ** 0.5
    seen: dict[int, int] = {}
    for k, (st, _) in enumerate(items):
        j = seen[id(st)] = seen.get(id(st), -1) + 1  # the bead's index among its own string's new beads
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + len(st.beads) + j)
        noise[k] = torch.randn(left.shape[1], generator=gen, dtype=left.dtype)  # on the CPU: the same on any device
    return scale.unsqueeze(1) * noise.to(left.device)


def _round_seed(states: list[StringState], settings: DSSSettings) -> int:
    """The seed of one depth's minibatches: a function of the strings as they stand, so a resumed string draws the
    batches an uninterrupted one drew."""
    return settings.seed * 1_000_003 + 7919 * sum(len(st.beads) for st in states) + len(states)


def _insert(st: StringState, link: int, bead_theta: np.ndarray, loss: float, steps: int, limit: float,
            stuck: bool = False) -> None:
    """Record a trained bead; if it lies in the level set, split the link at it, else the link fails: ``persistent``
    when the bead settled (a plateau or local minimum) at ``persist_factor``·τ·L0 or more, else ``budget``."""
    lk = st.links[link]
    bead = len(st.beads)
    st.beads.append(bead_theta)
    st.bead_loss.append(loss)
    st.bead_steps.append(steps)
    st.bead_link.append(link)
    st.grad_steps += steps
    if not loss <= limit:
        lk.status, lk.reason = "failed", "persistent" if stuck else "budget"
        return
    lk.status = "split"
    st.order.insert(st.order.index(lk.left) + 1, bead)
    st.links.append(Link(lk.left, bead, lk.depth + 1, parent=link))
    st.links.append(Link(bead, lk.right, lk.depth + 1, parent=link))


def settings_dict(settings: DSSSettings) -> dict[str, Any]:
    return asdict(settings)
