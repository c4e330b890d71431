"""The paper's real-data tasks: MNIST and CIFAR-10 convnets (the level is the test error, a fraction, as in Freeman
and Bruna's Figures 4-5) and Zaremba's Penn Treebank LSTM (the level is the validation perplexity, Figure 6).

Every task is a :class:`dss.module_task.ModuleTask` over a model of the core's zoo (:mod:`mcmc_landscape.models.zoo`) and
the core's readers (:mod:`mcmc_landscape.data.realdata`): beads are flat parameter vectors evaluated with
``functional_call`` under ``vmap``, so strings of these models grow with the same code as the polynomial ones. The
defaults are the paper's: its models at full size, the whole training set in minibatches, the whole test (validation)
set as the level's measure; that is GPU work. Smaller variants by options (``width``, ``hidden``, ``vocab``,
``n_train``, ``n_eval``) for tests and CPUs. Subsets are drawn with ``seed``; the train and held-out sets never share
an example (held-out images come from the test split, held-out text from the validation split).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mcmc_landscape.errors import SpecError
from mcmc_landscape.models.zoo import build_model, prepare_images

from .module_task import ModuleTask


def activations_per_example(net: nn.Module, example: torch.Tensor) -> int:
    """Floats of intermediate activations one example makes in ``net`` (counted once with forward hooks)."""
    sizes: list[int] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: sizes.append(out.numel())) for m in net.children()]
    with torch.no_grad():
        net(example)
    for h in hooks:
        h.remove()
    return int(sum(sizes))


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def _error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=-1) != y).to(logits.dtype).mean()


def _subset(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """``n`` sorted indices drawn with ``seed`` from ``n_total``; all of them (in order) when ``n`` is None."""
    if n is None:
        return np.arange(n_total)
    if not 1 <= n <= n_total:
        raise SpecError(f"asked for {n} examples but the split holds {n_total}; choose 1 to {n_total}.")
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def _check_every(n_eval: int, batch_size: int | None, n_train: int) -> int:
    """Steps between two evaluations of the level: one held-out pass (forward only) costs about a third of that many
    training examples (forward and backward), so evaluating every n_eval / batch steps keeps it near a quarter."""
    batch = min(batch_size or n_train, n_train)
    return max(10, round(n_eval / batch))


def image_task(name: str, model: str, train: tuple[np.ndarray, np.ndarray], held_out: tuple[np.ndarray, np.ndarray],
               n_train: int | None = None, n_eval: int | None = None, seed: int = 0, width: float = 1.0,
               batch_size: int | None = 128, extra: dict[str, Any] | None = None) -> ModuleTask:
    """A zoo convnet (``model``, scaled by ``width``) classifying images (n, H, W) or (n, H, W, C) uint8; the level is
    the test error (a fraction). All training and test images unless ``n_train``/``n_eval`` ask for a seeded subset;
    minibatches of ``batch_size`` (None: full batch)."""
    (xa, ya), (xb, yb) = train, held_out
    ia, ib = _subset(len(xa), n_train, seed), _subset(len(xb), n_eval, seed + 1)

    x_train, x_eval = prepare_images(xa[ia]), prepare_images(xb[ib])
    torch.manual_seed(seed)  # the module's own initial parameters (only its shapes matter: init() draws afresh)
    net = build_model(model, width=width, in_channels=x_train.shape[1], side=x_train.shape[-1])
    return ModuleTask(name, net, _ce, (x_train, torch.from_numpy(ya[ia])), (x_eval, torch.from_numpy(yb[ib])),
                      eval_fn=_error, level="test error",
                      options={"model": model, "width": width, "n_train": len(ia), "n_eval": len(ib), "seed": seed,
                               "batch_size": batch_size, **(extra or {})},
                      digest_arrays=(ia, ib, ya[ia], yb[ib], xa[ia[:50]], xb[ib[:50]]),
                      eval_floats_per_example=activations_per_example(net, x_train[:1]), batch_size=batch_size,
                      check_every=_check_every(len(ib), batch_size, len(ia)))


def mnist_task(n_train: int | None = None, n_eval: int | None = None, seed: int = 0, data_dir: str | None = None,
               width: float = 1.0, batch_size: int | None = 128) -> ModuleTask:
    """The paper's MNIST experiment: its convnet (``mnist-convnet``, 3.27M parameters at ``width`` 1) on the 60,000
    training images, level = error on the 10,000 test images."""
    from mcmc_landscape.data.realdata import load_mnist

    return image_task("mnist", "mnist-convnet", load_mnist("train", data_dir), load_mnist("test", data_dir), n_train,
                      n_eval, seed, width, batch_size)


def cifar10_task(n_train: int | None = None, n_eval: int | None = None, seed: int = 0, data_dir: str | None = None,
                 width: float = 1.0, batch_size: int | None = 128) -> ModuleTask:
    """The paper's CIFAR-10 experiment: the cuda-convnet style model (``cifar10-convnet``, 89,578 parameters at
    ``width`` 1) on the 50,000 training images, level = error on the 10,000 test images."""
    from mcmc_landscape.data.realdata import load_cifar10

    return image_task("cifar10", "cifar10-convnet", load_cifar10("train", data_dir), load_cifar10("test", data_dir),
                      n_train, n_eval, seed, width, batch_size)


def _windows(ids: np.ndarray, length: int, n: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The corpus cut into consecutive windows of ``length`` tokens (inputs, next-token targets); all of them, or
    ``n`` drawn with ``seed``."""
    count = (len(ids) - 1) // length
    if count < 1:
        raise SpecError(f"the PTB split holds {len(ids)} tokens, fewer than one window of {length}; lower --seq-len.")
    starts = _subset(count, n, seed) * length
    idx = starts[:, None] + np.arange(length)[None, :]
    return torch.from_numpy(ids[idx]), torch.from_numpy(ids[idx + 1])


def ptb_task(n_train: int | None = None, n_eval: int | None = None, seq_len: int = 20, hidden: int = 200,
             layers: int = 2, vocab: int = 10_000, seed: int = 0, data_dir: str | None = None,
             batch_size: int | None = 64) -> ModuleTask:
    """The paper's PTB experiment: Zaremba's small LSTM (``ptb-lstm``: 2 layers of 200 units, a 10k vocabulary,
    4.65M parameters) on the training split cut into windows of ``seq_len`` = 20 tokens (each window starts from a
    zero state), level = perplexity on the validation split. ``vocab`` below 10,000 keeps the most frequent words and
    maps the rest to ``<unk>``; ``n_train``/``n_eval`` take seeded subsets of the windows."""
    from mcmc_landscape.data.realdata import load_ptb

    size = vocab if vocab < 10_000 else None
    train, valid = load_ptb("train", data_dir, size), load_ptb("valid", data_dir, size)
    xa, ya = _windows(train.ids, seq_len, n_train, seed)
    xb, yb = _windows(valid.ids, seq_len, n_eval, seed + 1)
    torch.manual_seed(seed)
    net = build_model("ptb-lstm", vocab=len(train.vocab), hidden=hidden, layers=layers)
    return ModuleTask("ptb", net, _ce, (xa, ya), (xb, yb), level="perplexity", measure=torch.exp,
                      options={"model": "ptb-lstm", "vocab": len(train.vocab), "hidden": hidden, "layers": layers,
                               "n_train": len(xa), "n_eval": len(xb), "seq_len": seq_len, "seed": seed,
                               "batch_size": batch_size},
                      digest_arrays=(xa.numpy(), xb.numpy()),
                      eval_floats_per_example=seq_len * (8 * hidden * layers + len(train.vocab)),
                      batch_size=batch_size, check_every=_check_every(len(xb), batch_size, len(xa)))


def user_task(model: str, data: str, batch_size: int | None = None, seed: int = 0) -> ModuleTask:
    """A user's model (``package.module:factory``) on a user's ``.npz`` (x, y; x_test, y_test for the level, else the
    training set), checked by :mod:`mcmc_landscape.user_model`; cross-entropy training, the level is the held-out
    error (a fraction); full batch unless ``batch_size``."""
    from mcmc_landscape.user_model import load_user_model

    torch.manual_seed(seed)  # the module's own parameters (only its shapes matter: init() draws afresh)
    net, ds = load_user_model(model, data)
    net = net.to(torch.float64)
    x_eval, y_eval = (ds.x, ds.y) if ds.x_test is None else (ds.x_test, ds.y_test)
    train = (torch.from_numpy(ds.x), torch.from_numpy(ds.y))
    held_out = (torch.from_numpy(x_eval), torch.from_numpy(y_eval))
    return ModuleTask("user", net, _ce, train, held_out, eval_fn=_error, level="held-out error",
                      options={"model": model, "data": str(data), "batch_size": batch_size, "seed": seed},
                      digest_arrays=(ds.x, ds.y, x_eval, y_eval), batch_size=batch_size,
                      check_every=_check_every(len(y_eval), batch_size, len(ds.y)))
