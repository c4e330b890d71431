"""A string in an HDF5 file, saved atomically as it grows, so an interrupted connection resumes where it stopped.

The conventions are those of the chain files: a ``format`` attribute naming the kind of file, its version, the software
version, a creation time and the full configuration as JSON. A save writes the whole string to a temporary file in the
same folder, flushes and fsyncs it, then renames it over the old one: a process killed at any moment leaves either the
previous complete string or the new one, never a mixture. Strings are small (beads × p), so rewriting is cheap.

One writer per string file, as for chain files: every save holds the core's writer lock on ``<file>.lock``, and a
command that grows a string (``landscape dss connect``) holds it for its whole life through :func:`string_lock`, so a
second connect on the same file is refused with one sentence; the lock dies with its holder, even by ``kill -9``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mcmc_landscape import __version__
from mcmc_landscape.errors import StoreError
from mcmc_landscape.storage.locking import WriterLock

from .interpolation import LinkCurve
from .string import Link, StringState

FORMAT = "mcmc-landscape/dss-string"
FORMAT_VERSION = 1
_LINK_INT = ("left", "right", "depth", "parent")
_LINK_FLOAT = ("max_loss", "t_max")


def _ragged(parts: list[np.ndarray], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in parts])
    flat = np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)
    return flat, offsets


def string_lock(path: str | os.PathLike) -> WriterLock:
    """The writer's lock on a string file (``with string_lock(path): ...``); refused while another process holds it."""
    return WriterLock(path, "string file", "wait for that connection to finish or stop it")


def save_string(path: str | os.PathLike, state: StringState, config: dict[str, Any],
                outcome: dict[str, Any] | None = None) -> None:
    """Write ``state`` and its ``config`` to ``path`` atomically (temporary file, fsync, rename), holding the lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with string_lock(path):
        _save_string(path, state, config, outcome)


def _save_string(path: Path, state: StringState, config: dict[str, Any], outcome: dict[str, Any] | None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, software_version=__version__,
                           created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                           config=json.dumps(config), outcome=json.dumps(outcome or {}), finished=state.finished,
                           rounds=state.rounds, grad_steps=state.grad_steps, wall_s=state.wall_s)
            f["beads"] = np.stack(state.beads)
            f["bead_loss"] = np.asarray(state.bead_loss, np.float64)
            f["bead_steps"] = np.asarray(state.bead_steps, np.int64)
            f["bead_link"] = np.asarray(state.bead_link, np.int64)
            f["order"] = np.asarray(state.order, np.int64)
            g = f.create_group("links")
            for key in _LINK_INT:
                g[key] = np.asarray([getattr(lk, key) for lk in state.links], np.int64)
            for key in _LINK_FLOAT:
                g[key] = np.asarray([getattr(lk, key) for lk in state.links], np.float64)
            g["status"] = np.asarray([lk.status for lk in state.links], dtype="S8")
            g["reason"] = np.asarray([lk.reason for lk in state.links], dtype="S12")
            keys = sorted(state.curves)
            c = f.create_group("curves")
            c["link"] = np.asarray(keys, np.int64)
            c["t"], c["offsets"] = _ragged([state.curves[k].t for k in keys], np.float64)
            c["loss"], _ = _ragged([state.curves[k].loss for k in keys], np.float64)
            s = f.create_group("snapshots")
            s["ids"], s["offsets"] = _ragged([np.asarray(x) for x in state.snapshots], np.int64)
            f.flush()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a writer killed mid-write
            stale.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_string(path: str | os.PathLike) -> tuple[StringState, dict[str, Any], dict[str, Any]]:
    """Read a string file: ``(state, config, outcome)``; a clear error for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"string file {str(path)!r} does not exist; check the path or run `landscape dss connect`.")
    try:
        f = h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError):
        raise StoreError(f"{str(path)!r} is not a readable HDF5 file (corrupt or not HDF5); connect again with "
                         "`landscape dss connect --force`.") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise StoreError(f"{str(path)!r} is an HDF5 file but not a DSS string file (no format={FORMAT!r}).")
        try:
            config = json.loads(f.attrs["config"])
            outcome = json.loads(f.attrs.get("outcome", "{}"))
            g = f["links"]
            ints = {k: g[k][()] for k in _LINK_INT}
            floats = {k: g[k][()] for k in _LINK_FLOAT}
            status = [x.decode() for x in g["status"][()]]
            reason = [x.decode() for x in g["reason"][()]]
            links = [Link(int(ints["left"][i]), int(ints["right"][i]), int(ints["depth"][i]), int(ints["parent"][i]),
                          status[i], float(floats["max_loss"][i]), float(floats["t_max"][i]), reason[i])
                     for i in range(len(status))]
            c = f["curves"]
            off = c["offsets"][()]
            ct, cl = c["t"][()], c["loss"][()]
            curves = {}
            for j, k in enumerate(c["link"][()]):
                seg_t, seg_l = ct[off[j] : off[j + 1]], cl[off[j] : off[j + 1]]
                jm = int(np.argmax(np.where(np.isfinite(seg_l), seg_l, np.inf)))
                curves[int(k)] = LinkCurve(seg_t, seg_l, float(seg_t[jm]), float(seg_l[jm]))
            s = f["snapshots"]
            so, sid = s["offsets"][()], s["ids"][()]
            beads = f["beads"][()]
            state = StringState(
                beads=[beads[i].copy() for i in range(beads.shape[0])],
                bead_loss=[float(x) for x in f["bead_loss"][()]],
                bead_steps=[int(x) for x in f["bead_steps"][()]],
                bead_link=[int(x) for x in f["bead_link"][()]],
                order=[int(x) for x in f["order"][()]],
                links=links, curves=curves,
                snapshots=[[int(x) for x in sid[so[j] : so[j + 1]]] for j in range(len(so) - 1)],
                rounds=int(f.attrs["rounds"]), grad_steps=int(f.attrs["grad_steps"]), wall_s=float(f.attrs["wall_s"]),
                finished=bool(f.attrs["finished"]))
        except (KeyError, ValueError, OSError) as exc:
            raise StoreError(f"{str(path)!r} is a damaged DSS string file ({exc}); connect again with --force.") \
                from None
    return state, config, outcome
