"""Past one machine: shards joined by virtual datasets, on a Dask LocalCluster of 2 processes (one per module).

Properties: the random walk's draws are bitwise those of the single-process run whatever the shards and workers;
HMC's are bitwise invariant to workers for a given number of shards, and K = 1 is the single-process run; a worker
killed mid-task has its task rerun, which resumes from its file (no committed draw recomputed) and the joined file is
complete; an unreachable scheduler is one sentence and exit 2; without --cluster Dask is never imported.
"""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape_cli.main import main
from mcmc_landscape.storage.store import ChainReader

pytest.importorskip("distributed")

RW = ["--arch", "3", "--chains", "5", "--draws", "120", "--warmup", "60", "--seed", "3", "--block-evals", "400"]
HMC = ["--sampler", "hmc", "--arch", "2", "--chains", "4", "--draws", "20", "--warmup", "20", "--leapfrog", "4",
       "--seed", "5", "--device", "cpu", "--block-evals", "400"]


def sample(*args):
    assert main(["-q", "sample", *map(str, args)]) == 0


def draws(path):
    with ChainReader(path) as r:
        return r.committed_draws, r.get_chain(), r.get_energy(), r.get("accepted")


def same(a, b):
    return a[0] == b[0] and all(np.array_equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))


@pytest.fixture(scope="module")
def cluster():
    from landscape_cli.cluster import connect

    with connect("local:2", timeout=120) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


@pytest.fixture(scope="module")
def plain_rw(tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "rw.h5"
    sample(*RW, "--out", path)
    return draws(path)


def test_rw_draws_do_not_depend_on_shards_or_workers(tmp_path, cluster, plain_rw):
    sample(*RW, "--shards", "3", "--out", tmp_path / "here.h5")  # three shards, one after another, no Dask
    sample(*RW, "--shards", "2", "--cluster", cluster.scheduler.address, "--out", tmp_path / "dask.h5")
    assert same(draws(tmp_path / "here.h5"), plain_rw)
    assert same(draws(tmp_path / "dask.h5"), plain_rw)
    with h5py.File(tmp_path / "dask.h5", "r") as f:  # joined, not copied
        assert f["dask/theta"].is_virtual and len(f["dask/theta"].virtual_sources()) == 2
    assert (tmp_path / "dask.h5").stat().st_size < (tmp_path / "dask.h5.shards" / "shard-000-of-002.h5").stat().st_size


def test_hmc_invariants(tmp_path, cluster):
    # (K = 1 is the single-process run: its starting state is equal, test_shards_start_where_the_single_run_starts)
    sample(*HMC, "--shards", "2", "--out", tmp_path / "here.h5")
    sample(*HMC, "--shards", "2", "--cluster", cluster.scheduler.address, "--out", tmp_path / "dask.h5")
    assert same(draws(tmp_path / "dask.h5"), draws(tmp_path / "here.h5"))  # workers do not matter for a given K


@pytest.mark.parametrize("sampler", ["rw", "hmc"])
def test_shards_start_where_the_single_run_starts(sampler):
    from mcmc_landscape.runs.sampling import new_config
    from mcmc_landscape.runs.shards import init_shard_state, plan

    cfg, _, _, kernel = new_config({"sampler": sampler, "arch": "2", "chains": 7, "seed": 11}, "cpu")
    whole = kernel.state_arrays(kernel.init(7, 11))
    parts = [kernel.state_arrays(init_shard_state(kernel, cfg, s)) for s in plan(7, 3)]
    assert np.array_equal(np.concatenate([p["position"] for p in parts]), whole["position"])
    if sampler == "rw":  # per-chain streams: the shards' streams are the run's
        assert np.array_equal(np.concatenate([p["rng"] for p in parts]), whole["rng"])
    one = kernel.state_arrays(init_shard_state(kernel, cfg, plan(7, 1)[0]))  # K = 1: the single-process run's state
    assert whole.keys() == one.keys() and all(np.array_equal(whole[k], one[k]) for k in whole)


def test_resume_shard_by_shard_and_missing_shard(tmp_path, plain_rw):
    path = tmp_path / "r.h5"
    sample(*RW, "--shards", "2", "--draws", "50", "--out", path)
    assert draws(path)[0] == 50
    sample("--resume", path, "--draws", "120")
    assert same(draws(path), plain_rw)
    assert main(["-q", "sample", *RW, "--shards", "2", "--out", str(path)]) == 2  # no overwrite without --force
    (tmp_path / "r.h5.shards" / "shard-001-of-002.h5").unlink()
    with pytest.raises(Exception, match="missing"):
        ChainReader(path)


def half_then_hang(cfg, shard, path, total, device, block_evals, marker):
    """Shard 0's first attempt commits half its draws, says which process it is in, and hangs until killed."""
    from mcmc_landscape.runs.shards import run_shard

    if shard.index == 0 and not os.path.exists(marker):
        run_shard(cfg, shard, path, total // 2, device, block_evals)
        Path(marker + ".tmp").write_text(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        threading.Event().wait()
    return run_shard(cfg, shard, path, total, device, block_evals)


def test_worker_killed_mid_task_reruns_and_the_joined_file_is_complete(tmp_path, cluster, plain_rw):
    import cloudpickle

    from landscape_cli.cluster import run_tasks
    from mcmc_landscape.runs import shards

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    explicit = dict(arch="3", chains=5, draws=120, warmup=60, seed=3)
    run = shards.new_sharded_run(explicit, tmp_path / "k.h5", 2, device="cpu")
    marker = str(tmp_path / "pid")
    killed = {}

    def killer():
        while not os.path.exists(marker):  # the task says where it runs once half its draws are committed
            threading.Event().wait(0.05)
        killed["pid"] = int(Path(marker).read_text())
        killed["draws"] = draws(run.shard_path(run.shards[0]))[0]
        os.kill(killed["pid"], signal.SIGKILL)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    items = [(*task, marker) for task in run.tasks("cpu", 400)]
    results = {r["index"]: r for r in run_tasks(cluster, half_then_hang, items)}
    t.join(timeout=60)
    assert killed["draws"] == 60 and killed["pid"] != os.getpid()
    assert results[0]["new_draws"] == 60  # the rerun resumed: nothing committed was recomputed
    assert run.join() == 120
    assert same(draws(tmp_path / "k.h5"), plain_rw)


def test_unreachable_scheduler_is_one_sentence_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "landscape_cli", "sample", *RW, "--cluster", "tcp://127.0.0.1:1",
                           "--cluster-timeout", "2", "--out", str(tmp_path / "x.h5")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "landscape: error: cannot reach the Dask scheduler at tcp://127.0.0.1:1 within 2 s; start it "
        "(`dask scheduler`) and check the address, or drop --cluster."]
    assert not (tmp_path / "x.h5").exists()


def test_without_cluster_dask_is_not_imported(tmp_path):
    code = ("import sys; from landscape_cli.main import main; "
            f"assert main(['-q', 'sample', *{RW!r}, '--shards', '2', '--out', {str(tmp_path / 'a.h5')!r}]) == 0; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')); "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


SWEEP = ["dss", "sweep", "--task", "quadratic", "--l0", "0.3,0.25", "--pairs", "2", "--endpoint-steps", "3000",
         "--max-steps", "2000"]


def test_sweep_on_the_cluster_writes_the_single_machine_files_and_resumes_without_recomputing(tmp_path, cluster):
    import json

    assert main(["-q", *SWEEP, "--out", str(tmp_path / "plain")]) == 0
    assert main(["-q", *SWEEP, "--cluster", cluster.scheduler.address, "--out", str(tmp_path / "dask")]) == 0

    def pairs(folder):
        result = json.loads((folder / "sweep.json").read_text())
        def timeless(rows):  # everything but the seconds
            return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "seconds"} for r in rows]

        return timeless(result["levels"]), timeless(result["pairs"])

    assert pairs(tmp_path / "dask") == pairs(tmp_path / "plain")
    names = sorted(p.name for p in (tmp_path / "plain" / "strings").glob("*.h5"))  # beside them: lock files
    assert sorted(p.name for p in (tmp_path / "dask" / "strings").glob("*.h5")) == names and len(names) == 4
    committed = {p: p.stat().st_mtime_ns for p in (tmp_path / "dask").rglob("*.h5")}
    committed.update({p: p.stat().st_mtime_ns for p in (tmp_path / "dask").rglob("*.npz")})
    (tmp_path / "dask" / "sweep.json").unlink()
    assert main(["-q", "dss", "sweep", "--resume", str(tmp_path / "dask")]) == 0  # a restart, here, no Dask
    assert {p: p.stat().st_mtime_ns for p in committed} == committed  # nothing committed was recomputed
    assert pairs(tmp_path / "dask") == pairs(tmp_path / "plain")


def test_graph_waves_grown_pair_by_pair_equal_the_lockstep_graph():
    """`dss minima --cluster` grows each wave's strings one per task; the graph must be the lockstep one."""
    import torch
    from landscapes import Synthetic

    from dss.graph import GraphSettings, build_graph
    from dss.string import connect_many, start_string

    one = Synthetic(lambda th: (th.norm(dim=1) - 1.0) ** 2)  # the annulus: one curved basin
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], 1)
    gs = GraphSettings(levels=(0.02, 0.01), symmetric=0)
    calls = []

    def alone(batch, settings):
        calls.append(len(batch))
        states = [start_string(one, ring[i], ring[j], settings) for i, j in batch]
        for st in states:
            connect_many(one, [st], settings)
        return states

    def edges(graph):
        return [[(e["i"], e["j"], e["n_beads"], round(e["length"], 12)) for e in lv["edges"]] for lv in graph["levels"]]

    torch.manual_seed(0)
    assert edges(build_graph(one, ring, gs, connect_pairs=alone)) == edges(build_graph(one, ring, gs))
    assert sum(calls) > 0


def test_census_quench_batches_as_tasks_equal_the_in_process_quench(tmp_path, cluster):
    """`census --cluster`: each quench batch is a task reading its own draws and writing its own file; the batches
    are those of the in-process census."""
    import torch

    from analysis.census_run import _quench_batches, pick_draws, sorted_starts
    from landscape_cli.cluster import TaskRunner
    from mcmc_landscape.models.nets import MLPSpec
    from mcmc_landscape.optimize import mlp_objective, resolve_device

    chains = tmp_path / "c.h5"
    sample("--chains", "4", "--draws", "40", "--warmup", "100", "--thin", "5", "--out", chains)
    cfg, x, y, theta, _ = pick_draws(chains, None, 24, 0)
    w = cfg["widths"]
    spec = MLPSpec.from_widths(w, cfg["activation"])
    dev = resolve_device("cpu")
    _, fg = mlp_objective(spec, x, y, dev)
    box = float(cfg["box"])
    from mcmc_landscape.models.symmetry import quench_start

    theta = sorted_starts(quench_start(theta, spec, box))[0]      # what the census quenches, and each task too
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the census and its tasks quench small networks
    try:
        here = _quench_batches(fg, theta, box, tmp_path / "a", 8, 1e-6, 300, dev, True)
    finally:
        torch.set_num_threads(threads)
    there = _quench_batches(fg, theta, box, tmp_path / "b", 8, 1e-6, 300, dev, True, TaskRunner(cluster),
                            (str(chains), None, 24, 0))
    assert len(list((tmp_path / "b" / "quench").glob("batch_*.npz"))) == 3
    assert set(there) == set(here)
    for key in here:
        np.testing.assert_allclose(there[key], here[key], rtol=1e-9, atol=1e-12)
