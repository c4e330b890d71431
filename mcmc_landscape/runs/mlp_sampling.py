"""Sampling an MLP on a points data set (``landscape sample --arch 2,2 --data points10``): its data, its energy and
the kernel of the sampler chosen (random walk, parallel tempering, emcee or HMC).

:class:`MLPRun` is this kind of run as :mod:`.sampling` sees it (:class:`~mcmc_landscape.runs.sampling.RunKind`);
:mod:`.zoo_sampling` is the other kind.
"""

from __future__ import annotations

import logging
from typing import Any

from mcmc_landscape.data.datasets import data_digest, load_dataset, validate_dataset
from mcmc_landscape.errors import SpecError
from mcmc_landscape.runs.config import RunConfig

log = logging.getLogger("mcmc_landscape.runs.sampling")


class MLPRun:
    """The MLP kind of run: the data named in the config, the spec from ``--arch``, one of four samplers."""

    def settle(self, cfg: RunConfig, explicit: dict[str, Any], device: str,
               data_dir: Any = None) -> tuple[RunConfig, Any, Any, Any]:
        """(cfg, data, spec, kernel) of a new run: the data read and digested, the widths and float types filled in."""
        ds = load_dataset(cfg.data, cfg.angle)
        cfg = cfg.replace(data_sha256=data_digest(ds.x, ds.y))
        spec, kernel = make_kernel(cfg, ds.x, ds.y, device)
        cfg = cfg.replace(widths=tuple(spec.widths))
        if cfg.dtype == "float32" and cfg.theta_dtype is None:  # float32 draws in float64 would be half zeros
            cfg = cfg.replace(theta_dtype="float32")
        return cfg, ds, spec, kernel

    def kernel(self, cfg: RunConfig, x: Any, y: Any, device: str) -> tuple[Any, Any]:
        return make_kernel(cfg, x, y, device)

    def data_differences(self, stored: RunConfig, data: str) -> list[str]:
        """A resume's ``--data`` must hold the very data stored with the run (their digests compared)."""
        ds = load_dataset(data, stored.angle)
        if data_digest(ds.x, ds.y) != stored.data_sha256:
            return [f"--data {data!r} does not hold the data stored with the run"]
        return []


def make_kernel(cfg: RunConfig, x: Any, y: Any, device: str = "auto") -> tuple[Any, Any]:
    """(spec, kernel) of the MLP run ``cfg`` on data ``x``, ``y``."""
    from mcmc_landscape.models.nets import MLPSpec

    ds = validate_dataset(x, y, name=str(cfg.data))
    spec = MLPSpec.from_string(cfg.arch, n_in=ds.n_in, n_out=max(2, ds.n_classes), activation=cfg.activation)
    if cfg.target_accept is not None and not cfg.target_accept < 1:
        raise SpecError(f"--target-accept must be below 1, got {cfg.target_accept}.")
    if cfg.sampler == "hmc":
        return spec, _make_hmc(cfg, spec, ds, device)
    from mcmc_landscape.models.energy import mlp_energy_model

    model = mlp_energy_model(spec, ds)
    if cfg.sampler == "emcee":
        from mcmc_landscape.samplers import ensemble

        settings = ensemble.EnsembleSettings(temperature=cfg.temperature, box=cfg.box, warmup=cfg.warmup,
                                             thin=cfg.thin, stretch=cfg.stretch)
        return spec, ensemble.EnsembleKernel(model, settings)
    region = None
    if cfg.box_transform:
        from mcmc_landscape.samplers.region import region_matrix

        region = region_matrix(cfg.box_transform, spec.offsets(), spec.n_in)
    if cfg.sampler == "pt":
        from mcmc_landscape.samplers import tempering

        settings = tempering.PTSettings(temperature=cfg.temperature, box=cfg.box, target_accept=cfg.target_accept,
                                        warmup=cfg.warmup, thin=cfg.thin, initial_step=cfg.initial_step,
                                        n_temps=cfg.temps, t_max=cfg.t_max, region=region)
        return spec, tempering.PTKernel(model, settings)
    from mcmc_landscape.samplers import rw

    settings = rw.RWSettings(temperature=cfg.temperature, box=cfg.box, target_accept=cfg.target_accept,
                             warmup=cfg.warmup, thin=cfg.thin, initial_step=cfg.initial_step, region=region)
    return spec, rw.RWKernel(model, settings)


def _make_hmc(cfg: RunConfig, spec: Any, ds: Any, device: str) -> Any:
    import torch

    from mcmc_landscape.models.energy import mlp_energy_torch, mlp_torch_energy_grad_fn
    from mcmc_landscape.samplers import hmc
    from mcmc_landscape.samplers.hmc_mlp import mlp_torch_trajectory_fn

    dev = hmc.resolve_device(device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    xt = torch.as_tensor(ds.x, dtype=dtype, device=dev)
    yt = torch.as_tensor(ds.y, dtype=torch.int64, device=dev)

    def energy(theta: Any) -> Any:
        return mlp_energy_torch(theta, spec, xt, yt)

    settings = hmc.HMCSettings(temperature=cfg.temperature, box=cfg.box, target_accept=cfg.target_accept,
                               warmup=cfg.warmup, thin=cfg.thin, n_leapfrog=cfg.leapfrog, jitter=bool(cfg.jitter),
                               initial_step=cfg.initial_step, trajectory=cfg.trajectory or "fixed")
    energy_and_grad = mlp_torch_energy_grad_fn(spec, ds, dev, dtype)
    log.debug("hmc on %s in %s", dev, cfg.dtype)
    return hmc.HMCKernel(energy, spec.n_params, settings, dev, dtype, grad_fn=energy_and_grad,
                         trajectory_fn=mlp_torch_trajectory_fn(spec, ds, dev))
