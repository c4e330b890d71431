"""Where the instruments look: θ from a chain file's draws, a census's minima, a DSS string's beads, a checkpoint, or
a model as its factory builds it (``--model`` alone; a zoo name or a user's ``package.module:factory`` with
``--data FILE.npz``), with the loss they belong to (a :class:`mcmc_landscape.targets.Target`).

:func:`resolve` is the one place a source becomes (target, θ rows, labels); ``landscape hessian`` and ``landscape
slice`` both call it. A new kind of model plugs in through :func:`mcmc_landscape.targets.module_target` (an
``nn.Module`` and its data); :func:`module_point` does that for a zoo or user checkpoint, the user's module and
data read and checked by :mod:`mcmc_landscape.user_model`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.errors import SpecError

from .common import positive_float, positive_int


def index_list(text: str) -> list[int]:
    """An argparse type: ``3`` or ``0,2,5`` (whole numbers ≥ 0)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"indices must be whole numbers ≥ 0, got {text!r}")
    return values


def add_source_arguments(p: argparse.ArgumentParser, outputs: str) -> None:
    """The source, ``--out`` (a folder holding ``outputs``), ``--force``, and the flags that pick θ from the source
    (see :func:`resolve`): what `hessian` and `slice` share."""
    p.add_argument("source", nargs="?", help="a chain file, a census folder, a DSS string file or a .pt checkpoint "
                   "(none: the --model as built)")
    p.add_argument("--out", required=True, help=f"output folder ({outputs})")
    p.add_argument("--force", action="store_true", help="write into a non-empty output folder")
    g = p.add_argument_group("where θ comes from")
    g.add_argument("--chain", type=index_list, help="chain file: chain(s), e.g. 0 or 0,3 (default 0)")
    g.add_argument("--draw", type=index_list, help="chain file: draw(s) (default the last committed one)")
    g.add_argument("--run", help="chain file: the run (default the only one)")
    g.add_argument("--minimum", type=index_list, help="census folder: minimum id(s) (default 0)")
    g.add_argument("--bead", type=index_list, help="DSS string file: bead id(s) along the string (default all)")
    g.add_argument("--model", metavar="NAME|MODULE:FACTORY",
                   help="checkpoint (.pt state_dict), or no SOURCE: a zoo model (e.g. small-convnet) or your own "
                        "package.module:factory (or file.py:factory) returning an nn.Module; no SOURCE takes the "
                        "weights the factory builds (seeded by --seed)")
    g.add_argument("--data", help="with --model: mnist, cifar10, or an .npz with arrays x and y (a factory needs the "
                                  ".npz)")
    g.add_argument("--n-train", type=positive_int, default=1000, help="checkpoint: training examples used (1000)")
    g.add_argument("--width", type=positive_float, default=1.0, help="checkpoint: the zoo model's width (1.0)")
    g.add_argument("--data-dir", help="folder of the real data sets (default $MCMC_LANDSCAPE_DATA or ../shared/data)")


def kind_of(path: Path) -> str:
    """chains | census | string | checkpoint, from what the file or folder holds."""
    if path.is_dir():
        if (path / "census.json").is_file():
            return "census"
        raise SpecError(f"{str(path)!r} is a folder without census.json; give a census folder or a file.")
    if not path.is_file():
        raise SpecError(f"{str(path)!r} does not exist; give a chain file, census folder, DSS string or checkpoint.")
    if path.suffix in (".pt", ".pth"):
        return "checkpoint"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", "")
    except OSError:
        raise SpecError(f"{str(path)!r} is neither HDF5 (a chain or string file) nor a .pt checkpoint.") from None
    if fmt == "mcmc-landscape/chains":
        return "chains"
    if fmt == "mcmc-landscape/dss-string":
        return "string"
    raise SpecError(f"{str(path)!r} is HDF5 but neither a chain file nor a DSS string file (format {fmt!r}).")


def _refuse(args: argparse.Namespace, kind: str, allowed: tuple[str, ...]) -> None:
    flags = {"chain": "chains", "draw": "chains", "run": "chains", "minimum": "census", "bead": "string",
             "model": "checkpoint", "data": "checkpoint"}
    kind = "model given by --model" if kind == "model" else kind
    for flag, owner in flags.items():
        if getattr(args, flag, None) is not None and flag not in allowed:
            raise SpecError(f"--{flag} applies to a {owner.replace('chains', 'chain file')} source, not to this "
                            f"{kind.replace('chains', 'chain file')}.")


def chain_target(cfg: dict[str, Any], x: np.ndarray, y: np.ndarray, device: Any, dtype: Any) -> Any:
    """The loss (U/n) of the run ``cfg``: the MLP classifier, or its zoo model on the stored images."""
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.targets import mlp_target, module_target

    if "model" in cfg:
        from mcmc_landscape.models.zoo import build_model, prepare_images
        from mcmc_landscape.runs.zoo_sampling import model_options
        from mcmc_landscape.user_model import build_user_model, is_user_model

        if is_user_model(cfg["model"]):      # a user's module on the stored arrays, as `sample` took them
            return module_target(build_user_model(cfg["model"]), x, y, device, dtype, chunk=256, name=cfg["model"])
        module = build_model(cfg["model"], **model_options(cfg["model"], cfg.get("width", 1.0), x))
        return module_target(module, prepare_images(x), y, device, dtype, chunk=256, name=cfg["model"])
    w = cfg["widths"]
    return mlp_target(MLPSpec.from_widths(w, cfg["activation"]), x, y, device, dtype)


def _from_chains(path: Path, args: argparse.Namespace, device: Any, dtype: Any):
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(path, args.run) as r:
        if r.committed_draws == 0:
            raise SpecError(f"{str(path)!r} has no committed draws yet; sample first.")
        chains = args.chain or [0]
        draws = args.draw or [r.committed_draws - 1]
        if max(chains) >= r.n_chains:
            raise SpecError(f"--chain {max(chains)} is out of range: {str(path)!r} has {r.n_chains} chains (0 to "
                            f"{r.n_chains - 1}).")
        if max(draws) >= r.committed_draws:
            raise SpecError(f"--draw {max(draws)} is out of range: {str(path)!r} has {r.committed_draws} committed "
                            f"draws (0 to {r.committed_draws - 1}).")
        theta = np.stack([r.read_block("theta", d, d + 1)[c, 0] for c in chains for d in draws]).astype(np.float64)
        labels = [f"chain {c} draw {d}" for c in chains for d in draws]
        cfg, x, y = r.config, r.extra("data/x"), r.extra("data/y")
    return chain_target(cfg, x, y, device, dtype), theta, labels


def _from_census(path: Path, args: argparse.Namespace, device: Any, dtype: Any):
    from mcmc_landscape.storage.store import ChainReader

    census = json.loads((path / "census.json").read_text())
    minima = census.get("minima", [])
    ids = args.minimum or [0]
    if not minima or max(ids) >= len(minima):
        raise SpecError(f"--minimum {max(ids)} is out of range: the census in {str(path)!r} has {len(minima)} "
                        f"minima{'' if not minima else f' (0 to {len(minima) - 1})'}.")
    file = Path(census["settings"]["file"])
    if not file.is_file():
        raise SpecError(f"the census's chain file {str(file)!r} is gone; its data are needed for the loss.")
    with ChainReader(file, census["settings"].get("run")) as r:
        cfg, x, y = r.config, r.extra("data/x"), r.extra("data/y")
    theta = np.array([minima[i]["theta"] for i in ids], dtype=np.float64)
    return chain_target(cfg, x, y, device, dtype), theta, [f"minimum {i}" for i in ids]


def _from_string(path: Path, args: argparse.Namespace, device: Any, dtype: Any):
    import torch

    from dss.store import load_string
    from dss.tasks import MLPTask, make_task
    from mcmc_landscape.targets import Target, module_layers

    state, config, _ = load_string(path)
    ids = args.bead if args.bead is not None else list(state.order)
    if max(ids) >= len(state.beads):
        raise SpecError(f"--bead {max(ids)} is out of range: {str(path)!r} has {len(state.beads)} beads (0 to "
                        f"{len(state.beads) - 1}).")
    extra = {"data_dir": args.data_dir} if args.data_dir and config["task"]["task"] in ("mnist", "cifar10", "ptb") \
        else {}
    task = make_task(config["task"]["task"], device=device, **config["task_options"], **extra)
    if isinstance(task, MLPTask):
        layers = [(f"layer{i + 1}", w, b + (o if task.bias else 0)) for i, (w, b, _, o) in enumerate(task.offsets())]
        tensors = [t for w, b, i, o in task.offsets()
                   for t in ((w, b, (i, o), "weight_in_out"), (b, b + (o if task.bias else 0), (o,), "bias"))]
        spec = None
        if task.bias and task.loss == "energy":
            from mcmc_landscape.models.nets import MLPSpec

            spec = MLPSpec.from_widths(task.widths, task.activation)
        dtype = task.dtype
    else:
        layers, tensors = module_layers(task.layout)
        spec, dtype = None, task.dtype
    target = Target(task.loss_train, layers, task.p, f"DSS task {task.describe()}; loss = the task's training loss",
                    tensors, spec, dtype, torch.device(task.device))
    theta = np.stack([state.beads[i] for i in ids]).astype(np.float64)
    return target, theta, [f"bead {i}" for i in ids]


def load_xy(data: str, n_train: int, data_dir: Any) -> tuple[np.ndarray, np.ndarray]:
    """Training examples: a real data set by name, or an .npz file with arrays ``x`` and ``y`` (read and checked by
    :func:`mcmc_landscape.user_model.load_npz`, uint8 images kept as such for a zoo convnet)."""
    from mcmc_landscape.runs.zoo_sampling import load_zoo_data
    from mcmc_landscape.user_model import load_npz

    if data.endswith(".npz"):
        ds = load_npz(data, keep_dtype=True)
        return ds.x[:n_train], ds.y[:n_train]
    return load_zoo_data(data, n_train, data_dir)


def module_point(module: Any, x: np.ndarray, y: np.ndarray, device: Any, dtype: Any, name: str):
    """(target, θ (1, p)) of a module whose weights are the point: the plug for any ``nn.Module``."""
    import torch

    from mcmc_landscape.models.zoo import prepare_images
    from mcmc_landscape.targets import module_target, module_theta

    xt = prepare_images(x) if x.dtype == np.uint8 and x.ndim in (3, 4) else torch.as_tensor(x)
    theta = module_theta(module)[None]
    return module_target(module, xt, y, device, dtype, chunk=256, name=name), theta


def model_and_data(args: argparse.Namespace) -> tuple[Any, np.ndarray, np.ndarray]:
    """(module, x, y) from ``--model`` (a zoo name or a user's factory) and ``--data``, each checked once."""
    from mcmc_landscape.models.zoo import build_model
    from mcmc_landscape.runs.zoo_sampling import model_options
    from mcmc_landscape.user_model import is_user_model, load_user_model

    if not args.model or not args.data:
        raise SpecError("a checkpoint or a model needs both --model (a zoo name or package.module:factory) and --data "
                        "(mnist, cifar10, or FILE.npz).")
    if is_user_model(args.model):
        if not args.data.endswith(".npz"):
            raise SpecError(f"--model {args.model!r} is your own model: give its data as --data FILE.npz (arrays x, "
                            f"y), not {args.data!r}.")
        module, ds = load_user_model(args.model, args.data)
        return module, ds.x[: args.n_train], ds.y[: args.n_train]
    x, y = load_xy(args.data, args.n_train, args.data_dir)
    module = build_model(args.model, **model_options(args.model, args.width, x)) if x.ndim >= 3 else \
        build_model(args.model)
    return module, x, y


def _from_checkpoint(path: Path, args: argparse.Namespace, device: Any, dtype: Any):
    import pickle

    import torch

    module, x, y = model_and_data(args)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        module.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
    except (RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SpecError(f"{str(path)!r} is not a state_dict of {args.model} ({first}).") from None
    target, theta = module_point(module, x, y, device, dtype, args.model)
    return target, theta, [f"checkpoint {path.name}"]


def _from_model(args: argparse.Namespace, device: Any, dtype: Any):
    """No source file: the weights the model's factory builds, seeded by ``--seed``."""
    import torch

    if not args.model:
        raise SpecError("give a SOURCE (chain file, census folder, DSS string or .pt checkpoint), or --model and "
                        "--data to look at a model as its factory builds it.")
    torch.manual_seed(getattr(args, "seed", 0))
    module, x, y = model_and_data(args)
    target, theta = module_point(module, x, y, device, dtype, args.model)
    return target, theta, [f"{args.model} as built (seed {getattr(args, 'seed', 0)})"]


def resolve(source: str | None, args: argparse.Namespace, device: Any, dtype: Any) -> tuple[Any, np.ndarray, list[str]]:
    """(target, θ (n, p), a label per row) from ``source`` and the source flags of ``args``."""
    if source is None:
        _refuse(args, "model", ("model", "data"))
        return _from_model(args, device, dtype)
    path = Path(source)
    kind = kind_of(path)
    allowed = {"chains": ("chain", "draw", "run"), "census": ("minimum",), "string": ("bead",),
               "checkpoint": ("model", "data")}[kind]
    _refuse(args, kind, allowed)
    return {"chains": _from_chains, "census": _from_census, "string": _from_string,
            "checkpoint": _from_checkpoint}[kind](path, args, device, dtype)
