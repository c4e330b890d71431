"""Any ``nn.Module`` of the model zoo as a DSS task: beads are flat vectors in the zoo's layout, evaluated in batches.

Training can be full-batch (the small tasks) or by minibatches over the whole training set (``batch_size``: shuffled
epochs drawn from a seeded generator, so a resumed string draws the same batches). The level's measure is evaluated
over the whole held-out set in chunks of ``eval_chunk`` examples and ``eval_batch`` models, so memory is bounded by
the chunk, not by the data set or the number of beads; ``measure`` maps the mean held-out value to the paper's unit
(``exp``: cross-entropy per token → perplexity).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from mcmc_landscape.models.zoo import FlatLayout, functional_outputs

from .device import eval_budget, resolve_device


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
    ``batch_size`` (None: full batch) turns on minibatch training; ``check_every`` is the task's suggested number of
    steps between two evaluations of the level (evaluation then costs about a third of training).
    """

    def __init__(self, name: str, module: torch.nn.Module, loss_fn: Callable, train: tuple, evaluation: tuple,
                 box: float | None = None, eval_fn: Callable | None = None, level: str = "held-out loss",
                 options: dict[str, Any] | None = None, digest_arrays: tuple = (), eval_batch: int | None = None,
                 eval_chunk: int | None = None, batch_size: int | None = None,
                 measure: Callable[[torch.Tensor], torch.Tensor] | None = None, check_every: int | None = None,
                 eval_floats_per_example: int | None = None, device: str | torch.device = "cpu") -> None:
        from torch.func import vmap

        self.name, self.module, self.box, self.level = name, module, box, level
        self.eval_batch = eval_batch  # models per held-out evaluation call in scans (None: no limit)
        self.eval_chunk = eval_chunk  # held-out examples per call (None: all at once)
        self.eval_floats_per_example = eval_floats_per_example  # when given, the two above follow the device
        self.batch_size = batch_size
        self.measure = measure
        self.check_every = check_every
        self.options = dict(options or {})
        self.digest = digest(*digest_arrays) if digest_arrays else None
        self.layout = FlatLayout.of(module)
        self.p = self.layout.p
        self.dtype = next(module.parameters()).dtype
        outputs = functional_outputs(module, self.layout)

        self._train_one = lambda th, x, y: loss_fn(outputs(th, x), y)
        self._eval_one = lambda th, x, y: (eval_fn or loss_fn)(outputs(th, x), y)
        self._train_loss = vmap(self._train_one, in_dims=(0, None, None))
        self._eval_loss = vmap(self._eval_one, in_dims=(0, None, None))
        self._train, self._eval = tuple(train), tuple(evaluation)
        self.device = torch.device("cpu")
        self.to(device)

    def to(self, device: str | torch.device) -> ModuleTask:
        """Move the data (and the module's buffers) to ``device`` (``auto``/``cpu``/``cuda``); returns the task."""
        self.device = resolve_device(device)
        self.module.to(self.device)
        self._train = tuple(t.to(self.device) for t in self._train)
        self._eval = tuple(t.to(self.device) for t in self._eval)
        if self.eval_floats_per_example:
            budget, per = eval_budget(self.device), self.eval_floats_per_example
            self.eval_chunk = max(1, min(self.n_eval, budget // per))
            self.eval_batch = max(1, budget // (per * self.eval_chunk))
        return self

    @property
    def n_train(self) -> int:
        return int(self._train[1].shape[0])

    @property
    def n_eval(self) -> int:
        return int(self._eval[1].shape[0])

    def loss_train(self, theta: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        """Training loss of each row of ``theta`` (B, p) on the whole training set, or on the examples ``idx``."""
        x, y = self._train if idx is None else (self._train[0][idx], self._train[1][idx])
        if theta.shape[0] == 1:  # one model: the module's own batched kernels, as a plain training loop runs them
            return self._train_one(theta[0], x, y).unsqueeze(0)
        return self._train_loss(theta, x, y)

    def minibatches(self, seed: int) -> Iterator[torch.Tensor] | None:
        """Index tensors (on the device) of ``batch_size`` examples, epoch after epoch, each epoch a fresh seeded
        shuffle (the last partial batch of an epoch is dropped); None for a full-batch task."""
        if self.batch_size is None or self.batch_size >= self.n_train:
            return None
        return _epochs(self.n_train, self.batch_size, seed, self.device)

    @torch.no_grad()
    def loss_eval(self, theta: torch.Tensor) -> torch.Tensor:
        """The level's measure of each row of ``theta`` (B, p) over the whole held-out set, in chunks."""
        x, y = self._eval
        n = self.n_eval
        step = min(self.eval_chunk or n, n)
        call = self._eval_loss if theta.shape[0] > 1 else lambda th, xs, ys: self._eval_one(th[0], xs, ys)[None]
        if step >= n:
            mean = call(theta, x, y)
        else:
            mean = sum(call(theta, x[i : i + step], y[i : i + step]) * (min(i + step, n) - i)
                       for i in range(0, n, step)) / n
        return mean if self.measure is None else self.measure(mean)

    def metric(self, theta: torch.Tensor) -> torch.Tensor:
        return self.loss_eval(theta)

    def init(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` independent models, initialized as PyTorch initializes layers (see :meth:`FlatLayout.init`), drawn on
        the CPU from ``generator`` (so every device starts from the same models) and moved to the task's device."""
        return self.layout.init(n, generator, self.dtype).to(self.device)

    def config(self) -> dict[str, Any]:
        return {"task": self.name, "p": self.p, "module": type(self.module).__name__, "box": self.box,
                "level": self.level, **self.options, **({"data_digest": self.digest} if self.digest else {})}

    def describe(self) -> str:
        batches = f"minibatches of {self.batch_size}" if self.minibatches(0) is not None else "full batch"
        return (f"{self.name}: {type(self.module).__name__}, p = {self.p:,}, {self.n_train:,} training and "
                f"{self.n_eval:,} held-out examples, {batches}, level = {self.level}, on {self.device}")


def _epochs(n: int, batch: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=gen).to(device)
        for i in range(0, n - batch + 1, batch):
            yield perm[i : i + batch]
