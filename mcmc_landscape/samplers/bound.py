"""The part of a CPU sampler bound to an energy that the runner drives and that does not depend on the sampler: the
settings checked once, warm-up left, and the state as arrays (a named tuple whose ``iteration`` is an int)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


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
