"""Sweeps over the level L0: train pairs of independent models, connect them, tabulate length and beads (paper Figs 2-3).

Levels run from the highest L0 down. Warm start (the default, said in every output): the models of a level are the
models of the level above trained further down, so each pair is followed as it descends; the strings themselves are
found afresh at each level. All models of a level are trained together in one batch, and all strings of a level grow
in lockstep (one batched scan and one batch of beads per depth). A model that does not reach α·L0 within its step
budget is replaced by a fresh random one (up to ``retries`` times); pairs still missing are reported, not hidden.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mcmc_landscape.errors import SpecError

from .device import as_beads, task_device
from .optim import train_to
from .store import load_string, save_string
from .string import CONVENTIONS, DSSSettings, StringState, connect_many, start_string


@dataclass
class SweepSettings:
    levels: tuple[float, ...]
    pairs: int = 10
    seed: int = 0
    warm_start: bool = True
    endpoint_steps: int = 20000
    retries: int = 3


def train_models(task, n: int, target: float, generator: torch.Generator, dss: DSSSettings, max_steps: int,
                 retries: int, start: torch.Tensor | None = None, seed: int = 0
                 ) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """``n`` models with held-out measure ≤ ``target``, trained together on the task's device; ones that miss are
    redrawn (``seed`` draws the minibatches of each try).

    Returns (models, reached mask, gradient steps, redraws).
    """
    theta = task.init(n, generator) if start is None else as_beads(task, start)
    res = train_to(task, theta, target, max_steps, dss.lr, dss.optimizer, dss.check_every, schedule=dss.schedule,
                   seed=seed)
    theta, reached, steps, redraws = res.theta, res.reached.clone(), int(res.steps.sum()), 0
    for attempt in range(retries):
        miss = torch.nonzero(~reached).flatten()
        if not miss.numel():
            break
        redraws += int(miss.numel())
        again = train_to(task, task.init(int(miss.numel()), generator), target, max_steps, dss.lr, dss.optimizer,
                         dss.check_every, schedule=dss.schedule, seed=seed + attempt + 1)
        theta[miss], reached[miss] = again.theta, again.reached
        steps += int(again.steps.sum())
    return theta, reached, steps, redraws


def _level_file(out: Path, level: float) -> Path:
    return Path(out) / "models" / f"l0_{level:g}.npz"


def _string_file(out: Path, level: float, pair: int) -> Path:
    return string_path(out, level, pair)


def save_level(path: Path, models: torch.Tensor, reached: torch.Tensor, steps: int, redraws: int, train_s: float,
                generator: torch.Generator) -> None:
    """A level's trained models and the generator's state after them, atomically (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
    with open(tmp, "wb") as fh:
        np.savez(fh, models=models.cpu().numpy(), reached=reached.cpu().numpy(), steps=steps, redraws=redraws,
                 train_s=train_s, generator=generator.get_state().numpy())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _load_level(path: Path, task, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int, int, float]:
    with np.load(path) as f:
        generator.set_state(torch.from_numpy(f["generator"].copy()))  # the random stream of the next level
        return (as_beads(task, f["models"]), torch.from_numpy(f["reached"]).to(task_device(task)), int(f["steps"]),
                int(f["redraws"]), float(f["train_s"]))


def _round_saver(out: Path | None, level: float, pairs: list[int], configs: dict[int, dict[str, Any]],
                 settings: DSSSettings, committed: set[int] = frozenset()) -> Any:
    """The callback that saves every string of a level after every depth (atomic writes), or None without ``out``;
    strings already ``committed`` finished (a resume) are left as they are."""
    if out is None:
        return None

    def save(states: list[StringState]) -> None:
        for k, st in zip(pairs, states, strict=True):
            if k in committed:
                continue
            save_string(_string_file(out, level, k), st, configs[k], st.outcome(settings))

    return save


def run_sweep(task, sweep: SweepSettings, dss: DSSSettings, out: Path | None = None, baselines: bool = False,
              log: Any = None, resume: bool = False) -> dict[str, Any]:
    """Run the sweep; with ``out``, save every level's models (``models/``), every string after every depth
    (``strings/``) and the table (``sweep.json``, ``sweep.csv``). With ``resume``, what ``out`` holds is taken up
    again: a level whose models are stored is not retrained, a stored string continues from its last saved depth,
    and the result is the one an uninterrupted sweep gives."""

    generator = torch.Generator().manual_seed(sweep.seed)
    levels = sorted(sweep.levels, reverse=True)
    rows: list[dict[str, Any]] = []
    models = None
    t_start = time.perf_counter()
    for index, level in enumerate(levels):
        settings = replace(dss, l0=level)
        stored = _level_file(out, level) if out is not None else None
        if resume and stored is not None and stored.is_file():
            models, reached, steps, redraws, train_s = _load_level(stored, task, generator)
        else:
            t0 = time.perf_counter()
            models, reached, steps, redraws = train_models(
                task, 2 * sweep.pairs, settings.alpha * level, generator, settings, sweep.endpoint_steps,
                sweep.retries, start=models if (sweep.warm_start and models is not None) else None,
                seed=sweep.seed * 1_000_003 + 10_007 * index)
            train_s = time.perf_counter() - t0
            if stored is not None:
                save_level(stored, models, reached, steps, redraws, train_s, generator)
        host = models.cpu().numpy()
        pairs = [k for k in range(sweep.pairs) if reached[2 * k] and reached[2 * k + 1]]
        if not pairs:
            raise SpecError(f"no pair of {task.name} models reached α·L0 = {settings.alpha * level:.4g} within "
                            f"{sweep.endpoint_steps} steps ({sweep.retries + 1} tries); raise the level or "
                            "--endpoint-steps (the levels above are saved).")
        configs = {k: string_config(task, settings, k, sweep) for k in pairs}
        states: list[StringState] = []
        done_rows: dict[int, dict[str, Any]] = {}  # finished strings with their rows: committed, not redone
        for k in pairs:
            path = _string_file(out, level, k) if out is not None else None
            if resume and path is not None and path.is_file():
                st, _, outcome = load_string(path)
                if st.finished and outcome and "straight_found" in outcome:
                    failed = st.outcome(settings).get("failed_links")
                    done_rows[k] = {**outcome, **({"failed_links": failed} if failed is not None else {})}
                states.append(st)
            else:
                states.append(start_string(task, host[2 * k], host[2 * k + 1], settings))

        t1 = time.perf_counter()
        connect_many(task, states, settings, _round_saver(out, level, pairs, configs, settings, set(done_rows)))
        connect_s = time.perf_counter() - t1
        for k, st in zip(pairs, states, strict=True):
            if k in done_rows:
                rows.append(done_rows[k])
                continue
            row = pair_row(task, level, k, st, host[2 * k], host[2 * k + 1], settings, sweep, baselines, None)
            row.update(endpoint_steps=steps, level_train_s=train_s, level_connect_s=connect_s)
            rows.append(row)
            if out is not None:
                save_string(_string_file(out, level, k), st, configs[k],
                            {kk: v for kk, v in row.items() if kk != "failed_links"})
        if log is not None:
            done = [r for r in rows if r["l0"] == level]
            log.info("L0 = %g: %d of %d pairs connected; training %.1f s (%d redrawn), strings %.1f s", level,
                     sum(r["connected"] for r in done), sweep.pairs, train_s, redraws, connect_s)
    table = summarize(rows, levels, sweep.pairs)
    result = {"task": task.config(), "description": task.describe(), "settings": asdict(dss), "sweep": asdict(sweep),
              "warm_start": ("each level's models are the level above's trained further down; strings found afresh"
                             if sweep.warm_start else "fresh random models at every level"),
              "conventions": CONVENTIONS, "levels": table, "pairs": rows,
              "wall_s": time.perf_counter() - t_start}
    if out is not None:
        write_table(result, Path(out))
    return result


def pair_row(task, level: float, k: int, st: StringState, a: np.ndarray, b: np.ndarray, settings: DSSSettings,
             sweep: SweepSettings, baselines: bool, out: Path | None) -> dict[str, Any]:
    """The table row of pair ``k`` at ``level`` (its string, the straight line, optional baselines); saves the string."""
    from .baselines import auto_neb, bezier_curve, straight_line

    row = {"l0": level, "pair": k, **st.outcome(settings)}
    row.pop("conventions")
    limit = settings.tau * level
    row["straight_found"] = straight_line(task, a, b, limit).found
    if baselines:
        bz = bezier_curve(task, a, b, limit, seed=sweep.seed + k)
        row.update(bezier_found=bz.found, bezier_grad_evals=bz.grad_evals, bezier_max_loss=bz.max_loss,
                   bezier_normalized_length=bz.normalized_length)
        neb = auto_neb(task, a, b, limit)
        row.update(autoneb_found=neb.found, autoneb_grad_evals=neb.grad_evals, autoneb_max_loss=neb.max_loss,
                   autoneb_normalized_length=neb.normalized_length)
    if out is not None:
        save_string(string_path(out, level, k), st, string_config(task, settings, k, sweep),
                    {kk: v for kk, v in row.items() if kk != "failed_links"})
    return row


def string_path(out: Path | str, level: float, k: int) -> Path:
    return Path(out) / "strings" / f"l0_{level:g}_pair_{k:02d}.h5"


def string_config(task, settings: DSSSettings, k: int, sweep: SweepSettings) -> dict[str, Any]:
    return {"task": task.config(), "settings": asdict(settings), "pair": k, "sweep": asdict(sweep)}


def summarize(rows: list[dict[str, Any]], levels: list[float], n_pairs: int) -> list[dict[str, Any]]:
    """Per level: mean and standard deviation of normalized length and beads over connected pairs, and counts."""
    table = []
    for level in levels:
        done = [r for r in rows if r["l0"] == level]
        ok = [r for r in done if r["connected"]]
        length = np.array([r["normalized_length"] for r in ok])
        beads = np.array([r["n_beads"] for r in ok], dtype=float)
        entry = {"l0": level, "pairs": n_pairs, "trained_pairs": len(done), "connected": len(ok),
                 "straight_found": sum(bool(r["straight_found"]) for r in done),
                 "length_mean": float(length.mean()) if len(ok) else float("nan"),
                 "length_sd": float(length.std(ddof=1)) if len(ok) > 1 else float("nan"),
                 "beads_mean": float(beads.mean()) if len(ok) else float("nan"),
                 "beads_sd": float(beads.std(ddof=1)) if len(ok) > 1 else float("nan"),
                 "grad_steps_mean": float(np.mean([r["grad_steps"] for r in done])) if done else float("nan"),
                 "endpoint_steps": int(done[0].get("endpoint_steps", 0)) if done else 0,
                 "seconds": float(done[0].get("level_train_s", 0) + done[0].get("level_connect_s", 0)) if done
                 else float("nan"),
                 "failures": {reason: sum(r["reason"] == reason for r in done)
                              for reason in sorted({r["reason"] for r in done if not r["connected"]})}}
        if done and "bezier_found" in done[0]:
            entry["bezier_found"] = sum(bool(r["bezier_found"]) for r in done)
            entry["bezier_grad_evals_mean"] = float(np.mean([r["bezier_grad_evals"] for r in done]))
            entry["autoneb_found"] = sum(bool(r["autoneb_found"]) for r in done)
            entry["autoneb_grad_evals_mean"] = float(np.mean([r["autoneb_grad_evals"] for r in done]))
        table.append(entry)
    return table


def write_table(result: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=1, default=float))
    cols = ["l0", "pairs", "trained_pairs", "connected", "straight_found", "length_mean", "length_sd", "beads_mean",
            "beads_sd", "grad_steps_mean"]
    lines = [",".join(cols)] + [",".join(f"{row[c]:.6g}" if isinstance(row[c], float) else str(row[c]) for c in cols)
                                for row in result["levels"]]
    (out / "sweep.csv").write_text("\n".join(lines) + "\n")
    return [out / "sweep.json", out / "sweep.csv"]
