"""The level-set connectivity graph of sampled good minima: which of them DSS certifies as joined below each L0.

1. **Minima** from a chain file: draws whose mean loss U/n is below the highest level, spread out by farthest-point
   selection (on the features given: raw θ, or θ canonicalized modulo hidden-unit symmetries by
   :mod:`mcmc_landscape.models.symmetry`), each polished by gradient descent on the
   sampler's own energy (the chain file's data, rotation, activation, layout and box) to α times the lowest level.
2. **Few DSS runs.** A union-find of components; in each wave every component proposes its nearest pair to another
   component whose component pair has not failed (Borůvka), and all proposals are connected together in lockstep.
   A failed pair is retried once from the other side; if that fails too the two components are not tried again at
   this level. N minima need about N runs, not N²; a hard cap of 3N − 1 runs per level holds whatever happens.
3. **Levels**, highest first; an edge certified at a higher level is reused at a lower one when its certified maximum
   and its beads are still ≤ τ·L0 there.
4. **Symmetric copies**: a few minima are also connected to their own copy with two hidden units swapped (and, for
   tanh, one unit's sign flipped), per level.

The DSS side writes the graph (JSON, GraphML, the strings); the analysis side draws it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .optim import train_to
from .store import save_string
from .string import DSSSettings, StringState, connect_many, start_string  # noqa: F401
from .tasks import MLPTask


def task_from_chain(config: dict[str, Any], x: np.ndarray, y: np.ndarray) -> MLPTask:
    """The classifier task of a chain file: the sampler's energy on the stored data, as mean loss U/n."""
    return MLPTask("classifier", tuple(config["widths"]), config["activation"], x, y, x, y, loss="energy",
                   box=float(config["box"]), energy_scale=1.0 / len(y),
                   description=f"classifier of chain file ({config.get('data', '?')}, angle {config.get('angle', 0)}°), "
                               "mean loss U/n",
                   extra={"per_point": True, "arch": config.get("arch")})


def farthest_points(features: np.ndarray, count: int, start: int = 0) -> np.ndarray:
    """Greedy farthest-point selection: each pick is the point farthest from those already picked."""
    n = len(features)
    count = min(count, n)
    picked = [start]
    dist = np.linalg.norm(features - features[start], axis=1)
    for _ in range(count - 1):
        j = int(np.argmax(dist))
        picked.append(j)
        dist = np.minimum(dist, np.linalg.norm(features - features[j], axis=1))
    return np.asarray(picked)


class UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> bool:
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return False
        self.parent[max(ri, rj)] = min(ri, rj)
        return True

    def components(self) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            groups.setdefault(self.find(i), []).append(i)
        return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


@dataclass
class GraphSettings:
    levels: tuple[float, ...]
    alpha: float = 0.95
    tau: float = 1.0
    max_depth: int = 10
    polish_steps: int = 20000
    symmetric: int = 3
    seed: int = 0


def polish(task, theta: np.ndarray, target: float, steps: int,
           lr: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradient descent on the task's loss until each row is ≤ ``target``: (θ, loss, reached)."""
    res = train_to(task, torch.as_tensor(theta, dtype=task.dtype).to(task.device), target, steps, lr)
    return res.theta.cpu().numpy(), res.loss.cpu().numpy(), res.reached.cpu().numpy()


def symmetric_copy(task: MLPTask, theta: np.ndarray) -> np.ndarray:
    """θ with hidden units 0 and 1 of the first layer swapped (and, for tanh, unit 0's sign flipped)."""
    t = task.permute_hidden(torch.as_tensor(theta), 0, [1, 0, *range(2, task.widths[1])]).numpy()
    if task.activation == "tanh":
        w_off, b_off, fan_in, width = task.offsets()[0]
        nw_off, nb_off, _, fan_out = task.offsets()[1]
        W = t[w_off:b_off].reshape(fan_in, width)
        W[:, 0] *= -1
        t[w_off:b_off] = W.ravel()
        t[b_off] *= -1
        V = t[nw_off:nb_off].reshape(width, fan_out)
        V[0] *= -1
        t[nw_off:nb_off] = V.ravel()
    return t


def _edge(st: StringState, i: int, j: int, settings: DSSSettings, level: float, file: str | None) -> dict[str, Any]:
    out = st.outcome(settings)
    return {"i": i, "j": j, "level": level, "connected": out["connected"], "reason": out["reason"],
            "n_beads": out["n_beads"], "length": out["length"], "normalized_length": out["normalized_length"],
            "max_interpolated_loss": out["max_interpolated_loss"], "max_bead_loss": out["max_bead_loss"],
            "grad_steps": out["grad_steps"], "string": file, "path": st.path().tolist(),
            "failed_links": [{k: f[k] for k in ("reason", "max_loss", "t_max")} for f in out["failed_links"]]}


def build_graph(task, minima: np.ndarray, gs: GraphSettings, out: Path | None = None,
                log: Any = None, connect_pairs: Any = None) -> dict[str, Any]:
    """Connect ``minima`` (rows already ≤ α·min(levels)) level by level; returns the graph as plain data.

    ``connect_pairs(batch, settings) -> states`` grows a wave's strings elsewhere (as tasks, one per pair); by default
    they grow here in lockstep."""
    n = len(minima)
    dist = np.linalg.norm(minima[:, None] - minima[None], axis=-1)
    certified: list[dict[str, Any]] = []                 # edges found so far, any level
    levels_out = []
    t_all = time.perf_counter()
    for level in sorted(gs.levels, reverse=True):
        t0 = time.perf_counter()
        settings = DSSSettings(l0=level, alpha=gs.alpha, tau=gs.tau, max_depth=gs.max_depth, seed=gs.seed)
        limit = gs.tau * level
        uf = UnionFind(n)
        edges = []
        for e in certified:                               # reuse what still holds at this level
            if e["max_interpolated_loss"] <= limit and e["max_bead_loss"] <= limit and uf.union(e["i"], e["j"]):
                edges.append({**e, "reused_from": e["level"], "level": level})
        failed_pairs: set[tuple[int, int]] = set()       # component pairs given up at this level
        attempts: list[dict[str, Any]] = []
        runs, cap = 0, 3 * n - 1
        retry: list[tuple[int, int]] = []
        while runs < cap:
            proposals = _proposals(uf, dist, failed_pairs)
            batch = retry + [p for p in proposals if p not in retry and (p[1], p[0]) not in retry]
            batch = batch[: cap - runs]
            if not batch:
                break
            if connect_pairs is not None:
                states = connect_pairs(batch, settings)
            else:
                states = [start_string(task, minima[i], minima[j], settings) for i, j in batch]
                connect_many(task, states, settings)
            runs += len(batch)
            new_retry = []
            for (i, j), st in zip(batch, states, strict=True):
                file = None
                if out is not None:
                    file = f"strings/l0_{level:g}_{i:03d}_{j:03d}.h5"
                    save_string(out / file, st, {"task": task.config(), "settings": asdict(settings), "pair": [i, j]},
                                st.outcome(settings))
                e = _edge(st, i, j, settings, level, file)
                attempts.append(e)
                if e["connected"]:
                    if uf.union(i, j):
                        edges.append(e)
                        certified.append(e)
                elif (j, i) not in [(a["i"], a["j"]) for a in attempts[:-1]]:
                    new_retry.append((j, i))              # once more, from the other side
                else:
                    failed_pairs.add(_key(uf, i, j))
            retry = [(i, j) for i, j in new_retry if uf.find(i) != uf.find(j)]
        comps = uf.components()
        lengths = [e["normalized_length"] for e in edges]
        levels_out.append({
            "l0": level, "limit": limit, "components": comps, "n_components": len(comps),
            "sizes": [len(c) for c in comps], "dss_runs": runs, "run_cap": cap, "edges": edges,
            "failed": [a for a in attempts if not a["connected"]],
            "normalized_length_mean": float(np.mean(lengths)) if lengths else float("nan"),
            "normalized_length_max": float(np.max(lengths)) if lengths else float("nan"),
            "wall_s": time.perf_counter() - t0})
        if log is not None:
            log.info("L0 = %g: %d component(s) %s after %d DSS runs (cap %d), %.1f s", level, len(comps),
                     [len(c) for c in comps], runs, cap, time.perf_counter() - t0)
    return {"n_minima": n, "levels": levels_out, "settings": asdict(gs), "task": task.config(),
            "wall_s": time.perf_counter() - t_all}


def _key(uf: UnionFind, i: int, j: int) -> tuple[int, int]:
    a, b = uf.find(i), uf.find(j)
    return (a, b) if a < b else (b, a)


def _proposals(uf: UnionFind, dist: np.ndarray, failed: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """Borůvka: for every component, its nearest pair to another component not yet given up on."""
    n = len(dist)
    roots = np.array([uf.find(i) for i in range(n)])
    best: dict[int, tuple[float, int, int]] = {}
    for i in range(n):
        for j in np.argsort(dist[i]):
            j = int(j)
            if roots[j] == roots[i] or _key(uf, i, j) in failed:
                continue
            d = float(dist[i, j])
            if roots[i] not in best or d < best[roots[i]][0]:
                best[roots[i]] = (d, i, j)
            break
    pairs, seen = [], set()
    for _, i, j in sorted(best.values()):
        k = _key(uf, i, j)
        if k not in seen:
            seen.add(k)
            pairs.append((i, j))
    return pairs


def connect_symmetric(task, minima: np.ndarray, gs: GraphSettings, out: Path | None = None) -> list[dict[str, Any]]:
    """For the first ``gs.symmetric`` minima: θ against its symmetric copy, at every level."""
    rows = []
    picks = list(range(min(gs.symmetric, len(minima))))
    if not picks:
        return rows
    for level in sorted(gs.levels, reverse=True):
        settings = DSSSettings(l0=level, alpha=gs.alpha, tau=gs.tau, max_depth=gs.max_depth, seed=gs.seed)
        states = [start_string(task, minima[i], symmetric_copy(task, minima[i]), settings) for i in picks]
        connect_many(task, states, settings)
        for i, st in zip(picks, states, strict=True):
            file = None
            if out is not None:
                file = f"strings/symmetric_l0_{level:g}_{i:03d}.h5"
                save_string(out / file, st, {"task": task.config(), "settings": asdict(settings), "symmetric": i},
                            st.outcome(settings))
            rows.append(_edge(st, i, i, settings, level, file))
    return rows


def write_graph(graph: dict[str, Any], minima: np.ndarray, out: Path) -> list[Path]:
    """``graph.json`` (every number) and ``graph.graphml`` (nodes, and edges with their level and numbers), the
    GraphML through networkx."""
    import networkx as nx

    out.mkdir(parents=True, exist_ok=True)
    payload = {**graph, "minima": minima.tolist()}
    (out / "graph.json").write_text(json.dumps(payload, indent=1, default=float))
    g = nx.MultiGraph(id="minima")
    for i, node in enumerate(graph.get("nodes", [{}] * len(minima))):
        g.add_node(f"n{i}", loss=float(node.get("loss", float("nan"))), source_draw=int(node.get("draw", -1)))
    for lv in graph["levels"]:
        for e in lv["edges"]:
            g.add_edge(f"n{e['i']}", f"n{e['j']}", level=float(lv["l0"]),
                       normalized_length=float(e["normalized_length"]), n_beads=int(e["n_beads"]),
                       max_interpolated_loss=float(e["max_interpolated_loss"]), length=float(e["length"]))
    nx.write_graphml(g, out / "graph.graphml")
    return [out / "graph.json", out / "graph.graphml"]
