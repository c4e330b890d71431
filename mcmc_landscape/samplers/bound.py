"""The part of a sampler bound to an energy that the runner drives and that does not depend on the sampler: the
settings checked once, warm-up left, the progress numbers, and the state as arrays (a named tuple whose ``iteration``
is an int). :class:`BoundKernel` for NumPy states (the Numba kernels), :class:`TorchKernel` for torch states on a
device (HMC, the torch random walk)."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Kernel(Protocol):
    """What the runner drives (BlackJAX's init/step, with blocks): every sampler bound to an energy has this shape.

    ``run_block`` returns a 4-tuple (state, theta (C, k, p), energy (C, k), accepted (C, k)), draws as NumPy arrays;
    warm-up steps come first (at most ``max_warmup_steps`` in one call, and then no draws)."""

    name: str
    settings: Any

    def init(self, n_chains: int, seed: int) -> Any: ...

    def run_block(self, state: Any, n_draws: int, max_warmup_steps: int | None = None) -> tuple[Any, ...]: ...

    def warmup_left(self, state: Any) -> int: ...

    def step_cost(self) -> int: ...

    def state_arrays(self, state: Any) -> dict[str, np.ndarray]: ...

    def state_from_arrays(self, arrays: dict[str, np.ndarray]) -> Any: ...

    def summary(self, state: Any) -> dict[str, Any]: ...


class BoundKernel:
    """Subclasses set ``name`` and ``state_type`` and give ``_validate``, ``_init``, ``run_block`` and ``summary``."""

    name: ClassVar[str]
    state_type: ClassVar[type]

    def __init__(self, model: Any, settings: Any):
        self._validate(settings)
        self.model = model
        self.settings = settings

    @staticmethod
    def _validate(settings: Any) -> None:
        raise NotImplementedError

    def _init(self, n_chains: int, seed: int) -> Any:
        raise NotImplementedError

    def init(self, n_chains: int, seed: int) -> Any:
        return self._init(n_chains, seed)

    def warmup_left(self, state: Any) -> int:
        return max(self.settings.warmup - state.iteration, 0)

    def summary(self, state: Any) -> dict[str, float]:
        """Numbers for the progress line: mean acceptance since warm-up, median step size, non-finite proposals."""
        kept_steps = max(state.iteration - self.settings.warmup, 0)
        acc = float(state.n_accepted.mean() / kept_steps) if kept_steps else float("nan")
        return {"acceptance": acc, "step": float(np.median(np.exp(state.log_step))),
                "nonfinite": int(state.n_nonfinite.sum())}

    @staticmethod
    def state_arrays(state: Any) -> dict[str, np.ndarray]:
        d = state._asdict()
        d["iteration"] = np.int64(d["iteration"])
        return d

    @classmethod
    def state_from_arrays(cls, arrays: dict[str, np.ndarray]) -> Any:
        d = {k: np.ascontiguousarray(arrays[k]) for k in cls.state_type._fields}
        d["iteration"] = int(arrays["iteration"])
        return cls.state_type(**d)


class TorchKernel:
    """A kernel whose state is a named tuple of tensors on ``self.device``: integer fields listed in ``scalars``,
    the generator's state in ``rng_state`` (uint8), counts as int64 tensors, the rest in ``self.dtype``."""

    state_type: ClassVar[type]
    scalars: ClassVar[tuple[str, ...]] = ("iteration",)
    floats: ClassVar[tuple[str, ...]] = ()  # Python float fields (adaptation state kept on the host)
    settings: Any
    device: Any
    dtype: Any

    def warmup_left(self, state: Any) -> int:
        return max(self.settings.warmup - state.iteration, 0)

    @classmethod
    def state_arrays(cls, state: Any) -> dict[str, np.ndarray]:
        return {k: np.int64(v) if k in cls.scalars else np.float64(v) if k in cls.floats else v.detach().cpu().numpy()
                for k, v in state._asdict().items()}

    def state_from_arrays(self, arrays: dict[str, np.ndarray]) -> Any:
        import torch

        d = {}
        defaults = self.state_type._field_defaults
        for k in self.state_type._fields:
            if k not in arrays and k in defaults:  # a field added later (e.g. ChEES's): files written before lack it
                d[k] = defaults[k]
                continue
            v = np.asarray(arrays[k])
            if k in self.floats:
                d[k] = float(v)
            elif k in self.scalars:
                d[k] = int(v)
            elif k == "rng_state":
                d[k] = torch.as_tensor(v.astype(np.uint8))
            elif v.dtype.kind == "i":
                d[k] = torch.as_tensor(v).to(self.device)
            else:
                d[k] = torch.as_tensor(v).to(device=self.device, dtype=self.dtype)
        return self.state_type(**d)

    def summary(self, state: Any) -> dict[str, float]:
        kept = max(state.iteration - self.settings.warmup, 0)
        acc = float(state.n_accepted.double().mean().item() / kept) if kept else float("nan")
        return {"acceptance": acc, "step": float(state.log_step.exp().median().item()),
                "nonfinite": int(state.n_nonfinite.sum().item())}
