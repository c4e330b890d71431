"""Any ``nn.Module`` of the model zoo as a DSS task: beads are flat vectors in the zoo's layout, evaluated in batches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from mcmc_landscape.zoo import FlatLayout, functional_outputs


def digest(*arrays: np.ndarray) -> str:
    """A short hash of the task's data, stored with every string so a resume can check it."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


class ModuleTask:
    """Any ``nn.Module`` as a task: flat vectors in ``named_parameters()`` order, evaluated with ``functional_call``.

    ``loss_fn(outputs, targets)`` returns a scalar for one model (the training loss, and the held-out loss unless
    ``eval_fn`` gives another one, e.g. the classification error); batching over beads is ``vmap``'s job. ``options``
    and a digest of ``digest_arrays`` enter :meth:`config`, so a resumed string is checked against the same data.
    """

    def __init__(self, name: str, module: torch.nn.Module, loss_fn: Callable, train: tuple, evaluation: tuple,
                 box: float | None = None, eval_fn: Callable | None = None, level: str = "held-out loss",
                 options: dict[str, Any] | None = None, digest_arrays: tuple = (), eval_batch: int | None = None) -> None:
        from torch.func import vmap

        self.name, self.module, self.box, self.level = name, module, box, level
        self.eval_batch = eval_batch  # models per held-out evaluation call in scans (None: no limit)
        self.options = dict(options or {})
        self.digest = digest(*digest_arrays) if digest_arrays else None
        self.layout = FlatLayout.of(module)
        self.p = self.layout.p
        self.dtype = next(module.parameters()).dtype
        outputs = functional_outputs(module, self.layout)

        self._train_loss = vmap(lambda th, x, y: loss_fn(outputs(th, x), y), in_dims=(0, None, None))
        self._eval_loss = vmap(lambda th, x, y: (eval_fn or loss_fn)(outputs(th, x), y), in_dims=(0, None, None))
        self._train, self._eval = train, evaluation

    def loss_train(self, theta: torch.Tensor) -> torch.Tensor:
        return self._train_loss(theta, *self._train)

    def loss_eval(self, theta: torch.Tensor) -> torch.Tensor:
        return self._eval_loss(theta, *self._eval)

    def metric(self, theta: torch.Tensor) -> torch.Tensor:
        return self.loss_eval(theta)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` independent models, initialized as PyTorch initializes layers (see :meth:`FlatLayout.init`)."""
        return self.layout.init(n, generator, self.dtype)

    def config(self) -> dict[str, Any]:
        return {"task": self.name, "p": self.p, "module": type(self.module).__name__, "box": self.box,
                "level": self.level, **self.options, **({"data_digest": self.digest} if self.digest else {})}

    def describe(self) -> str:
        return f"{self.name}: {type(self.module).__name__}, p = {self.p}, level = {self.level}"
