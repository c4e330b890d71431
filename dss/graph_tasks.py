"""``dss minima``'s DSS runs as tasks (Dask workers): one pair of minima per task, its string saved to its own file.

A task is a pure function of plain data: the chain file (the task is the sampler's energy on its stored data), the
minima file the coordinator wrote, the pair and the settings. It writes ``strings/l0_<L0>_<i>_<j>.h5`` (the name the
in-process graph uses) and returns that path; a finished string already there with the same settings is committed
work and is returned as is, so a rerun after a lost worker, or a restart, recomputes nothing.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .graph import task_from_chain
from .store import load_string, save_string
from .string import DSSSettings, connect_many, start_string


def string_file(level: float, i: int, j: int) -> str:
    return f"strings/l0_{level:g}_{i:03d}_{j:03d}.h5"


def connect_minima_pair(chain_file: str, run: str | None, minima_file: str, out: str, i: int, j: int,
                        settings_d: dict[str, Any]) -> str:
    """Connect minima ``i`` and ``j`` at ``settings_d['l0']``; returns the string file's path."""
    from mcmc_landscape.storage.store import ChainReader

    with ChainReader(chain_file, run) as reader:
        task = task_from_chain(reader.config, reader.extra("data/x"), reader.extra("data/y"))
    settings = DSSSettings(**settings_d)
    path = Path(out) / string_file(settings.l0, i, j)
    config = {"task": task.config(), "settings": asdict(settings), "pair": [i, j]}
    if path.exists():
        st, stored, _ = load_string(path)
        if st.finished and json.dumps(stored, sort_keys=True, default=float) == json.dumps(config, sort_keys=True,
                                                                                           default=float):
            return str(path)
    minima = np.load(minima_file)
    st = start_string(task, minima[i], minima[j], settings)
    connect_many(task, [st], settings)
    save_string(path, st, config, st.outcome(settings))
    return str(path)
