"""Sampling a model of the zoo (``landscape sample --model mnist-convnet --data mnist --n-train N``): its data, its
energy U(θ) = Σ_i CE(f_θ(x_i), y_i) over the first N training images, and the HMC or random-walk kernel over it.

Every chain is one flat parameter vector (:class:`mcmc_landscape.models.zoo.FlatLayout`); all chains go through the model as
one batch with ``torch.func`` (:func:`mcmc_landscape.models.zoo.module_energy`), in chunks of at most ``chain_chunk`` chains
× ``example_chunk`` images so memory stays bounded. Chains start where PyTorch would initialize the model. The images
are stored with the run (uint8, as read), so a resume rebuilds the same energy without the data folder.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mcmc_landscape.errors import DataError, SpecError
from mcmc_landscape.runs.config import ZOO_DEFAULTS, RunConfig  # noqa: F401  (ZOO_DEFAULTS re-exported)
from mcmc_landscape.samplers import hmc
from mcmc_landscape.samplers.hmc import HMCKernel

log = logging.getLogger("mcmc_landscape.runs.sampling")

#: The data sets a zoo model can be sampled on, and the image models that take them.
ZOO_DATA = ("mnist", "cifar10")
IMAGE_MODELS = ("mnist-convnet", "cifar10-convnet", "small-convnet")
WIDTH_MODELS = ("mnist-convnet", "cifar10-convnet")
#: Settings of a zoo run (beside the sampler's) that define the run (a resume must match them).
ZOO_RUN_KEYS = ("model", "width", "n_train")
#: Chain × image pairs one chunk of the energy evaluates at most (activations of ~0.2 MB per pair at width 1).
PAIRS_PER_CHUNK = 4096


@dataclass(frozen=True)
class ZooSpec:
    """What a zoo run samples: the model, its constructor options and its number of parameters."""

    model: str
    options: dict[str, Any] = field(default_factory=dict)
    n_params: int = 0

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.model}({opts}): p = {self.n_params:,}"


def load_zoo_data(name: str, n_train: int, data_dir: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_train`` training images (uint8, as read) and labels of ``name`` (mnist or cifar10)."""
    from mcmc_landscape.data.realdata import load_cifar10, load_mnist

    if name not in ZOO_DATA:
        raise DataError(f"--data {name!r} is not a data set for zoo models; choose one of {', '.join(ZOO_DATA)}.")
    x, y = (load_mnist if name == "mnist" else load_cifar10)("train", data_dir)
    if n_train > len(y):
        raise DataError(f"--n-train {n_train} is more than the {len(y)} training images of {name}; give at most "
                        f"{len(y)}.")
    return np.ascontiguousarray(x[:n_train]), np.ascontiguousarray(y[:n_train], dtype=np.int64)


def model_options(model: str, width: float, x: np.ndarray) -> dict[str, Any]:
    """Constructor options of ``model`` for images ``x`` (n, H, W) or (n, H, W, C)."""
    if model not in IMAGE_MODELS:
        raise SpecError(f"--model {model!r} cannot be sampled on images; choose one of {', '.join(IMAGE_MODELS)}, or "
                        "give your own as package.module:factory.")
    channels = 1 if x.ndim == 3 else int(x.shape[-1])
    opts: dict[str, Any] = {"in_channels": channels, "side": int(x.shape[1])}
    if model in WIDTH_MODELS:
        opts["width"] = float(width)
    elif width != 1.0:
        raise SpecError(f"--width applies to {' and '.join(WIDTH_MODELS)} only; drop it for {model}.")
    return opts


def default_chunks(n_chains: int, n_train: int) -> tuple[int, int]:
    """(chain_chunk, example_chunk) holding about :data:`PAIRS_PER_CHUNK` chain × image pairs per call."""
    chain_chunk = max(1, min(n_chains, 32))
    return chain_chunk, max(1, min(n_train, PAIRS_PER_CHUNK // chain_chunk))


def zoo_energy(cfg: RunConfig, x: np.ndarray, y: np.ndarray, device: Any, dtype: Any):
    """The batched energy (a :class:`mcmc_landscape.models.zoo.ModuleEnergy`) of the run ``cfg`` on images ``x``,
    labels ``y``, and the spec. A user's module (``--model module:factory``) runs on the user's arrays as they are."""
    from mcmc_landscape.models.zoo import build_model, module_energy, prepare_images
    from mcmc_landscape.user_model import build_user_model, is_user_model

    chain_chunk, example_chunk = default_chunks(int(cfg.chains), len(y))
    torch.manual_seed(0)  # the module's own weights are never used (θ replaces them); seeded so building is pure
    if is_user_model(cfg.model):
        opts = dict(cfg.model_options or {})
        module = build_user_model(cfg.model).to(device=device, dtype=dtype)
        xt = torch.as_tensor(x, dtype=dtype, device=device)
    else:
        opts = model_options(cfg.model, cfg.width, x)
        module = build_model(cfg.model, **opts).to(device=device, dtype=dtype)
        xt = prepare_images(x).to(device=device, dtype=dtype)
    yt = torch.as_tensor(y, dtype=torch.int64, device=device)
    energy = module_energy(module, xt, yt, "sum", cfg.chain_chunk or chain_chunk, cfg.example_chunk or example_chunk)
    return ZooSpec(cfg.model, opts, energy.p), energy


def start_positions(energy: Any, box: float):
    """``start(n_chains, seed)``: models drawn as PyTorch initializes layers, seeded, inside the box."""

    def start(n_chains: int, seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(int(np.random.SeedSequence([int(seed), 0]).generate_state(1)[0]))
        theta = energy.layout.init(n_chains, gen, dtype=torch.float64)
        return theta.clamp(-box, box)

    return start


def resolve_dtype(dtype: str | None, device: Any) -> str:
    """The run's float type: as asked, else float32 on a GPU and float64 on the CPU."""
    if dtype in ("float32", "float64"):
        return dtype
    return "float32" if device.type == "cuda" else "float64"


class ZooRun:
    """The zoo kind of run (:class:`~mcmc_landscape.runs.sampling.RunKind`): a model of the zoo on real images, or a
    user's module on the user's arrays."""

    def settle(self, cfg: RunConfig, explicit: dict[str, Any], device: str,
               data_dir: Any = None) -> tuple[RunConfig, Any, Any, Any]:
        from types import SimpleNamespace

        cfg, spec, kernel, x, y = settle_zoo(cfg, explicit.get("dtype"), device, data_dir)
        return cfg, SimpleNamespace(x=x, y=y), spec, kernel

    def kernel(self, cfg: RunConfig, x: Any, y: Any, device: str) -> tuple[Any, Any]:
        return make_zoo_kernel(cfg, x, y, device)

    def data_differences(self, stored: RunConfig, data: str) -> list[str]:
        """A zoo run names its data set (the images are stored with it): a resume may only name the same."""
        return [] if data == stored.data else [f"--data {data!r} differs from the stored {stored.data!r}"]


def settle_zoo(cfg: RunConfig, dtype: str | None, device: str, data_dir: Any):
    """Settle a new zoo run's config (float type, storage type, data digest, model options) and build its kernel:
    (cfg, spec, kernel, x, y). ``dtype`` is the one given, if any."""
    from mcmc_landscape.user_model import is_user_model

    if is_user_model(cfg.model):
        return settle_user(cfg, dtype, device)
    # the MLP HMC's float64 default is not a choice here: unless --dtype was given, float32 on a GPU (issue 14)
    cfg = cfg.replace(dtype=resolve_dtype(dtype, hmc.resolve_device(device)))
    if cfg.theta_dtype is None:
        cfg = cfg.replace(theta_dtype="float32")
    x, y = load_zoo_data(cfg.data, int(cfg.n_train), data_dir)
    cfg = cfg.replace(data_sha256=zoo_data_digest(x, y))
    spec, kernel = make_zoo_kernel(cfg, x, y, device)
    return cfg.replace(model_options=spec.options), spec, kernel, x, y


def settle_user(cfg: RunConfig, dtype: str | None, device: str):
    """A user's model (``--model module:factory``) on the user's ``--data file.npz``: (cfg, spec, kernel, x, y)."""
    from mcmc_landscape.data.datasets import data_digest
    from mcmc_landscape.user_model import load_user_model

    _, ds = load_user_model(cfg.model, cfg.data)
    cfg = cfg.replace(dtype=resolve_dtype(dtype, hmc.resolve_device(device)))
    if cfg.theta_dtype is None:
        cfg = cfg.replace(theta_dtype="float32" if cfg.dtype == "float32" else "float64")
    cfg = cfg.replace(data_sha256=data_digest(ds.x, ds.y), model_options={"n_classes": ds.n_classes})
    spec, kernel = make_zoo_kernel(cfg, ds.x, ds.y, device)
    return cfg, spec, kernel, ds.x, ds.y


def zoo_data_digest(x: Any, y: Any) -> str:
    """SHA-256 of images as stored (uint8) and labels."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


def make_zoo_kernel(cfg: RunConfig, x: np.ndarray, y: np.ndarray, device: str = "auto"):
    """(spec, kernel) for the zoo run ``cfg``: HMC or the torch random walk over the model's energy."""
    from mcmc_landscape.samplers import rw, rw_torch

    dev = hmc.resolve_device(device)
    dtype = torch.float64 if resolve_dtype(cfg.dtype, dev) == "float64" else torch.float32
    spec, energy = zoo_energy(cfg, x, y, dev, dtype)
    start = start_positions(energy, float(cfg.box))
    log.debug("%s on %s in %s, chunks of %s chains × %s images", spec.describe(), dev, dtype, energy.chain_chunk,
              energy.example_chunk)
    if cfg.sampler == "hmc":
        settings = hmc.HMCSettings(temperature=cfg.temperature, box=cfg.box, target_accept=cfg.target_accept,
                                   warmup=cfg.warmup, thin=cfg.thin, n_leapfrog=cfg.leapfrog, jitter=bool(cfg.jitter),
                                   initial_step=cfg.initial_step, trajectory=cfg.trajectory or "fixed")
        return spec, ZooHMCKernel(energy, spec.n_params, settings, dev, dtype, grad_fn=energy.energy_and_grad,
                                  start=start)
    if cfg.sampler == "rw":
        settings = rw.RWSettings(temperature=cfg.temperature, box=cfg.box, target_accept=cfg.target_accept,
                                 warmup=cfg.warmup, thin=cfg.thin, initial_step=cfg.initial_step)
        return spec, rw_torch.TorchRWKernel(energy, settings, start, dev, dtype)
    raise SpecError(f"--sampler {cfg.sampler} cannot sample a zoo model; use --sampler hmc or rw.")


class ZooHMCKernel(HMCKernel):
    """HMC whose chains start at the zoo's initialization (``start(n_chains, seed)``) instead of uniformly in the box."""

    def __init__(self, *args: Any, start: Callable[[int, int], torch.Tensor], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start = start

    def init(self, n_chains: int, seed: int) -> Any:
        if n_chains < 1:
            raise SpecError(f"the number of chains must be at least 1, got {n_chains}.")
        return hmc.init(self.energy_fn, n_chains, self.p, seed, self.settings, self.device, self.dtype,
                        positions=self.start(n_chains, seed).to(self.device, self.dtype), grad_fn=self.grad_fn)
