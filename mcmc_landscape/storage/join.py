"""The virtual-dataset join: one main file whose run reads as ``(chains, draws, p)`` while its draws stay in the
shard files beside it (h5py's ``VirtualLayout``), rewritten whole and renamed over the old one (never half written).

Knows files and rows only: which file holds which rows of chains, and how many draws each holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

#: What a reader sees where a shard holds no draw yet.
FILL = {"theta": np.nan, "energy": np.nan, "accepted": False}


class Source(NamedTuple):
    """A shard file (relative to the main file's folder) holding chains ``first`` .. ``first + chains - 1``, with
    ``length`` draws written."""

    file: str
    first: int
    chains: int
    length: int


def write_joined(path: Path, run: str, config: dict[str, Any], n_chains: int, p: int, draws: int,
                 sources: list[Source], table: list[dict[str, Any]], data: tuple[np.ndarray, np.ndarray],
                 state: dict[str, np.ndarray] | None = None) -> None:
    """The main file of a run split over ``sources``, showing ``draws`` draws of every chain; ``table`` (the shard
    plan, as JSON) is stored with it."""
    import h5py

    from mcmc_landscape.storage.store import write_run_header

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".joining")
    with h5py.File(tmp, "w", libver="latest", locking=False) as f:
        g = write_run_header(f, run, config, draws)
        g.attrs["shard_table"] = json.dumps(table)
        shapes = {"theta": ((n_chains, draws, p), "f8"), "energy": ((n_chains, draws), "f8"),
                  "accepted": ((n_chains, draws), "bool")}
        for name, (shape, dtype) in shapes.items():
            if draws == 0:
                g.create_dataset(name, shape=shape, dtype=dtype)
                continue
            layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
            for s in sources:
                src_shape = (s.chains, s.length, p) if name == "theta" else (s.chains, s.length)
                # relative: HDF5 finds sources beside the main file, so the pair can be moved together
                source = h5py.VirtualSource(s.file, f"shard/{name}", shape=src_shape)
                layout[s.first : s.first + s.chains, :draws] = source[:, :draws]
            g.create_virtual_dataset(name, layout, fillvalue=FILL[name])
        g.create_dataset("data/x", data=np.asarray(data[0]))
        g.create_dataset("data/y", data=np.asarray(data[1]))
        slot = g.create_group("state/slot0")
        for key, value in (state or {}).items():
            slot.create_dataset(key, data=value)
        g.create_dataset("commit", data=np.array([draws, 0], dtype=np.int64))
    os.replace(tmp, path)
