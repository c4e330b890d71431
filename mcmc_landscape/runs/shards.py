"""A run's chains split into shards: each shard a pure task (config, shard) → its own HDF5 chain file, resumable shard
by shard; the run's main file joins the shards with HDF5 virtual datasets, so readers see one (chains, draws, p) run.

Why: chains are independent (random walk, HMC), so a run spreads over processes or machines with no communication;
the coordinator joins files and never ships arrays. Layout for ``runs/x.h5`` split in K shards::

    runs/x.h5                      the main file: config, the shard table, theta/energy/accepted as virtual datasets
    runs/x.h5.shards/shard-000-of-00K.h5 ...   ordinary chain files (any ChainReader reads one), chains [a, b)

What is invariant. **Random walk**: each chain has its own SplitMix64 stream, a child of one ``SeedSequence`` by
chain index (:func:`mcmc_landscape.samplers.rng.chain_seeds`), and its start is row ``c`` of the run's one uniform
draw; a shard
of chains [a, b) starts from exactly those rows and streams, so the draws are bitwise those of the single-process run
whatever the number of shards or workers. **HMC**: one ``torch.Generator`` drives a whole batch (momenta for all
chains from one stream), so a shard has its own generator. Invariant: the starting points (rows of the same draw), and,
for a given seed and number of shards K, the draws bit for bit whatever the number of workers, the order the shards
run in and any interruption (a shard is an ordinary resumable run); K = 1 is the single-process run. Changing K
changes the HMC draws (same distribution, other momenta). **emcee**: walkers interact, so it takes K = 1 only.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mcmc_landscape.errors import SpecError, StoreError
from mcmc_landscape.runs.config import RunConfig
from mcmc_landscape.samplers.start import uniform_start


@dataclass(frozen=True)
class Shard:
    """Chains ``first .. first + chains - 1`` of a run of ``total`` chains; shard ``index`` of ``of``."""

    index: int
    of: int
    first: int
    chains: int
    total: int

    @property
    def file_name(self) -> str:
        return f"shard-{self.index:03d}-of-{self.of:03d}.h5"


def plan(n_chains: int, n_shards: int) -> list[Shard]:
    """Contiguous, near-equal chain ranges (the first ``n_chains % n_shards`` shards hold one chain more)."""
    if not 1 <= n_shards <= n_chains:
        raise SpecError(f"--shards must lie between 1 and the number of chains ({n_chains}), got {n_shards}.")
    base, extra = divmod(n_chains, n_shards)
    shards, first = [], 0
    for i in range(n_shards):
        size = base + (i < extra)
        shards.append(Shard(i, n_shards, first, size, n_chains))
        first += size
    return shards


def shard_folder(main: str | os.PathLike) -> Path:
    main = Path(main)
    return main.with_name(main.name + ".shards")


def shard_config(cfg: RunConfig, shard: Shard) -> RunConfig:
    """The config stored in a shard file: the run's, with its own chain count and where it sits in the run."""
    return cfg.replace(chains=shard.chains, shard=asdict(shard))


def initial_positions(seed: int, n_chains: int, p: int, box: float) -> np.ndarray:
    """The run's starting points, as the kernels draw them (uniform in the box from ``SeedSequence([seed, 0])``)."""
    return uniform_start(seed, (n_chains, p), box)


def init_shard_state(kernel: Any, cfg: RunConfig, shard: Shard) -> Any:
    """The starting state of a shard's chains: the single-process run's rows (see the module docstring)."""
    seed, rows = int(cfg.seed), slice(shard.first, shard.first + shard.chains)
    if kernel.name == "emcee":
        if shard.of > 1:
            raise SpecError("emcee's walkers move together, so its chains cannot be split; use --shards 1 or "
                            "--sampler rw/hmc.")
        return kernel.init(shard.chains, seed)
    positions = initial_positions(seed, shard.total, int(cfg.n_params), float(cfg.box))[rows]
    if kernel.name == "rw":
        from mcmc_landscape.samplers import rw
        from mcmc_landscape.samplers.rng import chain_seeds

        state = rw.init(kernel.model, shard.chains, seed, kernel.settings, positions=positions)
        return state._replace(rng=chain_seeds(seed, shard.total, purpose=1)[rows].copy())
    if kernel.name == "hmc":
        import torch

        from mcmc_landscape.samplers import hmc

        state = hmc.init(kernel.energy_fn, shard.chains, kernel.p, seed, kernel.settings, kernel.device,
                         kernel.dtype, positions=positions, grad_fn=kernel.grad_fn)
        if shard.of == 1:
            return state
        gen = torch.Generator(device=kernel.device)
        words = np.random.SeedSequence([seed, 2, shard.of, shard.index]).generate_state(1, np.uint64)
        gen.manual_seed(int(words[0] >> np.uint64(1)))
        return state._replace(rng_state=gen.get_state())
    raise SpecError(f"sampler {kernel.name!r} cannot be split into shards; use --shards 1.")


def run_shard(cfg: RunConfig, shard: Shard, path: str, total: int, device: str = "auto",
              block_evals: int = 2_000_000) -> dict[str, Any]:
    """Bring shard ``shard`` of the run ``cfg`` to ``total`` committed draws in ``path``: the distributed task.

    A pure function of its arguments (it reads the data named in ``cfg`` and checks its digest); it starts the shard
    file or resumes it from its last commit, so a task rerun after its worker died recomputes nothing committed.
    Returns a small summary (never the draws).
    """
    from mcmc_landscape.data.datasets import data_digest
    from mcmc_landscape.runs import runner
    from mcmc_landscape.runs.mlp_sampling import make_kernel
    from mcmc_landscape.storage.store import ChainReader, ChainWriter

    t0 = time.perf_counter()
    path = Path(path)
    expected = shard_config(cfg, shard)
    if path.exists():
        with ChainReader(path) as reader:
            stored, done = RunConfig.from_json(reader.config), reader.committed_draws
            x, y, arrays = reader.extra("data/x"), reader.extra("data/y"), reader.state()
        diffs = stored.differing_fields(expected)
        if diffs:
            raise StoreError(f"shard file {str(path)!r} belongs to another run (differs in {', '.join(diffs)}); "
                             "remove it or start the run afresh with --force.")
        if done >= total:
            return {"index": shard.index, "committed_draws": done, "new_draws": 0, "seconds": 0.0}
        _, kernel = make_kernel(stored, x, y, device)
        state = kernel.state_from_arrays(arrays)
        writer = ChainWriter.open(path)
    else:
        from mcmc_landscape.data.datasets import load_dataset

        ds = load_dataset(cfg.data, cfg.angle)
        if data_digest(ds.x, ds.y) != cfg.data_sha256:
            raise StoreError(f"the data {cfg.data!r} as read by this worker differ from the run's; give every "
                             "worker the same file (a shared filesystem).")
        _, kernel = make_kernel(cfg, ds.x, ds.y, device)
        state = init_shard_state(kernel, cfg, shard)
        writer = ChainWriter.create(path, "shard", expected.to_json(), shard.chains, int(cfg.n_params),
                                    kernel.state_arrays(state), extra={"data/x": ds.x, "data/y": ds.y},
                                    compression=cfg.compression)
        done = 0
    try:
        runner.run(kernel, writer, state, total, block_evals=block_evals, quiet=True)
    finally:
        writer.close()
    return {"index": shard.index, "committed_draws": writer.committed_draws,
            "new_draws": writer.committed_draws - done, "seconds": time.perf_counter() - t0}


@dataclass
class ShardedRun:
    """A run split in shards: its main file, run name, config, shards and the total draws per chain to reach."""

    main: Path
    run: str
    cfg: RunConfig
    shards: list[Shard]
    total: int

    def shard_path(self, shard: Shard) -> Path:
        return shard_folder(self.main) / shard.file_name

    def tasks(self, device: str = "auto", block_evals: int = 2_000_000) -> list[tuple[Any, ...]]:
        """The arguments of :func:`run_shard`, one tuple per shard (plain data: they travel to workers)."""
        return [(self.cfg, s, str(self.shard_path(s)), self.total, device, block_evals) for s in self.shards]

    def join(self) -> int:
        """Rewrite the main file so it shows every shard's committed draws (the fewest any shard holds); returns them."""
        from mcmc_landscape.storage.store import ChainReader

        counts, lengths, states = [], [], []
        for s in self.shards:
            path = self.shard_path(s)
            if not path.exists():
                counts.append(0)
                lengths.append(0)
                continue
            with ChainReader(path) as reader:
                counts.append(reader.committed_draws)
                lengths.append(int(reader._g["theta"].shape[1]))  # may exceed the commit after a kill
                states.append(reader.state())
        with ChainReader(self.main, self.run) as reader:
            data = reader.extra("data/x"), reader.extra("data/y")
        draws = min(counts)
        state = joined_state(states, self.shards) if len(states) == len(self.shards) else {}
        _write_main(self.main, self.run, self.cfg, self.shards, draws, lengths, data, state)
        return draws


def new_sharded_run(explicit: dict[str, Any], out: str | os.PathLike, n_shards: int | None, run: str | None = None,
                    force: bool = False, device: str = "auto", workers: int = 1) -> ShardedRun:
    """Plan a new sharded run and write its main file (no draws yet); refuses to overwrite without ``force``.

    ``n_shards`` None: one shard per worker (at most one per chain; emcee, whose walkers move together, one)."""
    import shutil

    from mcmc_landscape.runs.sampling import new_config

    out = Path(out)
    if out.exists() and not force:
        raise StoreError(f"{str(out)!r} already exists; pass --force to overwrite it or --resume to continue it.")
    cfg, ds, _spec, _kernel = new_config(explicit, device)
    if n_shards is None:
        n_shards = 1 if cfg.sampler == "emcee" else min(max(1, workers), int(cfg.chains))
    cfg = cfg.replace(shards=int(n_shards))
    shards = plan(int(cfg.chains), n_shards)
    if cfg.sampler == "emcee" and n_shards > 1:
        raise SpecError("emcee's walkers move together, so its chains cannot be split; use --shards 1 or "
                        "--sampler rw/hmc.")
    if shard_folder(out).exists():
        shutil.rmtree(shard_folder(out))
    sharded = ShardedRun(out, run or out.stem, cfg, shards, int(cfg.draws))
    _write_main(out, sharded.run, cfg, shards, 0, [0] * len(shards), (ds.x, ds.y))
    return sharded


def is_sharded(path: str | os.PathLike, run: str | None = None) -> bool:
    """Whether ``path`` is the main file of a sharded run (its run group carries a shard table)."""
    import h5py

    try:
        with h5py.File(path, "r", swmr=True, locking=False) as f:
            groups = [f[k] for k in f if isinstance(f[k], h5py.Group)]
            return any("shard_table" in g.attrs and (run is None or g.name == f"/{run}") for g in groups)
    except (OSError, RuntimeError, ValueError):
        return False


def open_sharded_run(path: str | os.PathLike, explicit: dict[str, Any], draws: int | None = None,
                     run: str | None = None, n_shards: int | None = None) -> ShardedRun:
    """Reopen a sharded run to continue it (to ``draws`` per chain, default the stored total)."""
    from mcmc_landscape.runs.sampling import check_resume
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(path, run) as reader:
        cfg, name = RunConfig.from_json(reader.config), reader.run
        if "shard_table" not in reader.attrs:
            raise SpecError(f"{str(path)!r} is a single-process run, not split in shards; resume it without --shards "
                            "and --cluster.")
        table = json.loads(reader.attrs["shard_table"])
    if n_shards is not None and n_shards != len(table):
        raise SpecError(f"{str(path)!r} is split in {len(table)} shards, not {n_shards}; drop --shards to resume it.")
    check_resume(path, cfg, explicit)
    total = int(draws) if draws is not None else int(cfg.draws)
    return ShardedRun(Path(path), name, cfg, [Shard(**t) for t in table], total)


def joined_state(states: list[dict[str, np.ndarray]], shards: list[Shard]) -> dict[str, np.ndarray]:
    """The shards' last states side by side, for readers (acceptance, non-finite counts, step sizes per chain).

    Per-chain arrays are concatenated in chain order; a value the shards share (the iteration) is kept once; a
    per-shard value (HMC's generator state) is left out. Resuming uses each shard's own state, never this one.
    """
    out = {}
    for key in states[0]:
        values = [np.asarray(st[key]) for st in states]
        if all(v.ndim >= 1 and v.shape[0] == s.chains for v, s in zip(values, shards, strict=True)) \
                and key != "rng_state":
            out[key] = np.concatenate(values)
        elif all(v.shape == values[0].shape and np.array_equal(v, values[0]) for v in values):
            out[key] = values[0]
    return out


def _write_main(path: Path, run: str, cfg: RunConfig, shards: list[Shard], draws: int, lengths: list[int],
                data: tuple[np.ndarray, np.ndarray], state: dict[str, np.ndarray] | None = None) -> None:
    """The main file over the shard files (see :mod:`mcmc_landscape.storage.join`)."""
    from mcmc_landscape.storage.join import Source, write_joined

    folder = shard_folder(path).name
    sources = [Source(f"{folder}/{s.file_name}", s.first, s.chains, length)
               for s, length in zip(shards, lengths, strict=True)]
    write_joined(path, run, cfg.to_json(), int(cfg.chains), int(cfg.n_params), draws, sources,
                 [asdict(s) for s in shards], data, state)
