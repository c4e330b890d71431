"""Transforms of a data set, each a small pure function named by a spec string, and what the theory says about each.

The catalogue (``x`` are the inputs, rows; ``y`` the labels):

* ``rotate:DEG``        x → R x, counter-clockwise by DEG degrees (2-D inputs);
* ``reflect:x|y``       mirror in the x axis ((x1, x2) → (x1, -x2)) or in the y axis ((x1, x2) → (-x1, x2));
* ``scale:S``           x → S x;
* ``translate:DX,DY``   x → x + (DX, DY);
* ``shear:K``           (x1, x2) → (x1 + K x2, x2);
* ``permute-labels``    the labels shuffled among the points (seeded; ``permute-labels@SEED``);
* ``flip-labels:K``     K points, chosen at random, get another label (seeded; ``flip-labels:K@SEED``): the sampled
                        dose-response control, a difference that grows with K;
* ``swap-classes``      every label y → C - 1 - y (the two classes swapped): the last layer absorbs it by reversing
                        its output columns, a signed permutation of coordinates that maps the box onto itself;
* ``noise:SIGMA``       x → x + N(0, SIGMA²) per coordinate (seeded; ``noise:SIGMA@SEED``).

The first five are affine maps of the inputs, x → A x + t, and an MLP's first layer absorbs them: with the flat layout
of :mod:`mcmc_landscape.models.nets` (h = x W1 + b1, W1 is in × out), the network θ' with W1' = A^{-T} W1 and
b1' = b1 - tᵀ W1' computes on A x + t what θ computes on x, so U(θ'; A x + t) = U(θ; x) exactly
(:func:`absorb`). The map θ → θ' is linear and invertible with a constant Jacobian, so the target exp(-U/T) on the box
is carried onto the transformed target on the image of the box: the two landscapes are the same on the intersection of
the box with its image. For a rotation the map is an isometry, for a reflection it is a signed permutation of
coordinates that maps the box onto itself (exact everywhere); scale, shear and translation stretch or shift the box
(and, for a translation, mix weights into the biases). Label permutation and noise change what is to be learned: no map
of parameters undoes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mcmc_landscape.errors import SpecError

KINDS = ("identity", "rotate", "reflect", "scale", "translate", "shear", "permute-labels", "flip-labels",
         "swap-classes", "noise")
RANDOM_KINDS = ("permute-labels", "flip-labels", "noise")
_SYNTAX = ("rotate:DEG, reflect:x|y, scale:S, translate:DX,DY, shear:K, permute-labels[@SEED], flip-labels:K[@SEED], "
           "swap-classes, noise:SIGMA[@SEED] or identity")


@dataclass(frozen=True)
class Transform:
    """One parsed transform: its kind, numeric parameters and seed (used by the random ones only)."""

    kind: str
    params: tuple[float, ...] = ()
    axis: str = ""
    seed: int = 0

    @property
    def spec(self) -> str:
        """The canonical spec string (parses back to an equal transform)."""
        if self.kind in ("identity", "swap-classes"):
            return self.kind
        if self.kind == "reflect":
            return f"reflect:{self.axis}"
        if self.kind == "permute-labels":
            return f"permute-labels@{self.seed}"
        body = ",".join(f"{v:g}" for v in self.params)
        return f"{self.kind}:{body}" + (f"@{self.seed}" if self.kind in RANDOM_KINDS else "")

    @property
    def name(self) -> str:
        """A folder-safe name, e.g. ``rotate_120``, ``translate_0.2_0``, ``noise_0.05``."""
        text = self.spec.split("@")[0] if self.kind in RANDOM_KINDS and self.seed == 0 else self.spec
        return re.sub(r"[^A-Za-z0-9.\-]+", "_", text).strip("_")

    @property
    def random(self) -> bool:
        return self.kind in RANDOM_KINDS

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The transformed data (new arrays; the inputs are not changed)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y)
        if self.kind == "permute-labels":
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 17]))
            return x.copy(), y[rng.permutation(len(y))]
        if self.kind == "flip-labels":
            k = int(self.params[0])
            if k > len(y):
                raise SpecError(f"{self.spec}: the data have only {len(y)} points; flip at most that many labels.")
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 23]))
            n_classes = max(int(y.max()) + 1, 2)
            out = y.copy()
            chosen = rng.choice(len(y), k, replace=False)
            out[chosen] = (y[chosen] + rng.integers(1, n_classes, size=k)) % n_classes  # always another class
            return x.copy(), out
        if self.kind == "swap-classes":
            return x.copy(), (max(int(y.max()), 1) - y).astype(y.dtype)
        if self.kind == "noise":
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 19]))
            return x + self.params[0] * rng.standard_normal(x.shape), y.copy()
        A, t = self.affine(x.shape[1])
        return x @ A.T + t, y.copy()

    def affine(self, d: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """(A, t) of the input map x → A x + t; a :class:`SpecError` for the transforms that are not affine."""
        if self.kind == "identity":
            return np.eye(d), np.zeros(d)
        if not self.is_affine:
            raise SpecError(f"{self.spec} is not an affine map of the inputs.")
        if self.kind == "scale":
            return self.params[0] * np.eye(d), np.zeros(d)
        if d != 2:
            raise SpecError(f"{self.spec} needs 2-D inputs, but the data have {d} input columns.")
        if self.kind == "rotate":
            a = np.deg2rad(self.params[0])
            return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]), np.zeros(2)
        if self.kind == "reflect":
            return (np.diag([1.0, -1.0]) if self.axis == "x" else np.diag([-1.0, 1.0])), np.zeros(2)
        if self.kind == "translate":
            return np.eye(2), np.array(self.params, dtype=np.float64)
        return np.array([[1.0, self.params[0]], [0.0, 1.0]]), np.zeros(2)  # shear

    @property
    def is_affine(self) -> bool:
        return self.kind not in ("permute-labels", "flip-labels", "swap-classes", "noise")

    @property
    def has_parameter_map(self) -> bool:
        """Whether a map of parameters carries the reference's landscape onto this one (the first layer for an
        affine map of the inputs, the last layer for swapped classes)."""
        return self.is_affine or self.kind == "swap-classes"

    def map_back(self, theta: np.ndarray, layout: list[tuple[int, int, int, int]], n_in: int) -> np.ndarray:
        """Draws of the transformed landscape carried back to the reference's (the inverse of :meth:`carry`)."""
        if self.kind == "swap-classes":
            return swap_output_columns(theta, layout)
        A, t = self.affine(n_in)
        return unabsorb(theta, layout, A, t)

    def carry(self, theta: np.ndarray, layout: list[tuple[int, int, int, int]], n_in: int) -> np.ndarray:
        """Draws of the reference's landscape carried to the transformed one: f_carry(θ) on the transformed data
        computes what f_θ computes on the reference data."""
        if self.kind == "swap-classes":
            return swap_output_columns(theta, layout)
        A, t = self.affine(n_in)
        return absorb(theta, layout, A, t)

    @property
    def box_isometry(self) -> bool:
        """Whether the first-layer map that absorbs this transform carries the box [-L, L]^p onto itself (a signed
        permutation of coordinates): reflections and rotations by multiples of 90°."""
        if self.kind in ("reflect", "identity", "swap-classes"):
            return True
        return self.kind == "rotate" and float(self.params[0]) % 90.0 == 0.0

    def prediction(self) -> str:
        """What the theory predicts for the landscape of the transformed data against the untransformed one."""
        if self.kind == "rotate" and self.box_isometry:
            return ("a symmetry: absorbed by the first layer (W1 → R W1), and a rotation by a multiple of 90° is a "
                    "signed permutation of W1's rows, which maps the box onto itself: the landscapes agree everywhere.")
        return PREDICTIONS[self.kind]

    def predicted_same(self) -> bool:
        """Whether the mapped-back draws are predicted to match the reference (on the shared box)."""
        return self.has_parameter_map


PREDICTIONS = {
    "identity": "the same landscape (the reference).",
    "rotate": "a symmetry: absorbed by the first layer (W1 → R W1, an isometry), so the landscapes agree exactly on "
              "the intersection of the box with its rotated image.",
    "reflect": "a symmetry: absorbed by the first layer (one row of W1 changes sign), which maps the box onto itself, "
               "so the landscapes agree everywhere.",
    "scale": "a symmetry only up to the box: W1 → W1 / S absorbs it, but the box is stretched by 1/S along W1, so the "
             "landscapes agree only where both boxes hold the draws.",
    "translate": "a symmetry only up to the box and the biases: b1 → b1 - tᵀW1 absorbs it, a shear of parameter space "
                 "that moves mass across the box's bias faces.",
    "shear": "a symmetry only up to the box: W1 → A^{-T} W1 absorbs it (volume-preserving), but the box is sheared.",
    "permute-labels": "not a symmetry: a different labelling is a different problem, so the landscapes differ.",
    "flip-labels": "not a symmetry: K labels changed make a different problem, by more as K grows.",
    "swap-classes": "a symmetry: the last layer absorbs it (its output columns reversed, a signed permutation of "
                    "coordinates that maps the box onto itself), so the landscapes agree everywhere.",
    "noise": "not a symmetry: moved points are a different problem, so the landscapes differ (by little if SIGMA is "
             "small).",
}


def parse_transform(text: str) -> Transform:
    """Parse one spec string (``rotate:120``, ``reflect:x``, ``translate:0.2,0``, ``noise:0.05@3``, ...)."""
    raw = str(text).strip()
    body, _, seed_text = raw.partition("@")
    kind, _, arg = body.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise SpecError(f"transform {text!r} is not known; write one of {_SYNTAX}.")
    seed = 0
    if seed_text:
        if kind not in RANDOM_KINDS or not seed_text.isdigit():
            raise SpecError(f"transform {text!r}: only permute-labels, flip-labels and noise take a seed, written @N "
                            "(N ≥ 0).")
        seed = int(seed_text)
    if kind in ("identity", "permute-labels", "swap-classes"):
        if arg:
            raise SpecError(f"transform {text!r} takes no value; write {kind!r}.")
        return Transform(kind, seed=seed)
    if kind == "reflect":
        if arg not in ("x", "y"):
            raise SpecError(f"transform {text!r}: reflect takes the axis to mirror in, reflect:x or reflect:y.")
        return Transform(kind, axis=arg)
    try:
        params = tuple(float(v) for v in arg.split(","))
    except ValueError:
        raise SpecError(f"transform {text!r} needs numbers after the colon; write one of {_SYNTAX}.") from None
    want = 2 if kind == "translate" else 1
    if len(params) != want or not all(np.isfinite(params)):
        raise SpecError(f"transform {text!r} needs {want} finite number(s); write one of {_SYNTAX}.")
    if kind == "scale" and params[0] == 0:
        raise SpecError(f"transform {text!r}: scale:0 collapses every point; give a non-zero factor.")
    if kind == "flip-labels" and (params[0] < 1 or params[0] != int(params[0])):
        raise SpecError(f"transform {text!r}: flip-labels takes a whole number of labels to flip, 1 or more.")
    if kind == "noise" and params[0] < 0:
        raise SpecError(f"transform {text!r}: the noise level SIGMA must be 0 or more.")
    return Transform(kind, params, seed=seed)


def apply_transforms(x: np.ndarray, y: np.ndarray, specs: list[str] | tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` after each transform in ``specs``, in order."""
    for s in specs:
        x, y = parse_transform(s).apply(x, y)
    return x, y


def absorb(theta: np.ndarray, layout: list[tuple[int, int, int, int]], A: np.ndarray, t: np.ndarray) -> np.ndarray:
    """θ' such that f_θ'(A x + t) = f_θ(x): W1' = A^{-T} W1, b1' = b1 - tᵀ W1' (``layout`` = ``MLPSpec.offsets()``)."""
    theta = np.array(theta, dtype=np.float64, copy=True)
    w_off, b_off, fan_in, fan_out = layout[0]
    lead = theta.shape[:-1]
    W1 = theta[..., w_off:b_off].reshape(*lead, fan_in, fan_out)
    W1n = np.linalg.solve(np.asarray(A, float).T, W1) if W1.ndim == 2 else np.einsum(
        "ij,...jk->...ik", np.linalg.inv(np.asarray(A, float).T), W1)
    theta[..., w_off:b_off] = W1n.reshape(*lead, fan_in * fan_out)
    theta[..., b_off : b_off + fan_out] -= np.einsum("i,...ik->...k", np.asarray(t, float), W1n)
    return theta


def unabsorb(theta: np.ndarray, layout: list[tuple[int, int, int, int]], A: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The inverse of :func:`absorb`: draws of the transformed landscape mapped back to the untransformed one."""
    theta = np.array(theta, dtype=np.float64, copy=True)
    w_off, b_off, fan_in, fan_out = layout[0]
    lead = theta.shape[:-1]
    W1n = theta[..., w_off:b_off].reshape(*lead, fan_in, fan_out)
    theta[..., b_off : b_off + fan_out] += np.einsum("i,...ik->...k", np.asarray(t, float), W1n)
    theta[..., w_off:b_off] = np.einsum("ji,...jk->...ik", np.asarray(A, float), W1n).reshape(*lead, fan_in * fan_out)
    return theta


def swap_output_columns(theta: np.ndarray, layout: list[tuple[int, int, int, int]]) -> np.ndarray:
    """θ with the last layer's output columns (weights and biases) in reverse order: the network whose class c is
    the original's class C - 1 - c. Its own inverse."""
    theta = np.array(theta, dtype=np.float64, copy=True)
    w_off, b_off, fan_in, fan_out = layout[-1]
    lead = theta.shape[:-1]
    W = theta[..., w_off:b_off].reshape(*lead, fan_in, fan_out)
    theta[..., w_off:b_off] = W[..., ::-1].reshape(*lead, fan_in * fan_out)
    theta[..., b_off : b_off + fan_out] = theta[..., b_off : b_off + fan_out][..., ::-1]
    return theta
