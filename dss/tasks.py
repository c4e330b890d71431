"""Tasks: what DSS connects. A task gives a model, train and evaluation data, a loss and a metric.

Beads are flat parameter vectors. Every task evaluates a *batch* of them, shape ``(B, p)``, in one pass: the
interpolated loss at many ``t`` and all the beads of one level are each one call. Two ways to evaluate:

* :class:`MLPTask` — fully connected nets in the layout of :mod:`mcmc_landscape.models.nets` (per layer ``W`` in × out,
  row-major, then ``b``), evaluated with batched matrix products. The regression tasks of the paper, its appendix's
  permutation task and the classifier of the sampling side are all MLP tasks; the classifier's loss *is* the sampler's
  energy U (:func:`mcmc_landscape.models.energy.mlp_energy_torch`, the same data, rotation, activation and layout).
* :class:`ModuleTask` — any ``nn.Module`` through ``torch.func.functional_call`` under ``vmap`` over the flat vectors,
  so a convnet or an LSTM fits the same code. A test holds the two paths equal on an MLP.

The thresholded loss is measured on held-out data (``loss_eval``), as in the paper; training uses ``loss_train``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mcmc_landscape.errors import SpecError

from .device import resolve_device
from .module_task import ModuleTask, digest

POLYNOMIALS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "quadratic": ("0.5x² + 0.25x + 0.1", lambda x: 0.5 * x**2 + 0.25 * x + 0.1),
    "cubic": ("8x³ − 10x² + 3x", lambda x: 8 * x**3 - 10 * x**2 + 3 * x),
}
TASK_NAMES = ("quadratic", "cubic", "permutation", "classifier", "mnist", "cifar10", "ptb", "user")
_ACT = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


@dataclass
class MLPTask:
    """A fully connected net ``widths[0] → … → widths[-1]`` with a loss on fixed data; see the module docstring.

    ``loss`` is ``"mae"`` (mean absolute error, the paper's code), ``"mse"``, or ``"energy"`` (the sampler's U: the
    summed cross-entropy of a classifier, labels in ``y``). ``box`` is the half-width of the sampling box when the task
    comes from a chain file: trained beads are kept inside it so they stay in the sampled landscape.
    """

    name: str
    widths: tuple[int, ...]
    activation: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    loss: str = "mae"
    bias: bool = True
    box: float | None = None
    dtype: torch.dtype = torch.float64
    description: str = ""
    energy_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def __post_init__(self) -> None:
        if self.activation not in _ACT:
            raise SpecError(f"activation {self.activation!r} is not known; choose one of {', '.join(_ACT)}.")
        if self.loss not in ("mae", "mse", "energy"):
            raise SpecError(f"loss {self.loss!r} is not known; choose mae, mse or energy.")
        self._tensors: dict[str, torch.Tensor] = {}
        for key in ("x_train", "y_train", "x_eval", "y_eval"):
            arr = np.asarray(getattr(self, key))
            dtype = torch.int64 if (self.loss == "energy" and key.startswith("y")) else self.dtype
            self._tensors[key] = torch.as_tensor(arr, dtype=dtype)
        self.to(self.device)

    def to(self, device: str | torch.device) -> MLPTask:
        """Move the data to ``device`` (``auto``/``cpu``/``cuda``); beads are then made there. Returns the task."""
        self.device = resolve_device(device)
        self._tensors = {k: v.to(self.device) for k, v in self._tensors.items()}
        return self

    # -- layout -----------------------------------------------------------------------------------------------------
    def offsets(self) -> list[tuple[int, int, int, int]]:
        """For each layer: (W offset, b offset, fan-in, fan-out); without biases the b block is empty."""
        out, off = [], 0
        for i, o in zip(self.widths[:-1], self.widths[1:], strict=True):
            out.append((off, off + i * o, i, o))
            off += i * o + (o if self.bias else 0)
        return out

    @property
    def p(self) -> int:
        w = self.widths
        return sum(i * o + (o if self.bias else 0) for i, o in zip(w[:-1], w[1:], strict=True))

    def forward(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every net in the batch ``theta`` (B, p) on inputs ``x`` (n, d): shape (B, n, out)."""
        h = x.unsqueeze(0).expand(theta.shape[0], -1, -1)
        layers = self.offsets()
        act = _ACT[self.activation]
        for li, (w_off, b_off, fan_in, fan_out) in enumerate(layers):
            W = theta[:, w_off:b_off].reshape(-1, fan_in, fan_out)
            h = torch.baddbmm(theta[:, b_off : b_off + fan_out].unsqueeze(1), h, W) if self.bias else torch.bmm(h, W)
            if li < len(layers) - 1:
                h = act(h)
        return h

    def _loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss == "energy":
            from mcmc_landscape.models.energy import mlp_energy_torch
            from mcmc_landscape.models.nets import MLPSpec

            spec = MLPSpec.from_widths(self.widths, self.activation)
            return mlp_energy_torch(theta, spec, x, y) * self.energy_scale
        err = self.forward(theta, x) - y.reshape(1, y.shape[0], -1)
        return err.abs().mean(dim=(1, 2)) if self.loss == "mae" else (err**2).mean(dim=(1, 2))

    def loss_train(self, theta: torch.Tensor) -> torch.Tensor:
        """Training loss of each row of ``theta`` (B, p): shape (B,)."""
        t = self._tensors
        return self._loss(theta, t["x_train"], t["y_train"])

    def loss_eval(self, theta: torch.Tensor) -> torch.Tensor:
        """The thresholded loss (held-out data) of each row of ``theta`` (B, p): shape (B,)."""
        t = self._tensors
        return self._loss(theta, t["x_eval"], t["y_eval"])

    def metric(self, theta: torch.Tensor) -> torch.Tensor:
        """Accuracy on the evaluation data for a classifier, else the evaluation loss."""
        if self.loss != "energy":
            return self.loss_eval(theta)
        pred = self.forward(theta, self._tensors["x_eval"]).argmax(-1)
        return (pred == self._tensors["y_eval"].unsqueeze(0)).to(self.dtype).mean(-1)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` random nets, each layer uniform in ±1/√fan-in (PyTorch's default for ``nn.Linear``)."""
        theta = torch.empty(n, self.p, dtype=self.dtype)  # drawn on the CPU: every device starts from the same nets
        for w_off, b_off, fan_in, fan_out in self.offsets():
            end = b_off + (fan_out if self.bias else 0)
            bound = 1.0 / math.sqrt(fan_in)
            theta[:, w_off:end] = (torch.rand(n, end - w_off, generator=generator, dtype=self.dtype) * 2 - 1) * bound
        if self.box is not None:
            theta.clamp_(-self.box, self.box)
        return theta.to(self.device)

    def permute_hidden(self, theta: torch.Tensor, layer: int, perm: list[int]) -> torch.Tensor:
        """``theta`` with the units of hidden layer ``layer`` (0-based) permuted: the same function, another point."""
        theta = theta.clone()
        lead = theta.shape[:-1]
        w_off, b_off, fan_in, width = self.offsets()[layer]
        nw_off, nb_off, _, fan_out = self.offsets()[layer + 1]
        idx = torch.as_tensor(perm, device=theta.device)
        theta[..., w_off:b_off] = theta[..., w_off:b_off].reshape(*lead, fan_in, width)[..., idx].reshape(*lead, -1)
        if self.bias:
            theta[..., b_off : b_off + width] = theta[..., b_off : b_off + width][..., idx]
        theta[..., nw_off:nb_off] = theta[..., nw_off:nb_off].reshape(*lead, width, fan_out)[..., idx, :] \
            .reshape(*lead, -1)
        return theta

    def config(self) -> dict[str, Any]:
        """What identifies the task, stored with every string so a resume can check it."""
        return {"task": self.name, "widths": list(self.widths), "activation": self.activation, "loss": self.loss,
                "bias": self.bias, "box": self.box, "p": self.p, "n_train": int(len(self.x_train)),
                "n_eval": int(len(self.x_eval)), "data_digest": digest(self.x_train, self.y_train, self.x_eval,
                                                                        self.y_eval), **self.extra}

    def describe(self) -> str:
        arch = "-".join(map(str, self.widths))
        return (f"{self.name}: {self.description or 'MLP'}; {arch} {self.activation}"
                f"{'' if self.bias else ' (no biases)'}, p = {self.p}, loss {self.loss}")


# -- the tasks of the paper and of the sampling side ---------------------------------------------------------------------
def polynomial_task(kind: str, activation: str = "sigmoid", loss: str = "mae", n_train: int = 200, n_eval: int = 200,
                    seed: int = 0, hidden: tuple[int, ...] = (4, 4)) -> MLPTask:
    """The paper's regression tasks: fit ``kind`` (quadratic or cubic) on x in [0, 1] with a 1-4-4-1 MLP.

    Train and held-out inputs are drawn uniformly from [0, 1] with ``seed`` and ``seed + 1``.
    """
    if kind not in POLYNOMIALS:
        raise SpecError(f"polynomial {kind!r} is not known; choose one of {', '.join(POLYNOMIALS)}.")
    formula, f = POLYNOMIALS[kind]
    x_train = np.random.default_rng(seed).uniform(0, 1, size=(n_train, 1))
    x_eval = np.random.default_rng(seed + 1).uniform(0, 1, size=(n_eval, 1))
    return MLPTask(kind, (1, *hidden, 1), activation, x_train, f(x_train), x_eval, f(x_eval), loss=loss,
                   description=f"regression of f(x) = {formula} on [0, 1]",
                   extra={"seed": seed, "polynomial": formula})


def permutation_task(activation: str = "relu") -> MLPTask:
    """The disconnection example of the paper's appendix D: a 2-3-2 net without biases (12 parameters) that maps
    three points x1 → x2, x2 → x3, x3 → x1. The three points are the vertices of an equilateral triangle; there is no
    held-out set (three points are the whole task), so the evaluation loss is the training loss (mean squared error).
    """
    angles = np.deg2rad([90.0, 210.0, 330.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    y = np.roll(x, -1, axis=0)
    return MLPTask("permutation", (2, 3, 2), activation, x, y, x, y, loss="mse", bias=False,
                   description="permute three points x1→x2→x3→x1 (paper's appendix D)")


def classifier_task(arch: str = "2,2", activation: str = "relu", data: str = "points10", angle: float = 0.0,
                    box: float | None = 10.0, per_point: bool = False) -> MLPTask:
    """The classifier of the sampling side; its loss is the sampler's energy U(θ) (summed cross-entropy) on the same
    data, rotation, activation and layout, so a sampled minimum keeps its loss. With ``per_point`` it is U/n, the
    mean loss that ``landscape analyze --threshold`` uses. There is no held-out set: U is the quantity the sampler
    thresholds, so evaluation and training use the same points.
    """
    from mcmc_landscape.data.datasets import load_dataset
    from mcmc_landscape.models.nets import MLPSpec

    ds = load_dataset(data, angle)
    spec = MLPSpec.from_string(arch, ds.n_in, ds.n_classes, activation)
    return MLPTask("classifier", spec.widths, activation, ds.x, ds.y, ds.x, ds.y, loss="energy", box=box,
                   description=f"classifier on {ds.name} rotated by {angle:g}°"
                               + (" (mean loss U/n)" if per_point else " (energy U)"),
                   energy_scale=1.0 / ds.n if per_point else 1.0,
                   extra={"data": data, "angle": float(angle), "arch": spec.arch_string, "per_point": per_point})


def make_task(name: str, device: str | torch.device = "cpu", **options: Any) -> MLPTask | ModuleTask:
    """A task by name: ``quadratic``, ``cubic``, ``permutation``, ``classifier``, or the real-data ``mnist``,
    ``cifar10`` and ``ptb`` (options go to its builder), with its data on ``device`` (``auto``: CUDA when present)."""
    device = resolve_device(device)  # a missing GPU is refused before any data is read
    if name in ("mnist", "cifar10", "ptb"):
        from . import real_tasks

        return getattr(real_tasks, f"{name}_task")(**options).to(device)
    if name == "user":
        from .real_tasks import user_task

        return user_task(**options).to(device)
    if name in POLYNOMIALS:
        return polynomial_task(name, **options).to(device)
    if name == "permutation":
        return permutation_task(**options).to(device)
    if name == "classifier":
        return classifier_task(**options).to(device)
    raise SpecError(f"task {name!r} is not known; choose one of {', '.join(TASK_NAMES)}.")
