"""Training a batch of beads at once, each until its own held-out loss is below its own target.

Adam and RMSProp are written out over a ``(B, p)`` tensor with per-row step counts, so that a bead that has reached its
target stops (and stops costing gradient evaluations) while the others go on. Full-batch gradients: the tasks here are
small; the step is deterministic, so an interrupted string resumes to the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class TrainResult:
    theta: torch.Tensor      # (B, p) the trained beads
    loss: torch.Tensor       # (B,) held-out loss at the end
    steps: torch.Tensor      # (B,) gradient steps taken by each bead
    reached: torch.Tensor    # (B,) bool: loss ≤ target
    stalled: torch.Tensor    # (B,) bool: the rate was cut at least three times (a plateau or a local minimum)


def train_to(task, theta: torch.Tensor, target: torch.Tensor | float, max_steps: int = 5000, lr: float = 0.01,
             method: str = "adam", check_every: int = 10,
             penalty: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             patience: int = 20, decay: float = 0.5, min_lr: float = 1e-5) -> TrainResult:
    """Descend the training loss of every row of ``theta`` until its held-out loss is ≤ ``target`` (per row).

    ``penalty(theta_active, rows)`` adds a regularizer (the constrained DSS springs); the stopping test uses the plain
    held-out loss. A task with a ``box`` keeps its rows inside [-box, box] (projected steps). Each row's learning
    rate is multiplied by ``decay`` when its held-out loss has not improved for ``patience`` checks (a plateau):
    low levels such as L0 = 0.001 on the quadratic task are out of reach at a fixed rate. A row whose rate has been cut
    six times while its loss is still twice its target or more is given up (it sits on a plateau or in a local
    minimum; ``stalled`` reports it).
    """
    theta = theta.detach().clone()
    n = theta.shape[0]
    target = torch.as_tensor(target, dtype=theta.dtype).expand(n).clone()
    steps = torch.zeros(n, dtype=torch.int64)
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    b1, b2, eps = 0.9, 0.999, 1e-8
    box = getattr(task, "box", None)
    rate = torch.full((n,), float(lr), dtype=theta.dtype)
    stall = torch.zeros(n, dtype=torch.int64)
    with torch.no_grad():
        loss = task.loss_eval(theta)
    best = loss.clone()
    active = torch.nonzero(loss > target).flatten()
    done = 0
    while active.numel() and done < max_steps:
        chunk = min(check_every, max_steps - done)
        rows = active
        x = theta[rows]
        mr, vr = m[rows], v[rows]
        k0 = steps[rows].to(theta.dtype)
        lr_rows = rate[rows].unsqueeze(1)
        for j in range(chunk):
            x.requires_grad_(True)
            objective = task.loss_train(x)
            if penalty is not None:
                objective = objective + penalty(x, rows)
            (g,) = torch.autograd.grad(objective.sum(), x)
            with torch.no_grad():
                g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
                if method == "adam":
                    k = k0 + j + 1
                    mr.mul_(b1).add_(g, alpha=1 - b1)
                    vr.mul_(b2).addcmul_(g, g, value=1 - b2)
                    mhat = mr / (1 - b1**k).unsqueeze(1)
                    vhat = vr / (1 - b2**k).unsqueeze(1)
                    x = x - lr_rows * mhat / (vhat.sqrt() + eps)
                else:  # rmsprop
                    vr.mul_(0.99).addcmul_(g, g, value=0.01)
                    x = x - lr_rows * g / (vr.sqrt() + eps)
                if box is not None:
                    x = x.clamp(-box, box)
        with torch.no_grad():
            theta[rows], m[rows], v[rows] = x.detach(), mr, vr
            steps[rows] += chunk
            done += chunk
            loss[rows] = task.loss_eval(theta[rows])
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
