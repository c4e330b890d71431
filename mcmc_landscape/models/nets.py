"""Architecture specs and the one flat parameter layout shared by every backend.

An architecture string such as ``"2,2"`` lists hidden-layer widths; input and output widths come from the data set.
The flat layout of θ is, for each layer in order, ``W`` (in × out, row-major) then ``b`` (out). ``[2,2]`` on the
2-D, 2-class set has p = (2·2+2) + (2·2+2) + (2·2+2) = 18.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mcmc_landscape.errors import SpecError

ACTIVATIONS = ("relu", "tanh", "sigmoid")
ACTIVATION_CODES = {name: code for code, name in enumerate(ACTIVATIONS)}


def parse_arch(text: str) -> tuple[int, ...]:
    """Parse ``"2,2"`` into ``(2, 2)``; an empty string means no hidden layer (logistic regression)."""
    if not isinstance(text, str):
        raise SpecError(f"architecture must be a string of comma-separated widths such as '2,2', got {text!r}.")
    stripped = text.strip().strip("[]() ")
    if stripped == "":
        return ()
    parts = [p.strip() for p in stripped.split(",")]
    if any(not re.fullmatch(r"[0-9]+", p) for p in parts):
        raise SpecError(
            f"architecture {text!r} is not a comma-separated list of positive widths; write it like '2,2' or '10,10,10'."
        )
    widths = tuple(int(p) for p in parts)
    if any(w <= 0 for w in widths):
        raise SpecError(f"architecture {text!r} has a layer of width 0; every hidden width must be at least 1.")
    return widths


@dataclass(frozen=True)
class MLPSpec:
    """A fully connected classifier: widths of every layer from input to output, and the hidden activation."""

    hidden: tuple[int, ...]
    n_in: int = 2
    n_out: int = 2
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise SpecError(
                f"activation {self.activation!r} is not known; choose one of {', '.join(ACTIVATIONS)}."
            )
        if self.n_in < 1 or self.n_out < 2:
            raise SpecError("a classifier needs at least one input and two classes.")

    @classmethod
    def from_string(cls, arch: str, n_in: int = 2, n_out: int = 2, activation: str = "relu") -> MLPSpec:
        return cls(parse_arch(arch), n_in, n_out, activation)

    @classmethod
    def from_widths(cls, widths: Sequence[int], activation: str = "relu") -> MLPSpec:
        """The spec whose :attr:`widths` are ``widths`` (input, hidden..., output), as a run's config stores them."""
        w = [int(v) for v in widths]
        if len(w) < 2:
            raise SpecError(f"an MLP needs an input and an output width, got widths {w}.")
        return cls(tuple(w[1:-1]), w[0], w[-1], activation)

    @property
    def widths(self) -> tuple[int, ...]:
        return (self.n_in, *self.hidden, self.n_out)

    @property
    def layer_shapes(self) -> list[tuple[int, int]]:
        w = self.widths
        return [(w[i], w[i + 1]) for i in range(len(w) - 1)]

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)

    @property
    def activation_code(self) -> int:
        return ACTIVATION_CODES[self.activation]

    @property
    def arch_string(self) -> str:
        return ",".join(str(h) for h in self.hidden)

    def offsets(self) -> list[tuple[int, int, int, int]]:
        """For each layer: (W offset, b offset, fan-in, fan-out) into the flat vector."""
        out, off = [], 0
        for i, o in self.layer_shapes:
            out.append((off, off + i * o, i, o))
            off += i * o + o
        return out

    def unflatten(self, theta: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Split a flat θ (or a batch ``(..., p)``) into ``[(W, b), ...]`` views in the shared layout."""
        theta = np.asarray(theta)
        if theta.shape[-1] != self.n_params:
            raise SpecError(f"θ has {theta.shape[-1]} entries but architecture {self.widths} needs {self.n_params}.")
        lead = theta.shape[:-1]
        return [
            (theta[..., w:b].reshape(*lead, i, o), theta[..., b : b + o]) for w, b, i, o in self.offsets()
        ]

    def flatten(self, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Inverse of :meth:`unflatten` for a single θ."""
        return np.concatenate([np.concatenate([np.ravel(W), np.ravel(b)]) for W, b in layers])

    def describe(self) -> str:
        return f"MLP {'-'.join(map(str, self.widths))} ({self.activation}), p = {self.n_params}"


def mlp_logits(theta: np.ndarray, spec: MLPSpec, x: np.ndarray) -> np.ndarray:
    """The network's outputs (n, points, classes) on inputs ``x`` for each row of θ (n, p), in NumPy float64: the
    one plain forward pass that analyses use to look at the function a draw computes."""
    theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
    hs = np.broadcast_to(np.asarray(x, dtype=np.float64), (len(theta), *np.shape(x)))
    layers = spec.unflatten(theta)
    for li, (W, b) in enumerate(layers):
        hs = np.einsum("nki,nij->nkj", hs, W) + b[:, None, :]
        if li < len(layers) - 1:
            hs = np.maximum(hs, 0) if spec.activation == "relu" else np.tanh(hs) if spec.activation == "tanh" \
                else 1 / (1 + np.exp(-hs))
    return np.asarray(hs)


def mlp_probabilities(theta: np.ndarray, spec: MLPSpec, x: np.ndarray) -> np.ndarray:
    """Class probabilities (n, points, classes): the softmax of :func:`mlp_logits`, what no weight symmetry changes."""
    z = mlp_logits(theta, spec, x)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)
