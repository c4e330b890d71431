"""Where a string's tensors live: ``auto`` (CUDA when PyTorch sees one, else the CPU), ``cpu`` or ``cuda``.

A task is moved once (:meth:`to`), and every tensor DSS makes from it (beads, scans, training state) is made on the
task's device (:func:`task_device`), so a string never copies data between host and device inside a loop: beads
leave the device once per depth, to be stored.
"""

from __future__ import annotations

import torch

from mcmc_landscape.devices import resolve_device  # noqa: F401  (re-exported)

DEVICES = ("auto", "cpu", "cuda")


def task_device(task) -> torch.device:
    """The device a task's data lives on (the CPU for tasks that do not say)."""
    return getattr(task, "device", None) or torch.device("cpu")


def as_beads(task, arrays) -> torch.Tensor:
    """Host arrays (or tensors) of flat models as one tensor in the task's dtype, on the task's device."""
    dtype = getattr(task, "dtype", torch.float64)
    if isinstance(arrays, torch.Tensor):
        return arrays.to(device=task_device(task), dtype=dtype)
    return torch.as_tensor(arrays, dtype=dtype).to(task_device(task))


def eval_budget(device: torch.device) -> int:
    """Activation floats one held-out evaluation call may make: 50M (200 MB in float32) on the CPU, a sixteenth of
    the memory of a GPU (5 GB on an 80 GB card), so scans of large models go in few, large calls there."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory // 4 // 16)
    return 50_000_000
