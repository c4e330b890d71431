"""The HDF5 chain store: one file, one or more runs, each a group of resizable datasets. It knows nothing of samplers.

Crash safety. The file is written in HDF5's single-writer/multiple-reader (SWMR) mode, which orders metadata writes so
that the file on disk is always a consistent file, and every block is committed in three flushed steps:

1. the draws of the block are appended to ``theta``, ``energy`` and ``accepted``;
2. the sampler state after the block is written into the inactive one of two state slots;
3. one small dataset ``commit = [committed_draws, active_slot]`` is rewritten.

A process killed at any moment (even ``kill -9``) leaves the last completed ``commit`` pointing at draws and a state
that were flushed before it; anything past it is discarded on the next open. A file left flagged "open for SWMR
write" by a killed writer is readable in SWMR mode, and is repaired (copied into a clean file) before it is appended to
again. So a writer is never anything but a SWMR writer: existing files are opened straight into SWMR-write mode, a new
file is switched to it before it is renamed into place, and the trim on open and the ``committed_draws`` attribute are
written in that mode (a file flagged open for *plain* writing by a killed process is one HDF5 refuses to open at all).

One writer per file. A writer holds an OS lock on ``<file>.lock`` (:mod:`.locking`) from before it opens the file until
after it closes it; the kernel drops that lock when the writer dies, even by ``kill -9``. So a file flagged "open for
write" whose lock can be taken was left by a dead writer and is repaired; while a live writer holds the lock, a second
one is refused with one sentence.

Speed. The draws are chunked to match the block writes: a chunk holds all chains (or a slice of them, when one draw of
all chains is over ``CHUNK_BYTES``) and at most one block's draws, so a block fills whole chunks and no chunk is
written, compressed or allocated twice. Compression is a choice (``none``, ``lzf``, ``gzip``), made when the run is
created.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mcmc_landscape import __version__
from mcmc_landscape.errors import StoreError
from mcmc_landscape.storage.locking import WriterLock

FORMAT = "mcmc-landscape/chains"
FORMAT_VERSION = 1
_DRAW_DATASETS = ("theta", "energy", "accepted")
#: The compressions a run may be created with; the value is the h5py keyword arguments of each.
COMPRESSIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "lzf": {"compression": "lzf", "shuffle": True},
    "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
}
#: Size of a chunk of ``theta`` in bytes, about: big enough that per-chunk costs vanish, small enough to read cheaply.
CHUNK_BYTES = 1 << 20
#: HDF5's chunk cache of a file open for appending (writes of whole chunks bypass it; partial blocks go through it).
APPEND_CACHE_BYTES = CHUNK_BYTES * 4
#: Draws per chunk when the block size is not known.
DEFAULT_CHUNK_DRAWS = 64


def chunk_layout(n_chains: int, p: int, itemsize: int = 8, block_draws: int | None = None,
                 chunk_bytes: int = CHUNK_BYTES) -> tuple[int, int]:
    """(chains, draws) per chunk of ``theta``; ``energy`` and ``accepted`` take the same draws per chunk and as many
    chains as fit in ``chunk_bytes`` (:func:`scalar_chunk_chains`).

    A block arrives as a C-ordered (chains, draws, p) array, so a chunk of a few whole chains × all the block's draws is
    one contiguous piece of it: HDF5 copies it in one go, where a chunk across all chains would gather thousands of
    strided rows. Hence: draws per chunk = the block's draws (fewer if one chain's block alone exceeds ``chunk_bytes``),
    then as many chains as fit in ``chunk_bytes``. Blocks then fill whole chunks, and no chunk is written twice."""
    per_chain_draw = max(1, p * itemsize)
    draws = int(block_draws) if block_draws else DEFAULT_CHUNK_DRAWS
    draws = max(1, min(draws, chunk_bytes // per_chain_draw))
    chains = max(1, min(n_chains, chunk_bytes // (per_chain_draw * draws)))
    return chains, draws


def scalar_chunk_chains(n_chains: int, chunk_draws: int, itemsize: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """Chains per chunk of ``energy`` (8 bytes a draw) or ``accepted`` (1): with theta's chains per chunk they came in
    pieces of a few kB, hundreds a block at 65,536 chains, each a call and an index entry of its own."""
    return max(1, min(n_chains, chunk_bytes // (itemsize * chunk_draws)))


def write_run_header(f: h5py.File, run: str, config: dict[str, Any], committed_draws: int) -> h5py.Group:
    """Mark a new file as a chain file and create its run group with the attributes every run carries (config,
    versions, creation time, committed draws); the store and the join of a sharded run both write runs this way."""
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    g = f.create_group(run)
    g.attrs["config"] = json.dumps(config, sort_keys=True)
    g.attrs["package_version"] = __version__
    g.attrs["h5py_version"] = h5py.version.version
    g.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    g.attrs["committed_draws"] = committed_draws
    return g


def _lock(path: str | os.PathLike) -> WriterLock:
    return WriterLock(path, "chain file", "wait for that run to finish or stop it")


def _open_read(path: str | os.PathLike) -> h5py.File:
    """Open any chain file for reading, including one left flagged by a killed writer.

    Readers take no HDF5 file lock: the writer's guard is ``<file>.lock``, and a reader's lock would make a writer
    that resumes or closes the file fail while anyone (``landscape diagnose``, a notebook) happens to read it."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"chain file {str(path)!r} does not exist; check the path or run `landscape sample` first.")
    try:
        f = h5py.File(path, "r", swmr=True, locking=False)
    except (OSError, RuntimeError, ValueError):
        try:
            f = h5py.File(path, "r", locking=False)
        except (OSError, RuntimeError, ValueError):
            raise StoreError(
                f"{str(path)!r} is not a readable HDF5 file (corrupt or not HDF5); re-create it with `landscape sample`."
            ) from None
    try:
        foreign = f.attrs.get("format") != FORMAT
    except (OSError, RuntimeError, KeyError):
        foreign = True
    if foreign:
        f.close()
        raise StoreError(f"{str(path)!r} is an HDF5 file but not an mcmc-landscape chain file (no format={FORMAT!r}).")
    return f


def list_runs(path: str | os.PathLike) -> list[str]:
    with _open_read(path) as f:
        return [k for k in f.keys() if isinstance(f[k], h5py.Group) and "commit" in f[k]]


def _pick_run(f: h5py.File, path: Any, run: str | None) -> str:
    runs = [k for k in f.keys() if isinstance(f[k], h5py.Group) and "commit" in f[k]]
    if not runs:
        raise StoreError(f"{str(path)!r} holds no runs; it may have been created by an interrupted first block.")
    if run is None:
        if len(runs) > 1:
            raise StoreError(f"{str(path)!r} holds several runs ({', '.join(runs)}); choose one with --run.")
        return runs[0]
    if run not in runs:
        raise StoreError(f"{str(path)!r} has no run {run!r}; it holds {', '.join(runs)}.")
    return run


class ChainWriter:
    """Appends blocks of draws to one run, committing each block atomically (see the module docstring)."""

    def __init__(self, f: h5py.File, run: str, lock: WriterLock, path: Path | None = None):
        self._f = f
        self._lock = lock  # held until close()
        self.path = Path(f.filename) if path is None else path  # a new file is renamed into place while open
        self.run = run
        self._g = f[run]
        self._commit = self._g["commit"]
        self.committed_draws, self._slot = (int(v) for v in self._commit[...])
        self._state_names = list(self._g["state/slot0"].keys())
        # dataset handles looked up once: a group lookup per array per block cost more than the writing itself
        self._state_sets = [[self._g[f"state/slot{i}/{name}"] for name in self._state_names] for i in (0, 1)]
        self._draw_sets = [self._g[name] for name in _DRAW_DATASETS]
        self._direct = self._draw_sets[0].compression is None  # uncompressed: whole chunks go in as raw bytes
        self.chunk_draws = int(self._g["theta"].chunks[1])
        self.n_params = int(self._g["theta"].shape[2])

    # -- creation and opening ---------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, run: str, config: dict[str, Any], n_chains: int, p: int,
               state: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None = None,
               force: bool = False, compression: str = "gzip", block_draws: int | None = None,
               theta_dtype: str = "f8") -> ChainWriter:
        """Create a new file holding one run; refuses to overwrite an existing file unless ``force``, and always while
        another process writes it. ``block_draws`` (the draws of one block write) shapes the chunks."""
        if compression not in COMPRESSIONS:
            raise StoreError(f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}.")
        path = Path(path)
        lock = _lock(path).acquire()  # held from the existence check until the writer closes
        try:
            if path.exists() and not force:
                raise StoreError(f"{str(path)!r} already exists; pass --force to overwrite it or --resume to continue "
                                 "it.")
            path.parent.mkdir(parents=True, exist_ok=True)
            f = cls._create_file(path, run, config, n_chains, p, state, extra, compression, block_draws, theta_dtype)
        except BaseException:
            lock.release()
            raise
        return cls(f, run, lock, path)  # the state is in slot 0, where the first commit record points

    @staticmethod
    def _create_file(path: Path, run: str, config: dict[str, Any], n_chains: int, p: int,
                     state: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None, compression: str,
                     block_draws: int | None, theta_dtype: str) -> h5py.File:
        """Write the new file beside ``path``, flush it, rename it into place and return it open for appending in
        SWMR mode (kept open: closing and reopening it cost a run of many chains more than its first block's state).
        A writer killed after the rename leaves a complete file flagged open for SWMR writing, which readers open and
        the next writer repairs."""
        tmp = path.with_name(path.name + ".creating")
        f = h5py.File(tmp, "w", libver="latest", locking=False, rdcc_nbytes=APPEND_CACHE_BYTES)
        try:
            g = write_run_header(f, run, config, 0)
            g.attrs["compression"] = compression
            dtype = np.dtype(theta_dtype)
            cc, cd = chunk_layout(n_chains, p, dtype.itemsize, block_draws)
            opts = COMPRESSIONS[compression]
            g.create_dataset("theta", shape=(n_chains, 0, p), maxshape=(n_chains, None, p), dtype=dtype,
                             chunks=(cc, cd, p), **opts)
            g.create_dataset("energy", shape=(n_chains, 0), maxshape=(n_chains, None), dtype="f8",
                             chunks=(scalar_chunk_chains(n_chains, cd, 8), cd), **opts)
            g.create_dataset("accepted", shape=(n_chains, 0), maxshape=(n_chains, None), dtype="bool",
                             chunks=(scalar_chunk_chains(n_chains, cd, 1), cd), **opts)
            for slot in ("slot0", "slot1"):
                s = g.create_group(f"state/{slot}")
                for name, value in state.items():
                    value = np.asarray(value)
                    if slot == "slot0":
                        s.create_dataset(name, data=value)
                    else:  # written at the first commit
                        s.create_dataset(name, shape=value.shape, dtype=value.dtype)
            for name, value in (extra or {}).items():
                g.create_dataset(name, data=np.asarray(value))
            g.create_dataset("commit", data=np.array([0, 0], dtype=np.int64))
            f.flush()
            f.swmr_mode = True       # before the rename: the file at ``path`` is never flagged open for plain writing
            os.replace(tmp, path)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise
        return f

    @classmethod
    def open(cls, path: str | os.PathLike, run: str | None = None) -> ChainWriter:
        """Open an existing run for appending, repairing a file left by a killed writer and trimming uncommitted draws.

        Refused (:class:`~mcmc_landscape.storage.locking.FileBusy`) while another live process writes the file."""
        path = Path(path)
        lock = _lock(path).acquire()
        try:
            f = cls._open_file(path)
        except BaseException:
            lock.release()
            raise
        try:
            run = _pick_run(f, path, run)
            g = f[run]
            committed = int(g["commit"][0])
            for name in _DRAW_DATASETS:
                if g[name].shape[1] != committed:
                    g[name].resize(committed, axis=1)
            g.attrs.modify("committed_draws", committed)          # in place: no attribute created in SWMR mode
            f.flush()
            return cls(f, run, lock)
        except BaseException:
            f.close()
            lock.release()
            raise

    @staticmethod
    def _open_file(path: Path) -> h5py.File:
        """Open for appending; the caller holds the lock, so a file flagged "open for write" has no live writer."""
        _open_read(path).close()  # clear errors for missing, corrupt and foreign files
        try:
            return _open_for_write(path, rdcc_nbytes=APPEND_CACHE_BYTES)
        except OSError as exc:
            if "already open for write" not in str(exc):
                raise StoreError(f"{str(path)!r} cannot be opened for writing ({exc}).") from None
            repair(path)
            return _open_for_write(path, rdcc_nbytes=APPEND_CACHE_BYTES)

    # -- writing ----------------------------------------------------------------------------------------------------
    def write_state(self, state: dict[str, np.ndarray], commit: bool = True) -> None:
        """Write ``state`` into the inactive slot, then (if ``commit``) point the commit record at it."""
        slot = 1 - self._slot
        for name, d in zip(self._state_names, self._state_sets[slot], strict=True):
            value = np.require(state[name], dtype=d.dtype, requirements="C")  # keeps 0-d arrays 0-d
            if value.shape != d.shape:
                raise ValueError(f"state {name!r} has shape {value.shape}, the run stores {d.shape}")
            d.id.write(h5py.h5s.ALL, h5py.h5s.ALL, value)  # whole dataset, no selection machinery
        self._f.flush()
        if commit:
            self._commit[...] = np.array([self.committed_draws, slot], dtype=np.int64)
            self._f.flush()
            self._slot = slot

    def append(self, theta: np.ndarray, energy: np.ndarray, accepted: np.ndarray,
               state: dict[str, np.ndarray]) -> None:
        """Append a block of draws (chains, k, ...) and the sampler state after it, as one atomic commit."""
        k = theta.shape[1]
        if k:
            start = self.committed_draws
            for d, block in zip(self._draw_sets, (theta, energy, accepted), strict=True):
                d.resize(start + k, axis=1)
                if self._direct and start % self.chunk_draws == 0 and k % self.chunk_draws == 0:
                    _write_whole_chunks(d, np.asarray(block, dtype=d.dtype), start)
                else:
                    d[:, start : start + k] = block
            self._f.flush()
        self.committed_draws += k
        self.write_state(state, commit=True)

    def close(self) -> None:
        """Record ``committed_draws`` in its attribute (rewritten in place, in SWMR mode like every write), close the
        file, then let the lock go."""
        if not self._f.id.valid:
            return
        try:
            self._g.attrs.modify("committed_draws", self.committed_draws)
            self._f.close()
        finally:
            self._lock.release()

    def __enter__(self) -> ChainWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_for_write(path: Path, rdcc_nbytes: int | None = None) -> h5py.File:
    """Open ``path`` read-write straight into SWMR-write mode (one ``H5Fopen`` with ``H5F_ACC_SWMR_WRITE``), without
    HDF5's file lock (``<file>.lock`` guards writers; an HDF5 lock would also refuse the writer while any reader had the
    file open, and every open of one file in a process must agree on it).

    Never a plain read-write open: a writer killed while a file is flagged open for plain writing leaves a file that
    no reader can open (HDF5 refuses it until ``h5clear``), whereas one flagged open for SWMR writing stays readable and
    is repaired on the next append. Trimming, the ``committed_draws`` attribute and appends all run in SWMR mode."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    fapl.set_file_locking(False, True)
    if rdcc_nbytes is not None:
        mdc, nslots, _, w0 = fapl.get_cache()
        fapl.set_cache(mdc, nslots, int(rdcc_nbytes), w0)
    try:
        fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    except OSError as exc:
        if "already open for read-only" in str(exc):
            raise StoreError(
                f"{str(path)!r} is open for reading in this same process; close that reader (ChainReader) first."
            ) from None
        raise
    return h5py.File(fid)


def _write_whole_chunks(d: h5py.Dataset, block: np.ndarray, start: int) -> None:
    """Write a block that covers whole chunks along the draws straight into the file, chunk by chunk, past HDF5's
    selection and chunk cache (0.6 → ~0.9 of a plain contiguous write, measured). Uncompressed datasets only."""
    cc, cd = d.chunks[0], d.chunks[1]
    n_chains, k = block.shape[0], block.shape[1]
    for j in range(0, k, cd):
        for c in range(0, n_chains, cc):
            piece = block[c : c + cc, j : j + cd]
            if piece.shape[0] < cc:  # the last chains' chunk: HDF5 stores every chunk whole
                full = np.zeros((cc, *piece.shape[1:]), dtype=block.dtype)
                full[: piece.shape[0]] = piece
                piece = full
            d.id.write_direct_chunk((c, start + j, *([0] * (block.ndim - 2))), np.ascontiguousarray(piece))


def repair(path: str | os.PathLike) -> None:
    """Copy a file left flagged "open for write" by a killed writer into a clean file, atomically replacing it.

    Refused while a live writer holds the file's lock (then the file is in use, not left by a killed writer)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".repairing")
    with _lock(path):
        src = h5py.File(path, "r", swmr=True, locking=False)
        with src, h5py.File(tmp, "w", libver="latest", locking=False) as dst:
            for k, v in src.attrs.items():
                dst.attrs[k] = v
            for name in src:
                src.copy(src[name], dst, name=name)
        os.replace(tmp, path)


class ChainReader:
    """Lazy, chunked reading of one run: nothing is loaded until asked for, and only committed draws are visible."""

    def __init__(self, path: str | os.PathLike, run: str | None = None):
        self.path = Path(path)
        self._f = _open_read(self.path)
        try:
            self.run = _pick_run(self._f, self.path, run)
            self._g = self._f[self.run]
            self.committed_draws, self._slot = (int(v) for v in self._g["commit"][...])
            self.config: dict[str, Any] = json.loads(self._g.attrs["config"])
            self._check_virtual_sources()
        except (KeyError, ValueError, OSError) as exc:
            self._f.close()
            raise StoreError(f"run in {str(self.path)!r} is damaged ({exc}); re-create it with `landscape sample`.") \
                from None
        except BaseException:
            self._f.close()
            raise

    def _check_virtual_sources(self) -> None:
        """A run joined from shard files (virtual datasets) needs every shard: HDF5 would read a missing one as fill."""
        for name in _DRAW_DATASETS:
            d = self._g[name]
            if not d.is_virtual:
                continue
            for src in d.virtual_sources():
                where = Path(src.file_name)
                where = where if where.is_absolute() else self.path.parent / where
                if not where.is_file():
                    raise StoreError(f"{str(self.path)!r} joins shard files, and {str(where)!r} is missing; keep the "
                                     f"{where.parent.name}/ folder beside the main file.")

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._g.attrs)

    @property
    def n_chains(self) -> int:
        return int(self._g["theta"].shape[0])

    @property
    def n_params(self) -> int:
        return int(self._g["theta"].shape[2])

    @property
    def theta_dtype(self) -> np.dtype:
        return self._g["theta"].dtype

    def _select(self, discard: int, thin: int) -> slice:
        if discard < 0 or thin < 1:
            raise StoreError(f"discard must be ≥ 0 and thin ≥ 1, got discard={discard}, thin={thin}.")
        return slice(min(discard, self.committed_draws), self.committed_draws, thin)

    def get(self, name: str, discard: int = 0, thin: int = 1, flat: bool = False) -> np.ndarray:
        """Committed draws of ``theta``, ``energy`` or ``accepted`` as (chains, draws, ...), or flattened."""
        arr = self._g[name][:, self._select(discard, thin)]
        return arr.reshape(-1, *arr.shape[2:]) if flat else arr

    def get_coordinates(self, columns: np.ndarray, discard: int = 0, thin: int = 1,
                        block_bytes: int = 256 * 2**20) -> np.ndarray:
        """θ[..., columns] of the committed draws as (chains, draws, len(columns)), read in blocks of draws of at most
        ``block_bytes`` (as stored), so a file far larger than memory yields a few of its coordinates."""
        d = self._g["theta"]
        sel = self._select(discard, thin)
        rows = range(sel.start, sel.stop, sel.step)
        per_draw = d.shape[0] * d.shape[2] * d.dtype.itemsize
        step = max(1, block_bytes // max(per_draw, 1)) * thin  # whole thin-strides per block
        columns = np.asarray(columns, dtype=np.int64)
        out = np.empty((d.shape[0], len(rows), len(columns)), dtype=d.dtype)
        k = 0
        for start in range(sel.start, sel.stop, step):
            block = d[:, start : min(start + step, sel.stop) : thin]
            out[:, k : k + block.shape[1]] = block[..., columns]
            k += block.shape[1]
        return out

    def get_chain(self, discard: int = 0, thin: int = 1, flat: bool = False) -> np.ndarray:
        return self.get("theta", discard, thin, flat)

    def get_energy(self, discard: int = 0, thin: int = 1, flat: bool = False) -> np.ndarray:
        return self.get("energy", discard, thin, flat)

    def read_block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Draws ``start:stop`` (clipped to the committed ones) of every chain."""
        return self._g[name][:, max(0, start) : min(stop, self.committed_draws)]

    def read_slab(self, name: str, chains: slice, draws: slice) -> np.ndarray:
        """``name[chains, draws]`` as stored (draws within the committed ones): one bounded read of a large run."""
        if draws.stop is not None and draws.stop > self.committed_draws:
            raise StoreError(f"draws up to {draws.stop} asked for, but only {self.committed_draws} are committed.")
        return self._g[name][chains, draws]

    def to_inference_data(self, discard: int = 0, thin: int = 1, module_layout: Any = None) -> Any:
        """The run as an ArviZ InferenceData (θ with named parameters, sample stats, the data, the config); see
        :mod:`mcmc_landscape.storage.inference_data`, which also writes it to netCDF out of core. An MLP's parameters
        are named from its widths; a module's with ``module_layout=mcmc_landscape.user_model.stored_module_layout``."""
        from mcmc_landscape.storage.inference_data import to_inference_data

        return to_inference_data(self, discard=discard, thin=thin, module_layout=module_layout)

    def iter_chunks(self, name: str = "theta", chunk_draws: int = 4096, discard: int = 0
                    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_draw, block)`` over committed draws, reading ``chunk_draws`` at a time (bounded memory)."""
        d = self._g[name]
        for start in range(min(discard, self.committed_draws), self.committed_draws, chunk_draws):
            stop = min(start + chunk_draws, self.committed_draws)
            yield start, d[:, start:stop]

    def state(self) -> dict[str, np.ndarray]:
        """The sampler state of the last commit."""
        s = self._g[f"state/slot{self._slot}"]
        return {k: s[k][()] for k in s.keys()}

    def extra(self, name: str) -> np.ndarray:
        return self._g[name][()]

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ChainReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
