"""The model zoo: the real networks as ``nn.Module``s, their flat parameter layout, and U(θ) over flat vectors.

One zoo serves the samplers (``landscape sample --model ...``) and DSS (its real-data tasks), so a minimum found by
one can be handed to the other. A model's flat vector is its ``named_parameters()`` concatenated, each tensor
row-major (:class:`FlatLayout`); a batch of models is a ``(chains, p)`` tensor, evaluated through
``torch.func.functional_call`` under ``vmap``. The MLP of :mod:`mcmc_landscape.models.nets` keeps its own layout (W in × out,
then b) and fast kernels in :mod:`mcmc_landscape.models.energy`; a test holds the two paths equal.

Models by name (:data:`MODELS`): the paper's ``mnist-convnet`` (~3.3M parameters), ``cifar10-convnet`` and
``ptb-lstm`` (Zaremba's small model, ~4.65M), each narrower by ``width``/``hidden``, and the small CPU-sized
``small-convnet`` and ``small-lstm``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mcmc_landscape.errors import SpecError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


class SmallConvNet(nn.Module):
    """Two 5×5 convolutions of stride 2 (relu) and a linear read-out: ~6k parameters on MNIST."""

    def __init__(self, in_channels: int, side: int, channels: tuple[int, int] = (8, 16), classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels[0], 5, stride=2)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 5, stride=2)
        out = ((side - 4 + 1) // 2 - 4 + 1) // 2
        self.fc = nn.Linear(channels[1] * out * out, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(h.flatten(-3))


class SmallLSTM(nn.Module):
    """An embedding, one LSTM layer written out cell by cell (so ``vmap`` batches it), and a linear decoder."""

    def __init__(self, vocab: int, embed: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(vocab, embed)
        self.w_in = nn.Linear(embed, 4 * hidden)
        self.w_rec = nn.Linear(hidden, 4 * hidden, bias=False)
        self.decode = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (batch, time) -> logits (batch, time, vocab)
        e = self.w_in(self.embed(tokens))
        h = e.new_zeros(e.shape[:-2] + (self.hidden,))
        c = torch.zeros_like(h)
        outs = []
        for t in range(tokens.shape[-1]):
            i, f, g, o = (e[..., t, :] + self.w_rec(h)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(h)
        return self.decode(torch.stack(outs, dim=-2))


class MNISTConvNet(nn.Module):
    """Freeman and Bruna's MNIST model (the TensorFlow tutorial's "deep MNIST"): two 5×5 'same' convolutions of
    32 and 64 channels (relu, 2×2 max-pooling after each), a dense layer of 1,024 relu units and a linear read-out.
    ~3.27M parameters at ``width = 1``; ``width`` scales every channel and unit count (``width = 0.25``: ~0.2M)."""

    def __init__(self, width: float = 1.0, in_channels: int = 1, side: int = 28, classes: int = 10) -> None:
        super().__init__()
        c1, c2, hidden = (max(1, round(k * width)) for k in (32, 64, 1024))
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.fc1 = nn.Linear(c2 * (side // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = nn.functional.max_pool2d(torch.relu(self.conv2(h)), 2)
        return self.fc2(torch.relu(self.fc1(h.flatten(-3))))


class CIFARConvNet(nn.Module):
    """The cuda-convnet style CIFAR-10 model of the paper: three 5×5 'same' convolutions of 32, 32 and 64 channels,
    each followed by relu and 3×3 pooling of stride 2 (max, then average, average), and a dense softmax read-out.
    ~80k parameters at ``width = 1``; ``width`` scales the channel counts."""

    def __init__(self, width: float = 1.0, in_channels: int = 3, side: int = 32, classes: int = 10) -> None:
        super().__init__()
        c1, c2, c3 = (max(1, round(k * width)) for k in (32, 32, 64))
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.conv3 = nn.Conv2d(c2, c3, 5, padding=2)
        out = side
        for _ in range(3):
            out = (out + 2 * 1 - 3) // 2 + 1
        self.fc = nn.Linear(c3 * out * out, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 3, 2, padding=1)
        h = nn.functional.avg_pool2d(torch.relu(self.conv2(h)), 3, 2, padding=1)
        h = nn.functional.avg_pool2d(torch.relu(self.conv3(h)), 3, 2, padding=1)
        return self.fc(h.flatten(-3))


class PTBLSTM(nn.Module):
    """Zaremba et al.'s small PTB language model: an embedding, ``layers`` LSTM layers of ``hidden`` units written
    out cell by cell (so ``vmap`` batches it), and a linear decoder over the vocabulary. 2 layers of 200 units on a
    10k vocabulary: ~4.65M parameters. Dropout is left out (the small model uses none)."""

    def __init__(self, vocab: int = 10_000, hidden: int = 200, layers: int = 2) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.embed = nn.Embedding(vocab, hidden)
        self.w_in = nn.ModuleList(nn.Linear(hidden, 4 * hidden) for _ in range(layers))
        self.w_rec = nn.ModuleList(nn.Linear(hidden, 4 * hidden, bias=False) for _ in range(layers))
        self.decode = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (batch, time) -> logits (batch, time, vocab)
        seq = self.embed(tokens)
        for w_in, w_rec in zip(self.w_in, self.w_rec, strict=True):
            e = w_in(seq)
            h = e.new_zeros(e.shape[:-2] + (self.hidden,))
            c = torch.zeros_like(h)
            outs = []
            for t in range(tokens.shape[-1]):
                i, f, g, o = (e[..., t, :] + w_rec(h)).chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outs.append(h)
            seq = torch.stack(outs, dim=-2)
        return self.decode(seq)


MODELS: dict[str, Callable[..., nn.Module]] = {
    "mnist-convnet": MNISTConvNet,
    "cifar10-convnet": CIFARConvNet,
    "ptb-lstm": PTBLSTM,
    "small-convnet": SmallConvNet,
    "small-lstm": SmallLSTM,
}


def build_model(name: str, **options: Any) -> nn.Module:
    """A zoo model by name, built with ``options`` (its constructor's arguments)."""
    if name not in MODELS:
        raise SpecError(f"model {name!r} is not in the zoo; choose one of {', '.join(MODELS)}.")
    return MODELS[name](**options)


def prepare_images(x: np.ndarray) -> torch.Tensor:
    """uint8 images (n, H, W) (MNIST) or (n, H, W, C) (CIFAR-10) as normalized float32 (n, C, H, W)."""
    x = x.astype(np.float32) / 255.0
    if x.ndim == 3:
        x = (x[:, None] - MNIST_MEAN) / MNIST_STD
    else:
        x = ((x - np.array(CIFAR_MEAN, np.float32)) / np.array(CIFAR_STD, np.float32)).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@dataclass(frozen=True)
class FlatLayout:
    """Where each parameter tensor of a module sits in its flat vector (``named_parameters()`` order, row-major)."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, module: nn.Module) -> FlatLayout:
        named = list(module.named_parameters())
        return cls(tuple(n for n, _ in named), tuple(tuple(q.shape) for _, q in named),
                   tuple(q.numel() for _, q in named))

    @property
    def p(self) -> int:
        return int(sum(self.sizes))

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """One flat vector (p,) as the module's parameter dictionary (views, no copy)."""
        return {n: t.reshape(s) for n, t, s in zip(self.names, torch.split(theta, self.sizes), self.shapes,
                                                    strict=True)}

    def flatten(self, module: nn.Module) -> torch.Tensor:
        """The module's current parameters as one flat vector."""
        return torch.cat([q.detach().reshape(-1) for q in module.parameters()])

    def init(self, n: int, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``n`` independent models drawn as PyTorch initializes layers: every tensor uniform in ±1/√fan-in, where a
        bias takes the fan-in of the weight before it (an embedding table: standard normal)."""
        parts, fan_in = [], 1
        for name, shape in zip(self.names, self.shapes, strict=True):
            if "embed" in name and len(shape) == 2:
                parts.append(torch.randn(n, *shape, generator=generator, dtype=dtype))
                continue
            if len(shape) >= 2:
                fan_in = int(np.prod(shape[1:]))
            bound = 1.0 / max(fan_in, 1) ** 0.5
            parts.append((2 * torch.rand(n, *shape, generator=generator, dtype=dtype) - 1) * bound)
        return torch.cat([q.reshape(n, -1) for q in parts], dim=1)


def functional_outputs(module: nn.Module, layout: FlatLayout | None = None) -> Callable[[torch.Tensor, Any],
                                                                                        torch.Tensor]:
    """``f(theta, x)``: the module's output for one flat vector ``theta`` (p,) on inputs ``x``; vmap it over models."""
    from torch.func import functional_call

    layout = layout or FlatLayout.of(module)
    buffers = dict(module.named_buffers())

    def outputs(theta: torch.Tensor, x: Any) -> torch.Tensor:
        return functional_call(module, (layout.unflatten(theta), buffers), (x,))

    return outputs


class ModuleEnergy:
    """U(θ) = Σ_i CE(f_θ(x_i), y_i) of a zoo module over flat vectors θ (chains, p), and its gradient.

    Memory is bounded by chunks: at most ``chain_chunk`` models and ``example_chunk`` examples go through the module
    at once, partial sums added up, so the peak does not grow with the number of chains or images. ``reduction``
    ``"mean"`` gives U/n. Calling the object evaluates U; :meth:`energy_and_grad` gives U and ∇U.
    """

    def __init__(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "sum",
                 chain_chunk: int | None = None, example_chunk: int | None = None) -> None:
        from torch.func import grad_and_value, vmap

        if reduction not in ("sum", "mean"):
            raise SpecError(f"reduction {reduction!r} is not known; choose sum or mean.")
        self.module, self.x, self.y, self.reduction = module, x, y, reduction
        self.layout = FlatLayout.of(module)
        self.p = self.layout.p
        self.theta0 = self.layout.flatten(module)
        self.n = int(y.shape[0])
        self.chain_chunk, self.example_chunk = chain_chunk, example_chunk
        outputs = functional_outputs(module, self.layout)

        def partial_sum(theta: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            logits = outputs(theta, xb)
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum")

        self._value = vmap(partial_sum, in_dims=(0, None, None))
        self._grad = vmap(grad_and_value(partial_sum), in_dims=(0, None, None))

    def _example_slices(self) -> list[slice]:
        step = self.example_chunk or self.n
        return [slice(i, min(i + step, self.n)) for i in range(0, self.n, step)]

    def _chain_slices(self, chains: int) -> list[slice]:
        step = self.chain_chunk or chains
        return [slice(i, min(i + step, chains)) for i in range(0, chains, step)]

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        scale = 1.0 / self.n if self.reduction == "mean" else 1.0
        out = []
        for cs in self._chain_slices(theta.shape[0]):
            total = sum(self._value(theta[cs], self.x[es], self.y[es]) for es in self._example_slices())
            out.append(total * scale)
        return torch.cat(out)

    def energy_and_grad(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale = 1.0 / self.n if self.reduction == "mean" else 1.0
        values, grads = [], []
        for cs in self._chain_slices(theta.shape[0]):
            v = g = None
            for es in self._example_slices():
                gi, vi = self._grad(theta[cs].detach(), self.x[es], self.y[es])
                v, g = (vi, gi) if v is None else (v + vi, g + gi)
            values.append(v * scale)
            grads.append(g * scale)
        return torch.cat(values), torch.cat(grads)


def module_energy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "sum",
                  chain_chunk: int | None = None, example_chunk: int | None = None) -> ModuleEnergy:
    """U (and ∇U) of ``module`` on ``(x, y)`` over flat parameter vectors of shape (chains, p); see
    :class:`ModuleEnergy`."""
    return ModuleEnergy(module, x, y, reduction, chain_chunk, example_chunk)
