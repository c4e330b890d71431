"""Past one machine: sampling throughput on 1 and 2 local Dask workers, and the Dask path's overhead at one worker.

The same random-walk run (its draws are bitwise the same on every path) three ways, each in a fresh output folder:
  plain      `landscape sample` in this process (Numba threads = cores), no Dask;
  dask x1    `--cluster local:1 --shards 1`: one worker process (threads = cores), one task;
  dask x2    `--cluster local:2 --shards 2`: two worker processes (threads = cores / 2 each), two tasks.
Times are wall clock of the run (config, tasks, join) on workers already warm (a tiny run first loads imports and
Numba's cache in each worker, as a long-lived cluster has); the cluster start and that first run are reported apart.
Overhead = dask x1 / plain - 1 (target ≤ 10%). Prints a table, then a last line of JSON.

Usage: python bench/scale.py [--chains 8] [--draws 20000] [--arch 10,10] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def plain(explicit: dict, out: Path) -> float:
    from mcmc_landscape.runs.sampling import start_run

    t0 = time.perf_counter()
    start_run(explicit, out).run(quiet=True)
    return time.perf_counter() - t0


def sharded(client, explicit: dict, out: Path, workers: int) -> float:
    from landscape_cli.cluster import run_tasks
    from mcmc_landscape.runs import shards

    t0 = time.perf_counter()
    run = shards.new_sharded_run(explicit, out, workers)
    for _ in run_tasks(client, shards.run_shard, run.tasks("cpu")):
        pass
    run.join()
    return time.perf_counter() - t0


def on_dask(explicit: dict, out: Path, workers: int) -> tuple[float, float, float]:
    """(timed run on warm workers, cluster start, a tiny first run that loads imports and Numba's cache per worker)."""
    from landscape_cli.cluster import connect

    t0 = time.perf_counter()
    with connect(f"local:{workers}", timeout=120) as client:
        client.wait_for_workers(workers, timeout=120)
        start = time.perf_counter() - t0
        cold = sharded(client, dict(explicit, draws=10, warmup=10), out.with_name(out.stem + "-cold.h5"), workers)
        return sharded(client, explicit, out, workers), start, cold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--draws", type=int, default=20000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--arch", default="10,10")
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    explicit = dict(arch=a.arch, chains=a.chains, draws=a.draws, warmup=a.warmup, seed=0)
    n = a.chains * a.draws
    times: dict[str, list[float]] = {"plain": [], "dask x1": [], "dask x2": []}
    starts: dict[str, list[float]] = {"dask x1": [], "dask x2": []}
    colds: dict[str, list[float]] = {"dask x1": [], "dask x2": []}
    with tempfile.TemporaryDirectory() as tmp:
        plain(dict(explicit, draws=10, warmup=10), Path(tmp) / "compile.h5")  # Numba's cache, loaded once here
        for r in range(a.repeats):
            times["plain"].append(plain(explicit, Path(tmp) / f"plain{r}.h5"))
            for w in (1, 2):
                dt, st, cold = on_dask(explicit, Path(tmp) / f"dask{w}-{r}.h5", w)
                times[f"dask x{w}"].append(dt)
                starts[f"dask x{w}"].append(st)
                colds[f"dask x{w}"].append(cold)
        from mcmc_landscape.storage.store import ChainReader

        with ChainReader(Path(tmp) / "plain0.h5") as p, ChainReader(Path(tmp) / "dask2-0.h5") as d:
            identical = bool(np.array_equal(p.get_chain(), d.get_chain()))
    best = {k: min(v) for k, v in times.items()}
    print(f"random walk, {a.arch} relu on points10, {a.chains} chains × {a.draws} draws (+{a.warmup} warm-up), "
          f"{os.cpu_count()} cores; best of {a.repeats}")
    print(f"{'path':<10} {'wall s':>8} {'draws/s':>10} {'cluster start s':>16} {'first tiny run s':>17}")
    for k, v in best.items():
        st = f"{min(starts[k]):>16.1f} {min(colds[k]):>17.1f}" if k in starts else f"{'-':>16} {'-':>17}"
        print(f"{k:<10} {v:>8.2f} {n / v:>10,.0f} {st}")
    overhead = best["dask x1"] / best["plain"] - 1
    speedup = best["dask x1"] / best["dask x2"]
    print(f"Dask overhead at one worker: {100 * overhead:+.1f}% (target ≤ 10%); 2 workers vs 1: {speedup:.2f}x; "
          f"draws identical across paths: {identical}")
    print(json.dumps({"bench": "scale", "chains": a.chains, "draws": a.draws, "arch": a.arch, "cores": os.cpu_count(),
                      "seconds": best, "draws_per_s": {k: n / v for k, v in best.items()},
                      "cluster_start_s": {k: min(v) for k, v in starts.items()},
                      "first_tiny_run_s": {k: min(v) for k, v in colds.items()}, "overhead_1_worker": overhead,
                      "speedup_2_vs_1": speedup, "identical": identical, "machine": platform.platform()}))


if __name__ == "__main__":
    main()
