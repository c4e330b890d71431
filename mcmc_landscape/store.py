"""The HDF5 chain store: one file, one or more runs, each a group of resizable datasets. It knows nothing of samplers.

Crash safety. The file is written in HDF5's single-writer/multiple-reader (SWMR) mode, which orders metadata writes so
that the file on disk is always a consistent file, and every block is committed in three flushed steps:

1. the draws of the block are appended to ``theta``, ``energy`` and ``accepted``;
2. the sampler state after the block is written into the inactive one of two state slots;
3. one small dataset ``commit = [committed_draws, active_slot]`` is rewritten.

A process killed at any moment (even ``kill -9``) leaves the last completed ``commit`` pointing at draws and a state
that were flushed before it; anything past it is discarded on the next open. A file left flagged "open for write" by a
killed writer is readable in SWMR mode, and is repaired (copied into a clean file) before it is appended to again.
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

from . import __version__
from .errors import StoreError

FORMAT = "mcmc-landscape/chains"
FORMAT_VERSION = 1
_DRAW_DATASETS = ("theta", "energy", "accepted")


def _open_read(path: str | os.PathLike) -> h5py.File:
    """Open any chain file for reading, including one left flagged by a killed writer."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"chain file {str(path)!r} does not exist; check the path or run `landscape sample` first.")
    try:
        f = h5py.File(path, "r", swmr=True)
    except (OSError, RuntimeError, ValueError):
        try:
            f = h5py.File(path, "r")
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

    def __init__(self, f: h5py.File, run: str):
        self._f = f
        self.path = Path(f.filename)
        self.run = run
        self._g = f[run]
        self._commit = self._g["commit"]
        self.committed_draws, self._slot = (int(v) for v in self._commit[...])
        self._state_names = list(self._g["state/slot0"].keys())

    # -- creation and opening ---------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, run: str, config: dict[str, Any], n_chains: int, p: int,
               state: dict[str, np.ndarray], extra: dict[str, np.ndarray] | None = None,
               force: bool = False, chunk_draws: int = 256, theta_dtype: str = "float64") -> ChainWriter:
        """Create a new file holding one run; refuses to overwrite an existing file unless ``force``. ``theta_dtype``
        float32 halves the file of a large model (the sampler state, what resume needs, keeps full precision)."""
        path = Path(path)
        if path.exists() and not force:
            raise StoreError(f"{str(path)!r} already exists; pass --force to overwrite it or --resume to continue it.")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".creating")
        with h5py.File(tmp, "w", libver="latest") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            g = f.create_group(run)
            g.attrs["config"] = json.dumps(config, sort_keys=True)
            g.attrs["package_version"] = __version__
            g.attrs["h5py_version"] = h5py.version.version
            g.attrs["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
            g.attrs["committed_draws"] = 0
            item = np.dtype(theta_dtype).itemsize
            cd = max(1, min(chunk_draws, max(1, 2**20 // max(1, n_chains * p * item))))
            opts = dict(compression="gzip", compression_opts=4, shuffle=True)
            g.create_dataset("theta", shape=(n_chains, 0, p), maxshape=(n_chains, None, p), dtype=theta_dtype,
                             chunks=(n_chains, cd, p), **opts)
            g.create_dataset("energy", shape=(n_chains, 0), maxshape=(n_chains, None), dtype="f8",
                             chunks=(n_chains, max(cd, 256)), **opts)
            g.create_dataset("accepted", shape=(n_chains, 0), maxshape=(n_chains, None), dtype="bool",
                             chunks=(n_chains, max(cd, 256)), **opts)
            for slot in ("slot0", "slot1"):
                s = g.create_group(f"state/{slot}")
                for name, value in state.items():
                    s.create_dataset(name, data=np.asarray(value))
            for name, value in (extra or {}).items():
                g.create_dataset(name, data=np.asarray(value))
            g.create_dataset("commit", data=np.array([0, 0], dtype=np.int64))
        os.replace(tmp, path)
        writer = cls.open(path, run)
        writer.write_state(state, commit=True)
        return writer

    @classmethod
    def open(cls, path: str | os.PathLike, run: str | None = None) -> ChainWriter:
        """Open an existing run for appending, repairing a file left by a killed writer and trimming uncommitted draws."""
        path = Path(path)
        _open_read(path).close()  # clear errors for missing, corrupt and foreign files
        try:
            f = h5py.File(path, "r+", libver="latest")
        except OSError as exc:
            if "already open for write" not in str(exc):
                raise StoreError(f"{str(path)!r} cannot be opened for writing ({exc}).") from None
            repair(path)
            f = h5py.File(path, "r+", libver="latest")
        try:
            run = _pick_run(f, path, run)
            g = f[run]
            committed = int(g["commit"][0])
            for name in _DRAW_DATASETS:
                if g[name].shape[1] != committed:
                    g[name].resize(committed, axis=1)
            g.attrs["committed_draws"] = committed
            f.flush()
            f.swmr_mode = True
        except BaseException:
            f.close()
            raise
        return cls(f, run)

    # -- writing ----------------------------------------------------------------------------------------------------
    def write_state(self, state: dict[str, np.ndarray], commit: bool = True) -> None:
        """Write ``state`` into the inactive slot, then (if ``commit``) point the commit record at it."""
        slot = 1 - self._slot
        s = self._g[f"state/slot{slot}"]
        for name in self._state_names:
            s[name][...] = np.asarray(state[name])
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
            for name, block in (("theta", theta), ("energy", energy), ("accepted", accepted)):
                d = self._g[name]
                d.resize(start + k, axis=1)
                d[:, start : start + k] = block
            self._f.flush()
        self.committed_draws += k
        self.write_state(state, commit=True)

    def close(self) -> None:
        """Close the file, then record ``committed_draws`` as an attribute (not writable while in SWMR mode)."""
        if not self._f.id.valid:
            return
        self._f.close()
        with h5py.File(self.path, "r+", libver="latest") as f:
            f[self.run].attrs["committed_draws"] = self.committed_draws

    def __enter__(self) -> ChainWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair(path: str | os.PathLike) -> None:
    """Copy a file left flagged "open for write" by a killed writer into a clean file, atomically replacing it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".repairing")
    with h5py.File(path, "r", swmr=True) as src, h5py.File(tmp, "w", libver="latest") as dst:
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
        except (KeyError, ValueError, OSError) as exc:
            self._f.close()
            raise StoreError(f"run in {str(self.path)!r} is damaged ({exc}); re-create it with `landscape sample`.") \
                from None
        except BaseException:
            self._f.close()
            raise

    @property
    def attrs(self) -> dict[str, Any]:
        return dict(self._g.attrs)

    @property
    def n_chains(self) -> int:
        return int(self._g["theta"].shape[0])

    @property
    def n_params(self) -> int:
        return int(self._g["theta"].shape[2])

    def _select(self, discard: int, thin: int) -> slice:
        if discard < 0 or thin < 1:
            raise StoreError(f"discard must be ≥ 0 and thin ≥ 1, got discard={discard}, thin={thin}.")
        return slice(min(discard, self.committed_draws), self.committed_draws, thin)

    def get(self, name: str, discard: int = 0, thin: int = 1, flat: bool = False) -> np.ndarray:
        """Committed draws of ``theta``, ``energy`` or ``accepted`` as (chains, draws, ...), or flattened."""
        arr = self._g[name][:, self._select(discard, thin)]
        return arr.reshape(-1, *arr.shape[2:]) if flat else arr

    def get_chain(self, discard: int = 0, thin: int = 1, flat: bool = False) -> np.ndarray:
        return self.get("theta", discard, thin, flat)

    def get_energy(self, discard: int = 0, thin: int = 1, flat: bool = False) -> np.ndarray:
        return self.get("energy", discard, thin, flat)

    def read_block(self, name: str, start: int, stop: int) -> np.ndarray:
        """Draws ``start:stop`` (clipped to the committed ones) of every chain."""
        return self._g[name][:, max(0, start) : min(stop, self.committed_draws)]

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
