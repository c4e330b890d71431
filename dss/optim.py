"""Training a batch of beads at once, each until its own held-out measure is below its own target.

Adam, SGD with momentum and RMSProp are written out over a ``(B, p)`` tensor with per-row step counts, so that a bead
that has reached its target stops (and stops costing gradient evaluations) while the others go on. Every tensor lives
on the beads' device; the host looks at the state only once per ``check_every`` steps, when the level is evaluated.

Gradients are full-batch for the small tasks, and minibatches over the whole training set for tasks that offer them
(``task.minibatches(seed)``: shuffled epochs from a seeded generator), so a training run, and hence an interrupted
string, is reproducible from its seed. The learning rate follows a schedule: ``plateau`` (each row's rate is cut when
its measure stops improving), ``cosine`` (annealed to ``min_lr`` over ``max_steps``) or ``constant``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

METHODS = ("adam", "sgd", "rmsprop")
SCHEDULES = ("plateau", "cosine", "constant")


@dataclass
class TrainResult:
    theta: torch.Tensor      # (B, p) the trained beads
    loss: torch.Tensor       # (B,) held-out measure at the end
    steps: torch.Tensor      # (B,) gradient steps taken by each bead
    reached: torch.Tensor    # (B,) bool: loss ≤ target
    stalled: torch.Tensor    # (B,) bool: the rate was cut at least three times (a plateau or a local minimum)


def train_to(task, theta: torch.Tensor, target: torch.Tensor | float, max_steps: int = 5000, lr: float = 0.01,
             method: str = "adam", check_every: int = 10,
             penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             patience: int = 20, decay: float = 0.5, min_lr: float = 1e-5, schedule: str = "plateau",
             seed: int = 0) -> TrainResult:
    """Descend the training loss of every row of ``theta`` until its held-out measure is ≤ ``target`` (per row).

    ``penalty(theta_active, rows)`` adds a regularizer (the constrained DSS springs); the stopping test uses the plain
    held-out measure. A task with a ``box`` keeps its rows inside [-box, box] (projected steps). With the ``plateau``
    schedule each row's learning rate is multiplied by ``decay`` when its held-out measure has not improved for
    ``patience`` checks: low levels such as L0 = 0.001 on the quadratic task are out of reach at a fixed rate. A row
    whose rate has been cut six times while its measure is still twice its target or more is given up (it sits on a
    plateau or in a local minimum; ``stalled`` reports it). ``seed`` draws the minibatches of a minibatch task.
    """
    theta = theta.detach().clone()
    dev, dt = theta.device, theta.dtype
    n = theta.shape[0]
    target = torch.as_tensor(target, dtype=dt, device=dev).expand(n).clone()
    steps = torch.zeros(n, dtype=torch.int64, device=dev)
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta) if method != "sgd" else None
    b1, b2, eps = 0.9, 0.999, 1e-8
    box = getattr(task, "box", None)
    rate = torch.full((n,), float(lr), dtype=dt, device=dev)
    stall = torch.zeros(n, dtype=torch.int64, device=dev)
    batches = task.minibatches(seed) if hasattr(task, "minibatches") else None
    loss = task.loss_eval(theta)
    best = loss.clone()
    active = torch.nonzero(loss > target).flatten()
    done = 0
    while active.numel() and done < max_steps:
        chunk = min(check_every, max_steps - done)
        rows = active
        x = theta[rows]
        mr = m[rows]
        vr = v[rows] if v is not None else None
        k0 = steps[rows].to(dt)
        lr_rows = rate[rows].unsqueeze(1)
        for j in range(chunk):
            x.requires_grad_(True)
            objective = task.loss_train(x) if batches is None else task.loss_train(x, next(batches))
            if penalty is not None:
                objective = objective + penalty(x, rows)
            (g,) = torch.autograd.grad(objective.sum(), x)
            with torch.no_grad():
                g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
                k = k0 + j + 1
                step_lr = lr_rows if schedule != "cosine" else _cosine(lr, min_lr, k, max_steps).unsqueeze(1)
                if method == "adam":
                    mr.mul_(b1).add_(g, alpha=1 - b1)
                    vr.mul_(b2).addcmul_(g, g, value=1 - b2)
                    mhat = mr / (1 - b1**k).unsqueeze(1)
                    vhat = vr / (1 - b2**k).unsqueeze(1)
                    x = x - step_lr * mhat / (vhat.sqrt() + eps)
                elif method == "sgd":  # heavy-ball momentum, as torch.optim.SGD(momentum=0.9)
                    mr.mul_(0.9).add_(g)
                    x = x - step_lr * mr
                else:  # rmsprop
                    vr.mul_(0.99).addcmul_(g, g, value=0.01)
                    x = x - step_lr * g / (vr.sqrt() + eps)
                if box is not None:
                    x = x.clamp(-box, box)
        with torch.no_grad():
            theta[rows], m[rows] = x.detach(), mr
            if v is not None:
                v[rows] = vr
            steps[rows] += chunk
            done += chunk
            loss[rows] = task.loss_eval(theta[rows])
            if schedule == "plateau":
                improved = loss[rows] < best[rows] * (1 - 1e-3)
                best[rows] = torch.minimum(best[rows], loss[rows])
                stall[rows] = torch.where(improved, 0, stall[rows] + 1)
                plateau = rows[stall[rows] >= patience]
                rate[plateau] = (rate[plateau] * decay).clamp_min(min_lr)
                stall[plateau] = 0
        # give up on rows stuck far above their target: the rate was cut six times and the loss is still ≥ 2·target
        hopeless = (rate[rows] <= lr * decay**6 * (1 + 1e-9)) & (loss[rows] >= 2 * target[rows])
        active = rows[(loss[rows] > target[rows]) & ~hopeless]
    return TrainResult(theta, loss, steps, loss <= target, rate <= lr * decay**3 * (1 + 1e-9))


def _cosine(lr: float, min_lr: float, k: torch.Tensor, total: int) -> torch.Tensor:
    """Cosine annealing from ``lr`` at step 0 to ``min_lr`` at step ``total``, per row (``k``: each row's step)."""
    frac = (k / max(total, 1)).clamp(max=1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1 + torch.cos(math.pi * frac))
