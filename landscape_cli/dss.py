"""``landscape dss …``: Dynamic String Sampling from the command line .

    landscape dss connect --task quadratic --l0 0.01 --out runs/dss/quad.h5
    landscape dss sweep --task cubic --l0 0.168,0.158,0.05,0.01 --pairs 10 --out runs/dss/cubic
    landscape dss minima runs/theta0.h5 --l0 0.1,0.05,0.02 --count 24 --out runs/theta0-graph
    landscape dss sweep --task mnist --l0 0.04,0.01,0.007 --pairs 4 --device cuda --out runs/dss/mnist
    landscape dss sweep --resume runs/dss/mnist
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mcmc_landscape.errors import ResumeMismatch, SpecError, StoreError

from .cluster import add_cluster_arguments
from .common import levels, nonneg_float, nonneg_int, positive_float, positive_int, refuse_nonempty

log = logging.getLogger("landscape")

_SETTING_FLAGS = {  # DSSSettings field → (flag, type, help)
    "alpha": ("--alpha", float, "beads are trained to α·L0 (default 0.95)"),
    "tau": ("--tau", float, "a link passes when its maximum is ≤ τ·L0 (default 1: strict; the paper's code used 1.1)"),
    "max_depth": ("--max-depth", int, "recursion depth limit (default 10)"),
    "t_star": ("--t-star", str, "'peak': insert at the maximum of the interpolated loss (default); 'mid': at t = 0.5"),
    "lr": ("--lr", float, "learning rate of bead and endpoint training (default 0.05; 0.001 on mnist, cifar10, ptb)"),
    "optimizer": ("--optimizer", str, "adam (default), sgd (momentum 0.9) or rmsprop"),
    "schedule": ("--lr-schedule", str, "plateau (default: a bead's rate is halved when its level measure stalls), "
                                       "cosine (annealed over --max-steps) or constant"),
    "check_every": ("--check-every", int, "gradient steps between two evaluations of the level measure (default 10; "
                                          "on mnist, cifar10, ptb about held-out size / batch size)"),
    "max_steps": ("--max-steps", int, "gradient steps a bead may take to reach α·L0 (default 20000)"),
    "max_beads": ("--max-beads", int, "beads a string may hold (default 512)"),
    "zeta": ("--zeta", float, "constrained DSS: spring weight ζ (default 0)"),
    "kappa": ("--kappa", float, "constrained DSS: weight κ of the equidistant-hyperplane term (default 0)"),
}
_TASK_FLAGS = ("activation", "loss", "arch", "data", "angle", "box", "n_train", "n_eval", "width", "hidden", "layers",
               "vocab", "batch_size", "model")
REAL_TASKS = ("mnist", "cifar10", "ptb")
_ALLOWED_FLAGS = {"quadratic": ("activation", "loss"), "cubic": ("activation", "loss"), "permutation": ("activation",),
                  "classifier": ("activation", "arch", "data", "angle", "box"),
                  "mnist": ("n_train", "n_eval", "width", "batch_size"),
                  "cifar10": ("n_train", "n_eval", "width", "batch_size"),
                  "ptb": ("n_train", "n_eval", "hidden", "layers", "vocab", "batch_size"),
                  "user": ("model", "data", "batch_size")}
L0_HELP = ("the level L0, in the task's measure: held-out loss for quadratic/cubic/permutation (MAE or MSE) and "
           "classifier (U); test error as a fraction for mnist/cifar10 (0.04 = 4%%); validation perplexity for ptb "
           "(e.g. 300)")


def add_arguments(d: argparse.ArgumentParser) -> None:
    """The subcommands of ``landscape dss``: connect, sweep, minima."""
    dsub = d.add_subparsers(dest="dss_command", required=True, parser_class=type(d))

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", metavar="MODULE:FACTORY",
                       help="your own model: package.module:factory (or file.py:factory) returning an nn.Module, on "
                            "--data FILE.npz (arrays x, y; x_test, y_test for the level, else the training set); "
                            "implies --task user; level = held-out error")
        p.add_argument("--task", choices=["quadratic", "cubic", "permutation", "classifier", *REAL_TASKS, "user"],
                       help="quadratic/cubic: the paper's 1-4-4-1 regressions; permutation: appendix D's 2-3-2 relu "
                            "net; classifier: the sampling side's MLP energy; mnist/cifar10: the paper's convnets "
                            "(3.27M / 90k parameters), level = test error; ptb: Zaremba's 2-layer LSTM (4.65M), level "
                            "= validation perplexity; the real tasks train on minibatches (default quadratic)")
        p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                       help="where every tensor of the run lives: auto (CUDA when PyTorch sees one, default), cpu or "
                            "cuda")
        p.add_argument("--activation", choices=["relu", "tanh", "sigmoid"],
                       help="hidden activation (default sigmoid for regression, relu otherwise)")
        p.add_argument("--loss", choices=["mae", "mse"], help="regression loss (default mae, as the paper's code)")
        p.add_argument("--arch", help="classifier: hidden widths (default 2,2)")
        p.add_argument("--data", help="classifier: points10 or a CSV (default points10)")
        p.add_argument("--angle", type=float, help="classifier: rotate the data by this many degrees (default 0)")
        p.add_argument("--box", type=float, help="classifier: keep beads inside [-L, L]^p (default 10)")
        p.add_argument("--n-train", dest="n_train", type=positive_int,
                       help="mnist/cifar10: training images, a seeded subset (default all); ptb: training windows of "
                            "20 tokens (default all 46,479)")
        p.add_argument("--n-eval", dest="n_eval", type=positive_int,
                       help="mnist/cifar10: test images the error is measured on (default all 10,000); ptb: validation "
                            "windows the perplexity is measured on (default all 3,687)")
        p.add_argument("--width", type=positive_float,
                       help="mnist/cifar10: scale every channel and unit count of the convnet (default 1: the paper's)")
        p.add_argument("--hidden", type=positive_int, help="ptb: LSTM units per layer (default 200)")
        p.add_argument("--layers", type=positive_int, help="ptb: LSTM layers (default 2)")
        p.add_argument("--vocab", type=positive_int,
                       help="ptb: keep the most frequent words, the rest become <unk> (default 10000: all)")
        p.add_argument("--batch-size", dest="batch_size", type=positive_int,
                       help="mnist/cifar10/ptb: minibatch size of bead and endpoint training (default 128 images; 64 "
                            "windows)")
        p.add_argument("--data-dir", type=Path, help="mnist/cifar10/ptb: folder holding mnist/, cifar10/, ptb/ "
                                                     "(default $MCMC_LANDSCAPE_DATA, else ../shared/data)")
        p.add_argument("--variant", choices=["greedy", "constrained", "breadth-first"],
                       help="greedy (Algorithm 1, default), constrained (springs ζ, κ) or breadth-first (appendix A)")
        for name, (flag, kind, text) in _SETTING_FLAGS.items():
            conv = positive_int if kind is int else (str if kind is str else nonneg_float)
            p.add_argument(flag, dest=name, type=conv, help=text)
        p.add_argument("--seed", type=nonneg_int, help="seed of the models' random initialization (default 0)")
        p.add_argument("--endpoint-steps", type=positive_int, default=20000,
                       help="gradient steps to train each model to α·L0 before connecting (default 20000)")
        p.add_argument("--force", action="store_true", help="overwrite existing output")

    c = dsub.add_parser("connect", help="train two models below L0 and connect them (resumable)")
    common(c)
    c.add_argument("--l0", type=positive_float, help=L0_HELP + "; required for a new string")
    c.add_argument("--out", "-o", type=Path, help="string file to create (.h5)")
    c.add_argument("--resume", type=Path, metavar="FILE", help="continue the string stored in FILE")
    c.add_argument("--rounds", type=positive_int, default=40, help="breadth-first: rounds (default 40)")
    c.add_argument("--no-plots", action="store_true", help="skip the figures")
    c.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    c.add_argument("--baselines", action="store_true", help="also fit the Bézier curve and AutoNEB on the same pair")

    s = dsub.add_parser("sweep", help="pairs of models at several levels L0: length and beads against L0 (Figs 2-3)")
    common(s)
    s.add_argument("--l0", type=levels, help="comma-separated levels, e.g. 0.168,0.158,0.05,0.01; " + L0_HELP)
    s.add_argument("--pairs", type=positive_int, default=10, help="pairs of models per level (default 10)")
    s.add_argument("--no-warm-start", action="store_true",
                   help="fresh random models at every level (default: continue training the level above's models)")
    s.add_argument("--baselines", action="store_true", help="also fit the Bézier curve and AutoNEB on every pair")
    s.add_argument("--out", "-o", type=Path, help="output folder")
    s.add_argument("--resume", type=Path, metavar="FOLDER",
                   help="continue the sweep stored in FOLDER (after a kill or Ctrl-C), from its last saved depth")
    add_cluster_arguments(s)

    m = dsub.add_parser("minima", help="the level-set connectivity graph of good minima from a chain file")
    m.add_argument("file", type=Path, help="chain file written by `landscape sample`")
    m.add_argument("--l0", type=levels, required=True, help="comma-separated levels, highest first, e.g. 0.1,0.05")
    m.add_argument("--count", type=positive_int, default=24, help="minima to pick (default 24)")
    m.add_argument("--run", help="run inside the file (needed only if it holds several)")
    m.add_argument("--discard", type=nonneg_int, default=0, help="draws per chain to drop first")
    m.add_argument("--no-canonicalize", action="store_true",
                   help="farthest-point selection on raw θ (default: modulo hidden-unit symmetries)")
    m.add_argument("--symmetric", type=nonneg_int, default=3,
                   help="minima also connected to a symmetric copy of themselves (default 3)")
    m.add_argument("--max-depth", type=positive_int, help="DSS depth limit (default 10)")
    m.add_argument("--tau", type=float, help="a link passes when its maximum is ≤ τ·L0 (default 1)")
    m.add_argument("--seed", type=nonneg_int, default=0)
    m.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="auto (CUDA when PyTorch sees one, default), cpu or cuda")
    m.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    m.add_argument("--force", action="store_true", help="write into an --out folder that is not empty")
    add_cluster_arguments(m)


# -- shared helpers ------------------------------------------------------------------------------------------------------
def _task_options(args: argparse.Namespace) -> dict[str, Any]:
    """The task flags given, checked against the task they apply to (the data folder is not a task option: it is
    read from --data-dir or the environment each time, so a string can resume on another machine)."""
    if getattr(args, "model", None) is not None:
        if args.task not in (None, "user"):
            raise SpecError(f"--model gives your own model; drop --task {args.task} (or use --task user).")
        args.task = "user"
    if args.task == "user" and (getattr(args, "model", None) is None or getattr(args, "data", None) is None):
        raise SpecError("the user task needs --model package.module:factory and --data FILE.npz.")
    task = args.task or "quadratic"
    if getattr(args, "data_dir", None) is not None and task not in REAL_TASKS:
        raise SpecError(f"--data-dir applies to the real-data tasks ({', '.join(REAL_TASKS)}), not to {task}.")
    opts: dict[str, Any] = {}
    for key in _TASK_FLAGS:
        value = getattr(args, key, None)
        if value is None:
            continue
        if key not in _ALLOWED_FLAGS[task]:
            allowed = ", ".join("--" + k.replace("_", "-") for k in _ALLOWED_FLAGS[task])
            raise SpecError(f"--{key.replace('_', '-')} does not apply to the {task} task (it takes {allowed}).")
        opts[key] = value
    return opts


def _make_task(name: str, options: dict[str, Any], args: argparse.Namespace) -> Any:
    """The task with its data on ``--device`` (not stored: a string may resume on another device)."""
    from dss.tasks import make_task

    extra = {"data_dir": args.data_dir} if name in REAL_TASKS and getattr(args, "data_dir", None) else {}
    return make_task(name, device=getattr(args, "device", None) or "auto", **options, **extra)


def _explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: getattr(args, k) for k in _SETTING_FLAGS if getattr(args, k, None) is not None}
    if out.get("t_star", "peak") not in ("peak", "mid"):
        raise SpecError(f"--t-star must be 'peak' or 'mid', got {out['t_star']!r}.")
    if out.get("optimizer", "adam") not in ("adam", "sgd", "rmsprop"):
        raise SpecError(f"--optimizer must be adam, sgd or rmsprop, got {out['optimizer']!r}.")
    if out.get("schedule", "plateau") not in ("plateau", "cosine", "constant"):
        raise SpecError(f"--lr-schedule must be plateau, cosine or constant, got {out['schedule']!r}.")
    return out


def _settings(args: argparse.Namespace, l0: float, task: Any = None) -> Any:
    from dss.string import DSSSettings

    values = _explicit_settings(args)
    if (args.task or "quadratic") in REAL_TASKS:
        values.setdefault("lr", 0.001)  # minibatch Adam, as the paper's models are trained
        if getattr(task, "check_every", None):
            values.setdefault("check_every", task.check_every)
    if (args.variant or "greedy") == "constrained" and not (values.get("zeta") or values.get("kappa")):
        values.setdefault("zeta", 0.01)
        values.setdefault("kappa", 0.01)
    if (args.variant or "greedy") != "constrained" and (values.get("zeta") or values.get("kappa")):
        raise SpecError("--zeta and --kappa belong to the constrained variant; add --variant constrained.")
    return DSSSettings(l0=l0, **values)


def _summary(outcome: dict[str, Any]) -> str:
    verdict = "connected" if outcome["connected"] else f"NOT connected ({outcome['reason']})"
    lines = [f"{verdict} at L0 = {outcome['l0']:g} (links ≤ τ·L0 = {outcome['limit']:g}, {outcome['variant']})",
             f"beads {outcome['n_beads']} (incl. both ends), normalized geodesic length "
             f"{outcome['normalized_length']:.4f} (length {outcome['length']:.4g} over straight distance "
             f"{outcome['straight_distance']:.4g}), max interpolated loss {outcome['max_interpolated_loss']:.4g}",
             f"depth {outcome['depth']}, {outcome['rounds']} rounds, {outcome['grad_steps']} gradient steps, "
             f"{outcome['wall_s']:.2f} s"]
    for f in outcome["failed_links"][:5]:
        lines.append(f"failed link {f['left']}→{f['right']} ({f['reason']}): max {f['max_loss']:.4g} at t = "
                     f"{f['t_max']:.3f}; maxima over its splits (newest first) "
                     + ", ".join(f"{x:.3g}" for x in f["lineage_maxima"][:6]))
    return "\n".join(lines)


# -- connect -------------------------------------------------------------------------------------------------------------
def cmd_connect(args: argparse.Namespace) -> int:
    """One writer per string file: hold its lock from before it is read until the command ends."""
    from dss.store import string_lock

    target = args.resume if args.resume is not None else args.out
    if target is None:
        return _connect(args)
    with string_lock(target):
        return _connect(args)


def _connect(args: argparse.Namespace) -> int:
    import torch

    from dss.store import load_string, save_string
    from dss.string import DSSSettings, connect, start_string
    from dss.sweep import train_models
    from mcmc_landscape.runs.runner import Interrupted

    if args.resume is not None:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise SpecError("give either --out (a new string) or --resume (an existing one), not both.")
        state, config, _ = load_string(args.resume)
        _check_resume(args, config)
        task = _make_task(config["task"]["task"], config["task_options"], args)
        if task.config() != config["task"]:
            raise ResumeMismatch(f"the task rebuilt from {str(args.resume)!r} differs from the stored one (the data "
                                 "changed?); start a new string with --out.")
        settings = DSSSettings(**config["settings"])
        out = Path(args.resume)
        if state.finished:
            log.info("the string in %s is finished; nothing to resume.", out)
    else:
        if args.out is None:
            raise SpecError("say where to write the string with --out FILE (or continue one with --resume FILE).")
        if args.l0 is None:
            raise SpecError("a new string needs its level: add --l0, e.g. --l0 0.01.")
        out = Path(args.out)
        if out.exists() and not args.force:
            raise StoreError(f"{str(out)!r} exists; pass --force to overwrite it or --resume to continue it.")
        options = _task_options(args)
        task = _make_task(args.task or "quadratic", options, args)
        settings = _settings(args, args.l0, task)
        seed = args.seed or 0
        models, reached, steps, redraws = train_models(task, 2, settings.alpha * settings.l0,
                                                       torch.Generator().manual_seed(seed), settings,
                                                       args.endpoint_steps, retries=3, seed=seed)
        if not bool(reached.all()):
            raise SpecError(f"could not train two {task.name} models below α·L0 = {settings.alpha * settings.l0:.4g} "
                            f"in {args.endpoint_steps} steps (4 tries); raise --l0 or --endpoint-steps.")
        host = models.cpu().numpy()
        state = start_string(task, host[0], host[1], settings)
        config = {"task": task.config(), "task_options": options, "settings": asdict(settings),
                  "variant": args.variant or settings.variant, "seed": seed,
                  "endpoints": {"steps": steps, "redrawn": redraws, "max_steps": args.endpoint_steps}}
        save_string(out, state, config)
    log.info("%s", task.describe())

    def save(st: Any) -> None:
        save_string(out, st, config, st.outcome(settings))

    try:
        if config["variant"] == "breadth-first":
            from dss.variants import connect_breadth_first

            config["rounds"] = config.get("rounds", args.rounds)
            state = connect_breadth_first(task, state.beads[0], state.beads[1], settings,
                                          rounds=config["rounds"], on_round=save, state=state)
        elif not state.finished:
            state = connect(task, settings=settings, state=state, on_round=save)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; the string so far is saved in {out}: continue it with "
                          f"`landscape dss connect --resume {out}`.") from None
    outcome = state.outcome(settings)
    from dss.baselines import auto_neb, bezier_curve, straight_line

    a, b = state.beads[0], state.beads[1]
    outcome["straight_line"] = straight_line(task, a, b, outcome["limit"]).to_dict()
    if args.baselines:
        outcome["bezier"] = bezier_curve(task, a, b, outcome["limit"], seed=config["seed"]).to_dict()
        outcome["autoneb"] = auto_neb(task, a, b, outcome["limit"]).to_dict()
    save_string(out, state, config, outcome)
    print(_summary(outcome))
    sl = outcome["straight_line"]
    print(f"straight line: max loss {sl['max_loss']:.4g} → {'passes' if sl['found'] else 'fails'} at τ·L0")
    for key, name in (("bezier", "Bézier curve"), ("autoneb", "AutoNEB")):
        if key in outcome:
            bz = outcome[key]
            print(f"{name}: {'found' if bz['found'] else 'not found'}, max loss {bz['max_loss']:.4g}, "
                  f"{bz['grad_evals']} gradient evaluations, normalized length {bz['normalized_length']:.4f}")
    if not args.no_plots:
        from dss.plots import plot_string

        folder = out.with_name(out.stem + "_figures")
        files = plot_string(state, outcome, folder, gif=not args.no_gif)
        print(f"figures: {folder} ({len(files)} files); string: {out}")
    return 0


def _check_resume(args: argparse.Namespace, config: dict[str, Any]) -> None:
    """Flags given with --resume must agree with the stored run; anything else is a mismatch."""
    stored = config["settings"]
    for key, value in _explicit_settings(args).items():
        if stored.get(key) != value:
            raise ResumeMismatch(f"--{key.replace('_', '-')} {value} differs from the stored {stored.get(key)}; drop "
                                 "it to resume, or start a new string with --out.")
    if args.l0 is not None and args.l0 != stored["l0"]:
        raise ResumeMismatch(f"--l0 {args.l0:g} differs from the stored L0 = {stored['l0']:g}; drop it to resume.")
    if args.task is not None and args.task != config["task"]["task"]:
        raise ResumeMismatch(f"--task {args.task} differs from the stored task {config['task']['task']!r}.")
    if args.variant is not None and args.variant != config["variant"]:
        raise ResumeMismatch(f"--variant {args.variant} differs from the stored {config['variant']!r}.")
    for key in _TASK_FLAGS:
        value = getattr(args, key, None)
        if value is not None and config["task_options"].get(key) != value:
            raise ResumeMismatch(f"--{key} {value} differs from the stored task's {config['task_options'].get(key)}.")


# -- sweep ---------------------------------------------------------------------------------------------------------------
SWEEP_CONFIG = "sweep_config.json"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (temporary file, fsync, rename)."""
    import json
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data, indent=1))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _resume_sweep(args: argparse.Namespace) -> tuple[Any, Any, Any, bool, tuple[str, dict[str, Any]]]:
    """The task and settings of the sweep stored in ``--resume FOLDER``, checked against the flags given; last, the
    task's name and options (its recipe for tasks on a cluster)."""
    import json

    from dss.string import DSSSettings
    from dss.sweep import SweepSettings

    folder = Path(args.resume)
    if args.out is not None and Path(args.out) != folder:
        raise SpecError("give either --out (a new sweep) or --resume (an existing one), not both.")
    path = folder / SWEEP_CONFIG
    if not path.is_file():
        raise StoreError(f"{str(folder)!r} holds no sweep ({SWEEP_CONFIG} is missing); start one with --out.")
    try:
        config = json.loads(path.read_text())
        settings = DSSSettings(**config["settings"])
        sweep = SweepSettings(**{**config["sweep"], "levels": tuple(config["sweep"]["levels"])})
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{str(path)!r} is damaged ({exc}); start the sweep again with --out and --force.") from None
    if args.l0 is not None and sorted(args.l0) != sorted(sweep.levels):
        raise ResumeMismatch(f"--l0 {','.join(f'{x:g}' for x in args.l0)} differs from the stored levels "
                             f"{','.join(f'{x:g}' for x in sweep.levels)}; drop it to resume.")
    args.l0 = None
    _check_resume(args, config)
    task = _make_task(config["task"]["task"], config["task_options"], args)
    if task.config() != config["task"]:
        raise ResumeMismatch(f"the task rebuilt from {str(folder)!r} differs from the stored one (the data changed?); "
                             "start a new sweep with --out.")
    return task, settings, sweep, bool(config.get("baselines")), (config["task"]["task"], config["task_options"])


def cmd_sweep(args: argparse.Namespace) -> int:
    from dss.plots import plot_sweep
    from dss.sweep import SweepSettings, run_sweep

    if args.variant == "breadth-first":
        raise SpecError("sweeps run the greedy or constrained variant; use `dss connect --variant breadth-first`.")
    if args.resume is not None:
        task, settings, sweep, baselines, (name, options) = _resume_sweep(args)
        args.out = Path(args.resume)
    else:
        if args.out is None:
            raise SpecError("say where to write the sweep with --out FOLDER (or continue one with --resume FOLDER).")
        if args.l0 is None:
            raise SpecError("a sweep needs its levels: add --l0, e.g. --l0 0.168,0.158,0.05.")
        refuse_nonempty(args.out, args.force, "pass --force to write into it")
        name, options = args.task or "quadratic", _task_options(args)
        task = _make_task(name, options, args)
        settings = _settings(args, 1.0, task)
        sweep = SweepSettings(tuple(args.l0), args.pairs, args.seed or 0, not args.no_warm_start, args.endpoint_steps)
        baselines = args.baselines
        _write_json(args.out / SWEEP_CONFIG, {"task": task.config(), "task_options": options, "settings":
                                              asdict(settings), "variant": args.variant or settings.variant,
                                              "sweep": asdict(sweep), "baselines": baselines})
    log.info("%s", task.describe())
    try:
        if args.cluster is not None:  # levels and pairs as tasks writing the same files; committed ones read back
            from dss.sweep_tasks import run_sweep_tasks

            from .cluster import task_runner

            extra = {"data_dir": str(args.data_dir)} if name in REAL_TASKS and getattr(args, "data_dir", None) else {}
            recipe = {"name": name, "options": {**options, **extra, "device": getattr(args, "device", None) or "auto"}}
            with task_runner(args) as run_tasks:
                result = run_sweep_tasks(recipe, sweep, settings, args.out, run_tasks, baselines=baselines,
                                         gpu=getattr(args, "device", None) == "cuda", log=log)
        else:
            result = run_sweep(task, sweep, settings, args.out, baselines=baselines, log=log,
                               resume=args.resume is not None)
    except KeyboardInterrupt:
        from mcmc_landscape.runs.runner import Interrupted

        raise Interrupted(f"interrupted; the sweep so far is saved in {args.out}: continue it with "
                          f"`landscape dss sweep --resume {args.out}`.") from None
    args.baselines = baselines
    fig = plot_sweep(result, args.out / "sweep.png")
    print(f"{task.describe()}; {result['warm_start']}")
    print(f"{'L0':>8} {'connected':>9} {'straight':>8} {'length mean ± sd':>18} {'beads mean ± sd':>16}"
          f"{'  Bézier found  AutoNEB found' if args.baselines else ''}")
    for r in result["levels"]:
        extra = (f"  {r['bezier_found']:>6}/{r['trained_pairs']:<6} {r['autoneb_found']:>6}/{r['trained_pairs']}"
                 if "bezier_found" in r else "")
        print(f"{r['l0']:>8g} {r['connected']:>4}/{r['trained_pairs']:<4} {r['straight_found']:>4}/{r['trained_pairs']:<3}"
              f" {r['length_mean']:>8.3f} ± {r['length_sd']:<7.3f} {r['beads_mean']:>7.1f} ± {r['beads_sd']:<6.1f}"
              f"{extra}")
    print(f"done in {result['wall_s']:.1f} s; table {args.out / 'sweep.csv'}, figure {fig}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.dss_command == "connect":
        return cmd_connect(args)
    if args.dss_command == "sweep":
        return cmd_sweep(args)
    from .minima import cmd_minima

    return cmd_minima(args)

