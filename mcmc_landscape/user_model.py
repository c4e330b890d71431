"""Bring your own model: ``--model package.module:factory`` (or ``path/to/file.py:factory``) and ``--data file.npz``.

The factory is any callable returning an ``nn.Module`` that maps a batch of inputs ``x`` (n, ...) to logits (n, C);
the data file holds ``x`` and ``y`` (integer labels), optionally ``x_test`` and ``y_test``. Both are checked here,
once, with one sentence for each thing a user can get wrong: a factory that does not import or returns no module,
data without ``y``, mismatched lengths, and logits of the wrong shape (found by one forward pass on two examples).
The model's flat vector is its ``named_parameters()`` concatenated (:class:`mcmc_landscape.models.zoo.FlatLayout`), so every
command that takes a zoo model takes a user model the same way.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.errors import DataError, SpecError


def is_user_model(name: Any) -> bool:
    """A ``--model`` value naming a factory (``module:callable``) rather than a model of the zoo."""
    return isinstance(name, str) and ":" in name


def import_factory(spec: str) -> Any:
    """The callable named by ``package.module:factory`` or ``file.py:factory`` (the current folder is searched too,
    as ``python -m`` would)."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise SpecError(f"--model {spec!r} is not of the form package.module:factory or file.py:factory.")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise SpecError(f"--model {spec!r}: the file {target!r} does not exist.")
            mod_spec = importlib.util.spec_from_file_location(f"_landscape_user_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.append(os.getcwd())
            module = importlib.import_module(target)
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 (any failure of the user's code is the user's to fix)
        raise SpecError(f"--model {spec!r}: cannot import {target!r} ({type(exc).__name__}: {exc}); check the name "
                        "and that it is on PYTHONPATH.") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise SpecError(f"--model {spec!r}: {target!r} has no callable {attr!r}.")
    return factory


def build_user_model(spec: str, n_classes: int | None = None) -> Any:
    """Call the factory (with no arguments) and check it returns an ``nn.Module`` with parameters."""
    from torch import nn

    try:
        module = import_factory(spec)()
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"--model {spec!r}: the factory raised {type(exc).__name__}: {exc}.") from None
    if not isinstance(module, nn.Module):
        raise SpecError(f"--model {spec!r}: the factory returned a {type(module).__name__}, not a torch.nn.Module.")
    if not any(True for _ in module.parameters()):
        raise SpecError(f"--model {spec!r}: the module has no parameters to sample.")
    return module


@dataclass(frozen=True)
class UserData:
    """A user's data file: training inputs and integer labels, and the held-out pair when given."""

    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        ys = self.y if self.y_test is None else np.concatenate([self.y, self.y_test])
        return int(ys.max()) + 1


def load_npz(path: str | os.PathLike, keep_dtype: bool = False) -> UserData:
    """Read and check ``x``, ``y`` (and ``x_test``, ``y_test``) from an ``.npz`` file. Inputs become float64 unless
    ``keep_dtype`` (a zoo convnet normalizes uint8 images itself, so they must stay uint8)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--data {str(path)!r} does not exist; give an .npz file holding arrays x and y.")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except Exception as exc:  # noqa: BLE001 (a corrupt file, a pickle, not an npz)
        raise DataError(f"--data {str(path)!r} is not a readable .npz file of arrays ({exc}).") from None
    for name in ("x", "y"):
        if name not in arrays:
            raise DataError(f"--data {str(path)!r} has no array {name!r} (it holds {', '.join(arrays) or 'nothing'}); "
                            "save it with np.savez(path, x=..., y=...).")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise DataError(f"--data {str(path)!r} holds only one of x_test and y_test; give both or neither.")
    pairs = [("x", "y")] + ([("x_test", "y_test")] if "x_test" in arrays else [])
    for xn, yn in pairs:
        x, y = arrays[xn], arrays[yn]
        if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
            raise DataError(f"--data {str(path)!r}: {xn} must be (n, features...) and {yn} (n,) with the same n ≥ 1, "
                            f"got {x.shape} and {y.shape}.")
        if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
            raise DataError(f"--data {str(path)!r}: {xn} must hold finite numbers.")
        if not np.issubdtype(y.dtype, np.integer) and not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(f"--data {str(path)!r}: {yn} must hold integer class labels 0, 1, ..., got {y.dtype}.")
        if y.min() < 0:
            raise DataError(f"--data {str(path)!r}: {yn} holds negative labels; classes are 0, 1, ...")
    as_float = {k: np.ascontiguousarray(arrays[k], dtype=None if keep_dtype else np.float64)
                for k in ("x", "x_test") if k in arrays}
    as_int = {k: np.ascontiguousarray(arrays[k], dtype=np.int64) for k in ("y", "y_test") if k in arrays}
    return UserData(as_float["x"], as_int["y"], as_float.get("x_test"), as_int.get("y_test"))


def check_output(module: Any, x: np.ndarray, n_classes: int, spec: str = "the model") -> int:
    """One forward pass on two examples: the logits must be (2, C) with C ≥ ``n_classes``; returns C."""
    import torch

    dtype = next(module.parameters()).dtype
    try:
        with torch.no_grad():
            out = module(torch.as_tensor(x[:2], dtype=dtype))
    except Exception as exc:  # noqa: BLE001
        raise SpecError(f"--model {spec!r} fails on inputs of shape {tuple(x[:2].shape)} from --data "
                        f"({type(exc).__name__}: {exc}).") from None
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 2 or shape[0] != len(x[:2]) or shape[1] < max(2, n_classes):
        raise SpecError(f"--model {spec!r} maps inputs {tuple(x[:2].shape)} to {shape}, but the data's "
                        f"{n_classes} classes need logits of shape ({len(x[:2])}, {max(2, n_classes)}).")
    return int(shape[1])


def load_user_model(spec: str, data: str | os.PathLike) -> tuple[Any, UserData]:
    """The module and the data, each checked, and checked against each other."""
    ds = load_npz(data)
    module = build_user_model(spec)
    check_output(module, ds.x, ds.n_classes, spec)
    return module, ds


def stored_module_layout(cfg: dict[str, Any]) -> Any:
    """The flat layout (``FlatLayout``) of a stored zoo or user-model run, rebuilt from its config to name θ's
    coordinates in an export; None (with a warning) where the model cannot be rebuilt."""
    import warnings

    from mcmc_landscape.models.zoo import MODELS, FlatLayout, build_model

    try:
        if cfg.get("model") in MODELS:
            return FlatLayout.of(build_model(cfg["model"], **cfg.get("model_options", {})))
        return FlatLayout.of(build_user_model(cfg["model"], cfg.get("model_options", {}).get("n_classes")))
    except Exception as exc:  # noqa: BLE001 (names are a nicety; the draws are exported regardless)
        warnings.warn(f"parameters named theta[k]: the model {cfg.get('model')!r} could not be rebuilt ({exc})",
                      stacklevel=3)
        return None
