"""The breadth-first variant of the paper's appendix A: the whole string is trained together as the level is lowered.

Start from the two models. At round r the level is L(r), lowered geometrically from the straight segment's maximum to
L0 over the first half of the rounds and held at L0 after that. Each round: every link whose interpolated maximum
exceeds τ·L(r) gets a new bead at its maximum; then every interior bead above α·L(r) is trained toward it (all in one
batch, at most ``steps_per_round`` steps). The string is connected when, at L(r) = L0, every bead and every link is
≤ τ·L0. Otherwise it fails when the rounds run out: a link still above ``persist_factor``·τ·L0 is ``persistent`` (the
variant's early sign of a disconnection), one just above the limit is ``budget``. Beads move in this variant, so the
stored snapshots give the bead order per round and the bead positions are the final ones. Every round is a function of
the string after the one before (the level follows from the round number and the two ends; Adam restarts each round),
so a string saved after round r continues from there to the same result.

Constrained DSS is the greedy algorithm with springs (``DSSSettings.zeta``, ``kappa``): see :mod:`dss.string`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .device import as_beads
from .interpolation import scan_links
from .optim import train_to
from .string import DSSSettings, Link, StringState, start_string


def connect_breadth_first(task, a: np.ndarray, b: np.ndarray, settings: DSSSettings, rounds: int = 40,
                          steps_per_round: int = 500,
                          on_round: Callable[[StringState], None] | None = None,
                          state: StringState | None = None) -> StringState:
    """Run the rounds from the two models, or continue ``state`` (a string saved after some round) to the end."""
    limit = settings.tau * settings.l0
    if state is None:
        state = start_string(task, a, b, settings)
    elif state.finished:
        return state
    first = scan_links(task, as_beads(task, a)[None], as_beads(task, b)[None])[0]
    top = max(first.max_loss, settings.l0)
    decay = max(1, rounds // 2)
    for r in range(state.rounds, rounds):
        t0 = time.perf_counter()
        level = settings.l0 * (top / settings.l0) ** max(0.0, 1.0 - (r + 1) / decay)
        links = state.current_links()
        lt = lambda ids: as_beads(task, np.stack([state.beads[i] for i in ids]))  # noqa: E731
        curves = scan_links(task, lt([state.links[i].left for i in links]), lt([state.links[i].right for i in links]),
                            n_grid=settings.n_grid, floor=settings.tau * level)
        for i, curve in zip(links, curves, strict=True):
            lk = state.links[i]
            lk.max_loss, lk.t_max, lk.status = curve.max_loss, curve.t_max, "pending"
            state.curves[i] = curve
            if curve.max_loss > settings.tau * level and len(state.beads) < settings.max_beads:
                bead = len(state.beads)
                pa, pb = state.beads[lk.left], state.beads[lk.right]
                state.beads.append(pa + curve.t_max * (pb - pa))
                state.bead_loss.append(curve.max_loss)
                state.bead_steps.append(0)
                state.bead_link.append(i)
                lk.status = "split"
                state.order.insert(state.order.index(lk.left) + 1, bead)
                state.links.append(Link(lk.left, bead, lk.depth + 1, parent=i))
                state.links.append(Link(bead, lk.right, lk.depth + 1, parent=i))
        interior = state.order[1:-1]
        if interior:
            res = train_to(task, as_beads(task, np.stack([state.beads[i] for i in interior])),
                           settings.alpha * level, steps_per_round, settings.lr, settings.optimizer,
                           settings.check_every, schedule=settings.schedule,
                           seed=settings.seed * 1_000_003 + 7919 * len(state.beads) + r)
            theta, loss, steps = res.theta.cpu().numpy().astype(np.float64), res.loss.cpu().numpy(), \
                res.steps.cpu().numpy()
            for k, i in enumerate(interior):
                state.beads[i] = theta[k]
                state.bead_loss[i] = float(loss[k])
                state.bead_steps[i] += int(steps[k])
            state.grad_steps += int(steps.sum())
        state.rounds += 1
        state.snapshots.append(list(state.order))
        state.wall_s += time.perf_counter() - t0
        if on_round is not None:
            on_round(state)
        if level <= settings.l0 and _all_pass(task, state, limit, settings):
            break
    links = state.current_links()
    for i in links:
        lk = state.links[i]
        if lk.max_loss <= limit and state.bead_loss[lk.left] <= limit and state.bead_loss[lk.right] <= limit:
            lk.status = "passed"
        else:
            lk.status = "failed"
            lk.reason = "persistent" if lk.max_loss >= settings.persist_factor * limit else "budget"
    state.finished = True
    return state


def _all_pass(task, state: StringState, limit: float, settings: DSSSettings) -> bool:
    """Certify the current string at the final level: every bead and every refined link maximum ≤ limit."""
    if any(state.bead_loss[i] > limit for i in state.order):
        return False
    links = state.current_links()
    a = as_beads(task, np.stack([state.beads[state.links[i].left] for i in links]))
    b = as_beads(task, np.stack([state.beads[state.links[i].right] for i in links]))
    ok = True
    for i, curve in zip(links, scan_links(task, a, b, n_grid=settings.n_grid, floor=limit), strict=True):
        lk = state.links[i]
        lk.max_loss, lk.t_max = curve.max_loss, curve.t_max
        state.curves[i] = curve
        ok &= curve.max_loss <= limit
    return ok
