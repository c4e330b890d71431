"""What the instruments measure: a loss over flat parameter vectors and the layout of its layers.

A :class:`Target` is the one shape every instrument (``landscape hessian``, ``landscape slice``) takes: ``loss`` maps
θ (rows, p) to (rows,) with rows independent, ``layers`` names the blocks of the flat layout (one per layer, for
per-layer spectra and filter normalization), and ``spec`` is set for the MLP of :mod:`mcmc_landscape.models.nets`, whose
symmetry group (:mod:`mcmc_landscape.models.symmetry`) can align models before they are compared. Two builders make one:
:func:`mlp_target` for the MLP classifier of a chain file and :func:`module_target` for any ``nn.Module`` (a zoo
model, a checkpoint, or a user's own module), so a new kind of model needs only a module and its data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mcmc_landscape.models.nets import MLPSpec
from mcmc_landscape.models.zoo import FlatLayout, module_energy

Block = tuple[str, int, int]


@dataclass
class Target:
    """A loss over flat vectors, its layers, and what it is (``description``); see the module docstring.
    ``shapes`` gives each layer's parameter tensors as (start, stop, shape, kind) with ``kind`` "weight" or "bias",
    rows of a weight being the filters (neurons) that filter normalization rescales one by one."""

    loss: Callable[[torch.Tensor], torch.Tensor]
    layers: list[Block]
    p: int
    description: str
    tensors: list[tuple[int, int, tuple[int, ...], str]] = field(default_factory=list)
    spec: MLPSpec | None = None
    dtype: torch.dtype = torch.float64
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


def mlp_target(spec: MLPSpec, x: np.ndarray, y: np.ndarray, device: torch.device, dtype: torch.dtype = torch.float64,
               scale: float | None = None) -> Target:
    """The MLP classifier's loss U/n (``scale`` = 1/n unless given) on ``(x, y)``; layers W (in × out) then b. A
    weight's filters are its output neurons, so it is described as the transposed shape (out, in)."""
    from mcmc_landscape.models.energy import mlp_energy_torch

    xt = torch.as_tensor(np.asarray(x), dtype=dtype, device=device)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.int64, device=device)
    c = 1.0 / len(yt) if scale is None else float(scale)
    layers, tensors = [], []
    for i, (w_off, b_off, fan_in, fan_out) in enumerate(spec.offsets()):
        layers.append((f"layer{i + 1}", w_off, b_off + fan_out))
        tensors += [(w_off, b_off, (fan_in, fan_out), "weight_in_out"), (b_off, b_off + fan_out, (fan_out,), "bias")]
    return Target(lambda t: mlp_energy_torch(t, spec, xt, yt) * c, layers, spec.n_params,
                  f"MLP {'-'.join(map(str, spec.widths))} {spec.activation}, p = {spec.n_params}, loss = U/{len(yt)}",
                  tensors, spec, dtype, device)


def module_layers(layout: FlatLayout) -> tuple[list[Block], list[tuple[int, int, tuple[int, ...], str]]]:
    """Layers of a module's flat layout: parameters grouped by the submodule that owns them (``conv1.weight`` and
    ``conv1.bias`` form ``conv1``), in ``named_parameters()`` order."""
    layers: list[Block] = []
    tensors = []
    start = 0
    for name, shape, size in zip(layout.names, layout.shapes, layout.sizes, strict=True):
        owner = name.rpartition(".")[0] or name
        if layers and layers[-1][0] == owner and layers[-1][2] == start:
            layers[-1] = (owner, layers[-1][1], start + size)
        else:
            layers.append((owner, start, start + size))
        tensors.append((start, start + size, tuple(shape), "weight" if len(shape) >= 2 else "bias"))
        start += size
    return layers, tensors


def module_target(module: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                  dtype: torch.dtype = torch.float64, chunk: int | None = None, name: str | None = None) -> Target:
    """Any classifier ``nn.Module`` on inputs ``x`` and integer labels ``y`` as a target: the mean cross-entropy over
    flat vectors in ``named_parameters()`` order, through ``torch.func.functional_call`` under ``vmap``
    (:func:`mcmc_landscape.models.zoo.module_energy`), ``chunk`` examples at a time. The module's own weights are not used;
    :func:`module_theta` gives them as a flat vector."""
    module = module.to(device=device, dtype=dtype)
    xt = torch.as_tensor(x, device=device)
    xt = xt.to(dtype) if torch.is_floating_point(xt) else xt            # token ids (an LSTM) stay integers
    yt = torch.as_tensor(y).to(device=device, dtype=torch.int64)
    energy = module_energy(module, xt, yt, "mean", example_chunk=chunk)
    layers, tensors = module_layers(energy.layout)
    what = name or type(module).__name__
    return Target(energy, layers, energy.p, f"{what}, p = {energy.p:,}, loss = mean cross-entropy on {len(yt)}",
                  tensors, None, dtype, device)


def module_theta(module: nn.Module) -> np.ndarray:
    """A module's current weights as one flat vector (the layout of :func:`module_target`)."""
    return FlatLayout.of(module).flatten(module).cpu().double().numpy()
