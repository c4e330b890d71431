"""``dss sweep`` as independent tasks, for Dask workers (or one after another here): same files as :func:`run_sweep`.

Each task is a pure function of plain data (the task's recipe, the settings, a level and a pair) that writes its own
file and returns a small row: a level's training writes ``models/l0_<L0>.npz`` (the models, which reached α·L0, and
the generator state after it, so the next level continues the single-machine run's random stream); a pair's
connection writes ``strings/l0_<L0>_pair_<k>.h5`` exactly as the single-machine sweep does. A file already there
with the same settings is committed work and is read back, never recomputed, so a restart (``--resume``) or a task
rerun after its worker died costs only what was not finished. The next level trains while this level's pairs connect.
Every string is grown on its own (``connect_many`` of one), which ends as it would in the lockstep batch.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .string import CONVENTIONS, DSSSettings, connect_many, start_string
from .sweep import (
    SweepSettings,
    pair_row,
    save_level,
    string_config,
    string_path,
    summarize,
    train_models,
    write_table,
)


def build_task(recipe: dict[str, Any]):
    """The task from its recipe ``{"name": ..., "options": {...}}`` (built afresh on each worker)."""
    from .tasks import make_task

    return make_task(recipe["name"], **recipe.get("options", {}))


def models_path(out: Path | str, level: float) -> Path:
    return Path(out) / "models" / f"l0_{level:g}.npz"


def _settings(sweep_d: dict[str, Any], dss_d: dict[str, Any], level: float) -> tuple[SweepSettings, DSSSettings]:
    sweep = SweepSettings(**{**sweep_d, "levels": tuple(sweep_d["levels"])})
    return sweep, replace(DSSSettings(**dss_d), l0=level)


def sweep_task(recipe: dict[str, Any], sweep_d: dict[str, Any], dss_d: dict[str, Any], out: str, baselines: bool,
               job: tuple[Any, ...]) -> dict[str, Any]:
    """One job: ``("train", level, level_above or None)`` or ``("pair", level, k)``."""
    if job[0] == "train":
        return train_level(recipe, sweep_d, dss_d, out, job[1], job[2])
    return connect_pair(recipe, sweep_d, dss_d, out, baselines, job[1], job[2])


def train_level(recipe: dict[str, Any], sweep_d: dict[str, Any], dss_d: dict[str, Any], out: str, level: float,
                above: float | None) -> dict[str, Any]:
    """Train the level's 2·pairs models (from the level above's when warm-starting) into its models file."""
    path = models_path(out, level)
    if path.exists():
        return {"kind": "train", "level": level, "reused": True}
    t0 = time.perf_counter()
    task = build_task(recipe)
    sweep, settings = _settings(sweep_d, dss_d, level)
    generator = torch.Generator().manual_seed(sweep.seed)
    start = None
    if above is not None:
        prev = np.load(models_path(out, above))
        generator.set_state(torch.as_tensor(prev["generator"]))
        if sweep.warm_start:
            start = torch.as_tensor(prev["models"])
    index = sorted(sweep.levels, reverse=True).index(level)
    models, reached, steps, redraws = train_models(task, 2 * sweep.pairs, settings.alpha * level, generator,
                                                   settings, sweep.endpoint_steps, sweep.retries, start=start,
                                                   seed=sweep.seed * 1_000_003 + 10_007 * index)  # as run_sweep
    save_level(path, models, reached, steps, redraws, time.perf_counter() - t0, generator)
    return {"kind": "train", "level": level, "reused": False, "redraws": redraws, "seconds": time.perf_counter() - t0}


def connect_pair(recipe: dict[str, Any], sweep_d: dict[str, Any], dss_d: dict[str, Any], out: str, baselines: bool,
                 level: float, k: int) -> dict[str, Any]:
    """Connect pair ``k`` of ``level`` and save its string; a finished string with the same settings is read back."""
    from .store import load_string, save_string

    task = build_task(recipe)
    sweep, settings = _settings(sweep_d, dss_d, level)
    path = string_path(out, level, k)
    if path.exists():
        st, config, outcome = load_string(path)
        same = json.dumps(config, sort_keys=True, default=float) == json.dumps(
            string_config(task, settings, k, sweep), sort_keys=True, default=float)
        if same and st.finished and outcome:
            return {"kind": "pair", "reused": True, "row": {**outcome, **_failed_links(st, settings)}}
    with np.load(models_path(out, level)) as f:
        models, steps = f["models"], int(f["steps"])
    a, b = models[2 * k], models[2 * k + 1]
    st = start_string(task, a, b, settings)
    connect_many(task, [st], settings)
    row = pair_row(task, level, k, st, a, b, settings, sweep, baselines, None)
    row["endpoint_steps"] = steps  # as the single-machine sweep's row
    save_string(path, st, string_config(task, settings, k, sweep), {kk: v for kk, v in row.items()
                                                                      if kk != "failed_links"})
    return {"kind": "pair", "reused": False, "row": row}


def _failed_links(st: Any, settings: DSSSettings) -> dict[str, Any]:
    outcome = st.outcome(settings)
    return {"failed_links": outcome["failed_links"]} if "failed_links" in outcome else {}


def run_sweep_tasks(recipe: dict[str, Any], sweep: SweepSettings, dss: DSSSettings, out: Path, run_tasks: Any,
                    baselines: bool = False, gpu: bool = False, log: Any = None) -> dict[str, Any]:
    """The sweep through ``run_tasks(fn, items, gpu=)`` (see ``landscape_cli.cluster``); writes what run_sweep writes."""
    t_start = time.perf_counter()
    task = build_task(recipe)
    levels = sorted(sweep.levels, reverse=True)
    sweep_d, dss_d = asdict(sweep), asdict(dss)

    def item(job: tuple[Any, ...]) -> tuple[Any, ...]:
        return (recipe, sweep_d, dss_d, str(out), baselines, job)

    rows: list[dict[str, Any]] = []
    list(run_tasks(sweep_task, [item(("train", levels[0], None))], gpu=gpu))
    for i, level in enumerate(levels):
        reached = np.load(models_path(out, level))["reached"]
        pairs = [k for k in range(sweep.pairs) if reached[2 * k] and reached[2 * k + 1]]
        jobs = [item(("pair", level, k)) for k in pairs]
        if i + 1 < len(levels):  # the next level trains while this one's pairs connect
            jobs.append(item(("train", levels[i + 1], level)))
        reused = 0
        for result in run_tasks(sweep_task, jobs, gpu=gpu):
            if result["kind"] == "pair":
                rows.append(result["row"])
                reused += result["reused"]
        if log is not None:
            done = [r for r in rows if r["l0"] == level]
            log.info("L0 = %g: %d of %d pairs connected (%d read back from committed strings)", level,
                     sum(r["connected"] for r in done), sweep.pairs, reused)
    rows.sort(key=lambda r: (-r["l0"], r["pair"]))
    result = {"task": task.config(), "description": task.describe(), "settings": dss_d, "sweep": sweep_d,
              "warm_start": ("each level's models are the level above's trained further down; strings found afresh"
                             if sweep.warm_start else "fresh random models at every level"),
              "conventions": CONVENTIONS, "levels": summarize(rows, levels, sweep.pairs), "pairs": rows,
              "wall_s": time.perf_counter() - t_start}
    write_table(result, Path(out))
    return result
