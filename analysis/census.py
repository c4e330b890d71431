"""The census of local minima: which quench end points are the same minimum, how often each basin was hit, whether
the census is complete, and the disconnectivity tree of minima merging as the level rises.

Everything here works on plain data (arrays of end points and energies, barrier rows as dicts), so the same code
serves a network (with the symmetry-aware distance of :mod:`mcmc_landscape.models.symmetry`) and a synthetic landscape
(plain Euclidean distance). The barriers themselves are computed by ``dss.barriers`` and handed over by the front door.

* :func:`cluster_minima`: leader clustering in order of energy: a point joins the first representative within
  ``energy_tol`` in U and ``theta_tol`` in distance (both relative to max(1, size)), else it founds a new minimum.
* :func:`basin_frequency`: share of quenched draws with a Wilson interval (``scipy.stats.binomtest``).
* :func:`saturation_curve`: distinct minima against draws quenched, in draw order and averaged over random orders.
* :func:`disconnectivity_tree`: Kruskal over the barrier edges (the minimax barrier between two minima is the level
  at which their branches join), as a networkx tree; :func:`plot_disconnectivity` draws it, :func:`write_tree` writes
  JSON (node-link) and GraphML.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

Distance = Callable[[np.ndarray, np.ndarray], float]


def euclidean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))


def cluster_minima(features: np.ndarray, energies: np.ndarray, theta_tol: float = 1e-3, energy_tol: float = 1e-5,
                   distance: Distance = euclidean, outputs: np.ndarray | None = None,
                   output_tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) numbered by increasing energy of their representative, and the representatives' row indices (the
    lowest-energy member of each minimum). With ``outputs`` (n, ...), e.g. a network's loss on each training point,
    two points of equal energy whose outputs agree within ``output_tol`` (relative) are also one minimum:
    where minima are flat manifolds rather than points, the θ criterion alone would split one manifold into many."""
    features = np.asarray(features, dtype=np.float64)
    flat_out = None if outputs is None else np.asarray(outputs, dtype=np.float64).reshape(len(energies), -1)
    energies = np.asarray(energies, dtype=np.float64)
    labels = -np.ones(len(energies), dtype=int)
    reps: list[int] = []
    rep_e = np.empty(len(energies))
    for i in np.argsort(energies, kind="stable"):
        k_reps = len(reps)
        cand = np.flatnonzero(np.abs(energies[i] - rep_e[:k_reps]) <= energy_tol * np.maximum(1.0, np.abs(
            rep_e[:k_reps])))
        hit = -1
        if len(cand) and flat_out is not None:
            ro = flat_out[np.asarray(reps)[cand]]
            same = np.abs(ro - flat_out[i]).max(axis=1) <= output_tol * np.maximum(1.0, np.abs(ro).max(axis=1))
            if same.any():
                hit = int(cand[np.argmax(same)])
        if hit < 0 and len(cand):
            rf = features[np.asarray(reps)[cand]]
            limit = theta_tol * np.maximum(1.0, np.linalg.norm(rf, axis=1))
            if distance is euclidean:
                close = np.linalg.norm(rf - features[i], axis=1) <= limit
                hit = int(cand[np.argmax(close)]) if close.any() else -1
            else:
                hit = next((int(c) for c, f, lim in zip(cand, rf, limit, strict=True)
                            if distance(f, features[i]) <= lim), -1)
        if hit >= 0:
            labels[i] = hit
        else:
            labels[i] = len(reps)
            rep_e[len(reps)] = energies[i]
            reps.append(int(i))
    return labels, np.asarray(reps, dtype=int)


def basin_frequency(count: int, total: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(share, low, high): ``count`` of ``total`` quenched draws, with a Wilson score interval."""
    from scipy.stats import binomtest

    if total == 0:
        return float("nan"), float("nan"), float("nan")
    ci = binomtest(int(count), int(total)).proportion_ci(confidence, method="wilson")
    return count / total, float(ci.low), float(ci.high)


def saturation_curve(labels: np.ndarray, n_points: int = 25, n_orders: int = 20, seed: int = 0) -> dict[str, list]:
    """Distinct minima among the first k draws quenched (k on a grid), in draw order and averaged over random orders;
    ``labels`` holds −1 for draws that did not end at a minimum (they count as quenched, not as minima)."""
    labels = np.asarray(labels)
    n = len(labels)
    if n == 0:
        return {"quenched": [], "distinct_in_order": [], "distinct_mean": []}
    ks = np.unique(np.linspace(1, n, min(n_points, n)).round().astype(int))

    def curve(order: np.ndarray) -> np.ndarray:
        seq = labels[order]
        first = np.full(seq.max() + 2 if seq.size else 1, n, dtype=int)
        for pos, lab in enumerate(seq):
            if lab >= 0 and first[lab] == n:
                first[lab] = pos
        firsts = np.sort(first[first < n])
        return np.searchsorted(firsts, ks, side="left")

    rng = np.random.default_rng(seed)
    mean = np.mean([curve(rng.permutation(n)) for _ in range(n_orders)], axis=0)
    return {"quenched": ks.tolist(), "distinct_in_order": curve(np.arange(n)).tolist(),
            "distinct_mean": [float(v) for v in mean]}


def disconnectivity_tree(energies: np.ndarray, edges: list[dict[str, Any]]) -> nx.DiGraph:
    """The tree of minima merging as the level rises: leaves ``m<i>`` (attribute ``energy``), internal nodes ``j<k>``
    (attribute ``level``: the barrier at which their children join) pointing to their children. Edges are rows with
    ``i``, ``j`` and ``barrier``; minima never joined stay separate roots."""
    tree = nx.DiGraph()
    top: dict[int, str] = {}
    parent = list(range(len(energies)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, e in enumerate(energies):
        tree.add_node(f"m{i}", kind="minimum", minimum=i, energy=float(e), level=float(e))
        top[i] = f"m{i}"
    for k, edge in enumerate(sorted(edges, key=lambda r: r["barrier"])):
        a, b = find(edge["i"]), find(edge["j"])
        if a == b:
            continue
        node = f"j{k}"
        level = max(float(edge["barrier"]), tree.nodes[top[a]]["level"], tree.nodes[top[b]]["level"])
        tree.add_node(node, kind="join", level=level, pair=f"{edge['i']}-{edge['j']}")
        tree.add_edge(node, top[a])
        tree.add_edge(node, top[b])
        root = min(a, b)
        parent[max(a, b)] = root
        top[root] = node
    return tree


def tree_leaves_in_order(tree: nx.DiGraph) -> list[str]:
    """Leaves left to right: each join puts its lower branch first, roots by their lowest minimum."""
    def lowest(node: str) -> float:
        return min(tree.nodes[n]["energy"] for n in nx.descendants(tree, node) | {node} if tree.nodes[n]["kind"]
                   == "minimum")

    order: list[str] = []

    def walk(node: str) -> None:
        children = sorted(tree.successors(node), key=lowest)
        if not children:
            order.append(node)
        for c in children:
            walk(c)

    for root in sorted((n for n in tree if tree.in_degree(n) == 0), key=lowest):
        walk(root)
    return order


def plot_disconnectivity(tree: nx.DiGraph, path: Path, title: str = "", ylabel: str = "U") -> Path:
    """The disconnectivity graph: each minimum a line rising from its energy to the level where its branch joins
    another; roots rise to the top of the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    leaves = tree_leaves_in_order(tree)
    xpos = {leaf: float(k) for k, leaf in enumerate(leaves)}

    def x_of(node: str) -> float:
        if node not in xpos:
            xs = [x_of(c) for c in tree.successors(node)]
            xpos[node] = float(np.mean(xs))
        return xpos[node]

    levels = [tree.nodes[n]["level"] for n in tree]
    top = max(levels) + 0.08 * (max(levels) - min(levels) + 1e-9) if levels else 1.0
    fig, ax = plt.subplots(figsize=(max(4.0, 0.35 * len(leaves) + 2), 4.5))
    for node in tree:
        preds = list(tree.predecessors(node))
        y_to = tree.nodes[preds[0]]["level"] if preds else top
        ax.plot([x_of(node)] * 2, [tree.nodes[node]["level"], y_to], color="k", lw=1)
        if tree.nodes[node]["kind"] == "join":
            xs = [x_of(c) for c in tree.successors(node)]
            ax.plot([min(xs), max(xs)], [tree.nodes[node]["level"]] * 2, color="k", lw=1)
    for leaf in leaves:
        ax.plot(xpos[leaf], tree.nodes[leaf]["energy"], "o", ms=3, color="C0")
    ax.set_xticks(range(len(leaves)), [leaf[1:] for leaf in leaves], fontsize=7, rotation=90)
    ax.set_xlabel("minimum")
    ax.set_ylabel(ylabel)
    ax.set_title(title or "disconnectivity graph")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_saturation(curve: dict[str, list], path: Path) -> Path:
    """Distinct minima against draws quenched: a curve still rising means the census is not complete."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(curve["quenched"], curve["distinct_in_order"], "-o", ms=3, label="in draw order")
    ax.plot(curve["quenched"], curve["distinct_mean"], "--", label="mean over random orders")
    ax.set_xlabel("draws quenched")
    ax.set_ylabel("distinct minima")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def minima_graph(energies: np.ndarray, edges: list[dict[str, Any]]) -> nx.Graph:
    """Minima as nodes (``energy``), barrier rows as edges (``barrier``, ``upper_bound``, ``saddle_converged``)."""
    g = nx.Graph()
    for i, e in enumerate(energies):
        g.add_node(f"m{i}", energy=float(e))
    for r in edges:
        g.add_edge(f"m{r['i']}", f"m{r['j']}", barrier=float(r["barrier"]), upper_bound=float(r["upper_bound"]),
                   saddle_converged=bool(r["saddle_converged"]))
    return g


def write_tree(tree: nx.DiGraph, graph: nx.Graph, out: Path, stem: str = "disconnectivity") -> list[Path]:
    """``<stem>.json`` (node-link data of the tree and of the barrier graph) and ``<stem>.graphml`` (the tree) and
    ``barriers.graphml`` (the graph of minima and barriers)."""
    out.mkdir(parents=True, exist_ok=True)
    payload = {"tree": nx.node_link_data(tree, edges="edges"), "barriers": nx.node_link_data(graph, edges="edges")}
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    nx.write_graphml(tree, out / f"{stem}.graphml")
    nx.write_graphml(graph, out / "barriers.graphml")
    return [out / f"{stem}.json", out / f"{stem}.graphml", out / "barriers.graphml"]


def census_report(c: dict[str, Any]) -> str:
    """REPORT.md from the numbers of a census (the dict written as census.json)."""
    kinds = c["kinds"]
    lines = [f"# Census of local minima: {c.get('file', '')}", "",
             f"{c['n_quenched']} draws quenched ({c.get('selection', '')}); every one is accounted for: "
             f"{kinds.get('minimum', 0)} ended at a minimum, {kinds.get('saddle', 0)} at a saddle, "
             f"{kinds.get('not_converged', 0)} did not converge (‖projected ∇U‖ ≥ {c['settings']['tol']:g} after "
             f"{c['settings']['max_iter']} iterations, or stalled).", "",
             f"**{c['n_distinct']} distinct minima modulo symmetry** (hidden-unit permutations, sign flips, positive "
             f"rescaling, logit shift; dead ReLU units silenced), among {c['n_minima']} quenched minima. Plain "
             f"Euclidean clustering of the same end points with the same tolerances counts "
             f"**{c['n_distinct_euclidean']}**. Two end points are one minimum when their energies agree and either "
             "their aligned canonical forms or their losses on every training point (invariant under every "
             "symmetry) agree: minima with flat directions are connected sets, not points, and the θ "
             f"criterion alone (which counts "
             f"{c.get('n_distinct_theta_only') or 'n/a: only computed up to 1000 minima'}) splits them. Tolerances "
             f"(relative): θ {c['settings']['theta_tol']:g}, U {c['settings']['energy_tol']:g}, outputs "
             f"{c['settings'].get('output_tol', float('nan')):g}.", ""]
    if c.get("saddles"):
        lines += ["Saddles reached (index: count): " + ", ".join(f"{k}: {v}" for k, v in c["saddles"].items()) + ".",
                  ""]
    lines += ["## Distinct minima", "",
              "| # | U | loss U/n | train acc. | frequency [95% CI] | copies | Hessian: flat / λ+ min / λ max | "
              "box-active | dead units |", "|---|---|---|---|---|---|---|---|---|"]
    for m in c["minima"]:
        h = m["hessian"]
        lo = "—" if h.get("lowest_positive") is None else f"{h['lowest_positive']:.3g}"
        hi = "—" if h.get("lambda_max") is None else f"{h['lambda_max']:.3g}"
        lines.append(f"| {m['id']} | {m['energy']:.6g} | {m['loss']:.4g} | {m.get('train_accuracy', float('nan')):.2f} "
                     f"| {m['frequency']:.4f} [{m['frequency_low']:.4f}, {m['frequency_high']:.4f}] | {m['copies']} "
                     f"| {h['n_flat']} / {lo} / {hi} | {h['n_active']} | {m.get('dead_units', 0)} |")
    sat = c["saturation"]
    if sat["quenched"]:
        lines += ["", "## Saturation (is the census complete?)", "",
                  "| draws quenched | " + " | ".join(str(k) for k in sat["quenched"]) + " |",
                  "|---|" + "---|" * len(sat["quenched"]),
                  "| distinct (draw order) | " + " | ".join(str(v) for v in sat["distinct_in_order"]) + " |",
                  "| distinct (mean of random orders) | " + " | ".join(f"{v:.1f}" for v in sat["distinct_mean"]) + " |",
                  "", c.get("saturation_verdict", ""), "", "![saturation](saturation.png)"]
    b = c.get("barriers", [])
    lines += ["", "## Barriers", "",
              f"{len(b)} pairs (nearest first, {c.get('pairs_rule', '')}). Upper bound: the maximum of the lowest path "
              "found (string method, every link scanned); saddle: a climbing image from that maximum, used where it "
              "converged (‖∇U‖ below tolerance) without exceeding the bound.", "",
              "| i | j | upper bound | saddle | barrier − U_i | barrier − U_j |", "|---|---|---|---|---|---|"]
    energies = {m["id"]: m["energy"] for m in c["minima"]}
    for r in b:
        sad = "not converged" if r["saddle_energy"] is None else f"{r['saddle_energy']:.6g}"
        lines.append(f"| {r['i']} | {r['j']} | {r['upper_bound']:.6g} | {sad} | {r['barrier'] - energies[r['i']]:.4g} "
                     f"| {r['barrier'] - energies[r['j']]:.4g} |")
    lines += ["", "## Disconnectivity graph", "", "![disconnectivity graph](disconnectivity.png)", "",
              "Numbers: `census.json`; tree and barrier graph: `disconnectivity.json`, `disconnectivity.graphml`, "
              "`barriers.graphml`.", f"Computed in {c.get('seconds', 0):.0f} s.", ""]
    return "\n".join(lines)
