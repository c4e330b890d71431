"""The census of local minima: which quench end points are the same minimum, how often each basin was hit, whether
the census is complete, and the disconnectivity tree of minima merging as the level rises.

Everything here works on plain data (arrays of end points and energies, barrier rows as dicts), so the same code
serves a network (with the symmetry-aware distance of :mod:`mcmc_landscape.models.symmetry`) and a synthetic landscape
(plain Euclidean distance). The barriers themselves are computed by ``dss.barriers`` and handed over by the front door.

* :func:`cluster_minima`: connected components of the relation "same energy and same function (or same aligned θ)",
  decided on a grid of tolerance-sized cells, so that the result cannot depend on the order of the points.
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


def _cells(values: np.ndarray, tol: float) -> np.ndarray:
    """Integer cells of side ``tol`` on the asinh scale: a width ``tol`` absolute near 0 and relative far from it."""
    return np.floor(np.arcsinh(np.asarray(values, dtype=np.float64)) / tol).astype(np.int64)


def _components(n_nodes: int, edges: np.ndarray) -> tuple[int, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)


def cluster_minima(features: np.ndarray, energies: np.ndarray, theta_tol: float = 1e-3, energy_tol: float = 1e-5,
                   distance: Distance | None = None, outputs: np.ndarray | None = None,
                   output_tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n,) numbered by increasing energy of their representative, and the representatives' row indices (the
    lowest-energy member of each minimum).

    Two points are one minimum when their energies agree and either their ``outputs`` (a function of the point that
    every symmetry leaves alone, e.g. the network's loss on each training point) agree, or, without outputs, their
    ``features`` agree. "Agree" is decided on a grid, never pairwise in some order: each value is put in a cell of
    side ``tol`` on the asinh scale (absolute near 0, relative beyond 1), and points in the same or neighbouring cells
    of every coordinate are joined; minima are the connected components of that relation. With ``distance`` (e.g.
    the aligned distance modulo unit order), the representatives of components whose energies agree are also joined
    when distance ≤ ``theta_tol`` · max(1, their norms). Nothing depends on the order of the rows: shuffling them
    permutes the labels' rows and nothing else."""
    energies = np.asarray(energies, dtype=np.float64)
    n = len(energies)
    if n == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    features = np.asarray(features, dtype=np.float64).reshape(n, -1)
    if outputs is not None:
        key = np.hstack([_cells(energies[:, None], energy_tol),
                         _cells(np.asarray(outputs, dtype=np.float64).reshape(n, -1), output_tol)])
    else:
        key = np.hstack([_cells(energies[:, None], energy_tol), _cells(features, theta_tol)])
    cells, cell_of = np.unique(key, axis=0, return_inverse=True)
    cell_of = cell_of.reshape(-1)
    from scipy.spatial import cKDTree

    pairs = cKDTree(cells.astype(np.float64)).query_pairs(1.0, p=np.inf, output_type="ndarray")
    _, comp = _components(len(cells), pairs)
    comp = comp[cell_of]
    if distance is not None:
        comp = _join_by_distance(comp, features, energies, theta_tol, energy_tol, distance)
    reps = _representatives(comp, features, energies)
    order = np.lexsort((-np.bincount(comp)[comp[reps]], energies[reps]))     # by energy, then the larger basin
    rank = np.empty(len(reps), dtype=int)
    rank[order] = np.arange(len(reps))
    remap = np.full(comp.max() + 1, -1)
    remap[comp[reps]] = rank
    return remap[comp], reps[order]


def _representatives(comp: np.ndarray, features: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Each component's lowest-energy row; equal energies decided by the features (lexicographic), not by order."""
    order = np.lexsort((*features.T[::-1], energies, comp))
    first = np.ones(len(order), dtype=bool)
    first[1:] = comp[order[1:]] != comp[order[:-1]]
    return order[first]


def _join_by_distance(comp: np.ndarray, features: np.ndarray, energies: np.ndarray, theta_tol: float,
                      energy_tol: float, distance: Distance) -> np.ndarray:
    """Components whose representatives' energies agree (neighbouring cells) and whose features are within
    ``theta_tol`` relative under ``distance`` become one."""
    _, comp = np.unique(comp, return_inverse=True)
    reps = _representatives(comp, features, energies)
    ecell = _cells(energies[reps], energy_tol)
    by_e = np.argsort(ecell, kind="stable")
    norms = np.linalg.norm(features[reps], axis=1)
    edges = []
    for a_pos, a in enumerate(by_e):
        for b in by_e[a_pos + 1 :]:
            if ecell[b] - ecell[a] > 1:
                break
            limit = theta_tol * max(1.0, norms[a], norms[b])
            if distance(features[reps[a]], features[reps[b]]) <= limit:
                edges.append((a, b))
    _, joined = _components(len(reps), np.array(edges))
    return joined[comp]


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
    from mcmc_landscape.figures import new_figure

    leaves = tree_leaves_in_order(tree)
    xpos = {leaf: float(k) for k, leaf in enumerate(leaves)}

    def x_of(node: str) -> float:
        if node not in xpos:
            xs = [x_of(c) for c in tree.successors(node)]
            xpos[node] = float(np.mean(xs))
        return xpos[node]

    levels = [tree.nodes[n]["level"] for n in tree]
    top = max(levels) + 0.08 * (max(levels) - min(levels) + 1e-9) if levels else 1.0
    fig = new_figure(figsize=(max(4.0, 0.35 * len(leaves) + 2), 4.5))
    ax = fig.subplots()
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
    return path


def plot_saturation(curve: dict[str, list], path: Path) -> Path:
    """Distinct minima against draws quenched: a curve still rising means the census is not complete."""
    from mcmc_landscape.figures import new_figure

    fig = new_figure(figsize=(5, 3.5))
    ax = fig.subplots()
    ax.plot(curve["quenched"], curve["distinct_in_order"], "-o", ms=3, label="in draw order")
    ax.plot(curve["quenched"], curve["distinct_mean"], "--", label="mean over random orders")
    ax.set_xlabel("draws quenched")
    ax.set_ylabel("distinct minima")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    return path


def plot_flatness(minima: list[dict[str, Any]], path: Path) -> Path | None:
    """Flatness against basin frequency: each minimum's Hessian trace and top eigenvalue (beyond the symmetry orbit)
    against the share of quenches that found it, coloured by the dimension of its flat manifold. Whether wide basins
    are the flat ones is the question this answers."""
    rows = [(m["frequency"], m["shape"].get("trace"), m["shape"].get("top"), m["shape"].get("manifold_dim", 0))
            for m in minima if m.get("shape") and m["shape"].get("trace") is not None]
    if not rows:
        return None
    from mcmc_landscape.figures import new_figure

    freq, trace, top, dim = (np.array(v, dtype=float) for v in zip(*rows, strict=True))
    fig = new_figure(figsize=(8, 3.5))
    axes = fig.subplots(1, 2)
    for ax, val, name in ((axes[0], trace, "Hessian trace"), (axes[1], top, "top Hessian eigenvalue")):
        sc = ax.scatter(freq, np.maximum(val, 1e-12), c=dim, cmap="viridis", s=25, edgecolors="k", linewidths=0.3)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("basin frequency (share of quenches)")
        ax.set_ylabel(name)
    fig.colorbar(sc, ax=axes[1], label="flat dimensions beyond the orbit")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
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
             f"**{c['n_distinct_euclidean']}**. Every draw is quenched from a start that all its symmetric copies "
             "share (signs canonical, ReLU scales balanced inside the box, units sorted), so the count cannot depend "
             "on how the draws are labelled. Two end points are one minimum when their energies agree and their "
             f"functions on {c.get('n_probes', 'the')} probe points agree (each training point's loss"
             f"{'' if not c['settings'].get('probe_grid') else ', and class probabilities on a grid around the data'}"
             "; invariant under every symmetry), or their aligned canonical forms do: connected components of "
             "that relation, decided on a grid of tolerance-sized cells, not in any order. The θ criterion alone "
             f"counts {c.get('n_distinct_theta_only') or 'n/a (computed for at most 300 minima)'}. Tolerances: θ "
             f"{c['settings']['theta_tol']:g}, U {c['settings']['energy_tol']:g}, outputs "
             f"{c['settings'].get('output_tol', float('nan')):g} (cells on the asinh scale: absolute below 1, "
             "relative above).", ""]
    if c.get("saddles"):
        lines += ["Saddles reached (index: count): " + ", ".join(f"{k}: {v}" for k, v in c["saddles"].items()) + ".",
                  ""]
    lines += ["## Distinct minima", "",
              "Kind: the Hessian's null space beyond the symmetry orbit (one direction per ReLU unit's rescaling, "
              "and the logit shift): 0 dimensions is a point, k > 0 a k-dimensional manifold of equal U (dead units, "
              "saturated units, flat valleys). Spectrum of the non-null part: top eigenvalue, trace, log-determinant.",
              "",
              "| # | U | loss U/n | train acc. | frequency [95% CI] | copies | kind | null / orbit | λ top | trace | "
              "log det | box-active | dead units |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in c["minima"]:
        h, sh = m["hessian"], m.get("shape", {})
        fmt = lambda v: "—" if v is None else f"{v:.4g}"  # noqa: E731
        lines.append(f"| {m['id']} | {m['energy']:.6g} | {m['loss']:.4g} | {m.get('train_accuracy', float('nan')):.2f} "
                     f"| {m['frequency']:.4f} [{m['frequency_low']:.4f}, {m['frequency_high']:.4f}] | {m['copies']} "
                     f"| {m.get('kind', '—')} | {sh.get('null_dim', '—')} / {sh.get('orbit_dim', '—')} "
                     f"| {fmt(sh.get('top'))} | {fmt(sh.get('trace'))} | {fmt(sh.get('logdet_nonnull'))} "
                     f"| {h['n_active']} | {m.get('dead_units', 0)} |")
    comp = c.get("completeness")
    if comp:
        ch = comp["chao1"]
        lines += ["", "## Completeness: minima not seen yet", "",
                  f"Of {ch['n']} quenches ending at a minimum, {ch['f1']} minima were hit once and {ch['f2']} twice. "
                  f"Chao1 (bias-corrected) estimates **{ch['estimate']:.1f} minima** in all, "
                  f"[{ch['low']:.1f}, {ch['high']:.1f}] ({100 * ch['confidence']:.0f}% log-normal interval), that is "
                  f"**{ch['unseen']:.1f} not seen yet** among basins this sampler reaches. Good–Turing: the next "
                  f"quench finds a new minimum with probability **{comp['p_new_minimum']:.3f}** (f1 / quenches)."]
    sat = c["saturation"]
    if sat["quenched"]:
        lines += ["", "## Saturation (is the census complete?)", "",
                  "| draws quenched | " + " | ".join(str(k) for k in sat["quenched"]) + " |",
                  "|---|" + "---|" * len(sat["quenched"]),
                  "| distinct (draw order) | " + " | ".join(str(v) for v in sat["distinct_in_order"]) + " |",
                  "| distinct (mean of random orders) | " + " | ".join(f"{v:.1f}" for v in sat["distinct_mean"]) + " |",
                  "", c.get("saturation_verdict", ""), "", "![saturation](saturation.png)", "",
                  "Flatness against basin frequency (Hessian trace and top eigenvalue beyond the symmetry orbit; colour: "
                  "flat dimensions):", "", "![flatness](flatness.png)"]
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
