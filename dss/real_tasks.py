"""The paper's real-data tasks at CPU size: MNIST and CIFAR-10 convnets (the level is the held-out classification
error, as in Freeman and Bruna's Figures 4-5) and a Penn Treebank LSTM language model (the level is the held-out
cross-entropy per token, log perplexity).

Every task is a :class:`dss.module_task.ModuleTask` over a model of the core's zoo (:mod:`mcmc_landscape.zoo`):
beads are flat parameter vectors evaluated with ``functional_call`` under ``vmap``, so strings of these models grow
with the same code as the polynomial ones. Sizes are small by default
(a thousand images, a 1,000-word vocabulary) so a string takes minutes on two cores; every size is an option.
Subsets are drawn with ``seed``; the train and held-out sets never share an example (held-out images come from the
test split, held-out text from the validation split).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mcmc_landscape.errors import SpecError
from mcmc_landscape.zoo import SmallConvNet, SmallLSTM, prepare_images

from .module_task import ModuleTask


def _models_per_call(floats_per_model: int, budget: int = 50_000_000) -> int:
    """How many models one held-out evaluation may batch so that its activations stay near ``budget`` floats."""
    return max(1, budget // max(floats_per_model, 1))


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


def _subset(n_total: int, n: int, seed: int) -> np.ndarray:
    if not 1 <= n <= n_total:
        raise SpecError(f"asked for {n} examples but the split holds {n_total}; choose 1 to {n_total}.")
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


def image_task(name: str, train: tuple[np.ndarray, np.ndarray], held_out: tuple[np.ndarray, np.ndarray],
               n_train: int = 1000, n_eval: int = 1000, seed: int = 0, channels: tuple[int, int] = (8, 16),
               extra: dict[str, Any] | None = None) -> ModuleTask:
    """A convnet classification task on images (n, H, W) or (n, H, W, C) uint8; level = held-out error."""
    (xa, ya), (xb, yb) = train, held_out
    ia, ib = _subset(len(xa), n_train, seed), _subset(len(xb), n_eval, seed + 1)

    x_train, x_eval = prepare_images(xa[ia]), prepare_images(xb[ib])
    torch.manual_seed(seed)  # the module's own initial parameters (only its shapes matter: init() draws afresh)
    net = SmallConvNet(x_train.shape[1], x_train.shape[-1], channels)
    return ModuleTask(name, net, _ce, (x_train, torch.from_numpy(ya[ia])), (x_eval, torch.from_numpy(yb[ib])),
                      eval_fn=_error, level="held-out error",
                      options={"n_train": n_train, "n_eval": n_eval, "seed": seed, "channels": list(channels),
                               **(extra or {})},
                      digest_arrays=(ia, ib, ya[ia], yb[ib], xa[ia[:50]], xb[ib[:50]]),
                      eval_batch=_models_per_call(n_eval * activations_per_example(net, x_train[:1])))


def mnist_task(n_train: int = 1000, n_eval: int = 1000, seed: int = 0, data_dir: str | None = None,
               channels: tuple[int, int] = (8, 16)) -> ModuleTask:
    """The paper's MNIST experiment at CPU size: a small convnet, level = test-set error."""
    from mcmc_landscape.realdata import load_mnist

    return image_task("mnist", load_mnist("train", data_dir), load_mnist("test", data_dir), n_train, n_eval, seed,
                      channels)


def cifar10_task(n_train: int = 1000, n_eval: int = 1000, seed: int = 0, data_dir: str | None = None,
                 channels: tuple[int, int] = (8, 16)) -> ModuleTask:
    """The paper's CIFAR-10 experiment at CPU size: a small convnet, level = test-set error."""
    from mcmc_landscape.realdata import load_cifar10

    return image_task("cifar10", load_cifar10("train", data_dir), load_cifar10("test", data_dir), n_train, n_eval,
                      seed, channels)


def _windows(ids: np.ndarray, n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    starts = _subset(len(ids) - length - 1, n, seed)
    idx = starts[:, None] + np.arange(length)[None, :]
    return torch.from_numpy(ids[idx]), torch.from_numpy(ids[idx + 1])


def ptb_task(vocab_size: int = 1000, n_train: int = 256, n_eval: int = 64, seq_len: int = 20, embed: int = 16,
             hidden: int = 32, seed: int = 0, data_dir: str | None = None) -> ModuleTask:
    """The paper's PTB experiment at CPU size: an LSTM language model on ``n_train`` windows of ``seq_len`` tokens of
    the training split; level = cross-entropy per token on ``n_eval`` windows of the validation split.

    At the default size (55k parameters, 5,120 training tokens, the 999 most frequent words plus ``<unk>``) held-out
    cross-entropy falls from 6.9 to about 5.5 nats in ~250 Adam steps and then rises as the model overfits; bead
    training stops at the level, so levels of 5.5-6 are the ones to connect at. These are far from the paper's large
    LSTMs: the numbers are this small model's, not PTB records."""
    from mcmc_landscape.realdata import load_ptb

    train, valid = load_ptb("train", data_dir, vocab_size), load_ptb("valid", data_dir, vocab_size)
    xa, ya = _windows(train.ids, n_train, seq_len, seed)
    xb, yb = _windows(valid.ids, n_eval, seq_len, seed + 1)
    torch.manual_seed(seed)
    net = SmallLSTM(len(train.vocab), embed, hidden)
    return ModuleTask("ptb", net, _ce, (xa, ya), (xb, yb), level="held-out cross-entropy per token",
                      options={"vocab_size": vocab_size, "n_train": n_train, "n_eval": n_eval, "seq_len": seq_len,
                               "embed": embed, "hidden": hidden, "seed": seed},
                      digest_arrays=(xa.numpy(), xb.numpy()),
                      eval_batch=_models_per_call(n_eval * seq_len * (4 * hidden + len(train.vocab))))
