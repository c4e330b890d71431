"""Where computation runs: ``--device auto|cpu|cuda`` resolved once, with one sentence when CUDA is asked for and absent.

Every compute path (samplers, quench, DSS) takes a device through this one function, so the rule is the same
everywhere: ``auto`` is CUDA where PyTorch sees one, else the CPU.
"""

from __future__ import annotations

import torch

from mcmc_landscape.errors import SpecError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) is CUDA where PyTorch sees one, else the CPU; CUDA asked for where there is none, or an
    unknown name, is a :class:`SpecError`."""
    if isinstance(device, torch.device):
        return device
    device = device or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError("--device cuda was asked for but PyTorch sees no CUDA GPU here; use --device cpu or auto.")
    try:
        return torch.device(device)
    except RuntimeError:
        raise SpecError(f"unknown device {device!r}; use auto, cpu or cuda.") from None
