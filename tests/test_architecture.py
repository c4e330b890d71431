"""The house holds: imports run down the floors only, and nothing imports in a circle (see docs/ARCHITECTURE.md).

Floors: the core ``mcmc_landscape`` (1); ``analysis`` and ``dss`` (2, not importing each other); the front door
``landscape_cli`` (3). Every import of every project module counts, lazy ones inside functions included.

Inside the core, rooms on floors of their own: the base (``errors``, ``devices``, ``figures``, the package itself),
``data``, ``models``, then ``samplers`` beside ``storage`` and the tools (``optimize``, ``diagnostics`` and any other
module at the core's top), and ``runs`` on top. A room imports only rooms on lower floors (and itself).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from paths import ROOT

FLOORS = {"mcmc_landscape": 1, "analysis": 2, "dss": 2, "landscape_cli": 3}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Project modules imported by ``path`` (absolute and relative, at any depth of the file)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in FLOORS}


def import_graph() -> dict[str, set[str]]:
    files = [p for top in FLOORS for p in (ROOT / top).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for target in _imports(path, name):
            while target and target not in modules:  # `from pkg import name` names an attribute, not a module
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):  # a package's own __init__
                edges.add(target)
        graph[name] = edges
    return graph


#: The core's rooms and their floors; a module at the core's top not named here is a tool (floor 3).
CORE_ROOMS = {"base": 0, "data": 1, "models": 2, "samplers": 3, "storage": 3, "tools": 3, "runs": 4}
BASE = ("mcmc_landscape", "mcmc_landscape.errors", "mcmc_landscape.devices", "mcmc_landscape.figures")


def core_room(module: str) -> str:
    if module in BASE:
        return "base"
    part = module.split(".")[1]
    return part if part in CORE_ROOMS and part not in ("base", "tools") else "tools"


def core_edges() -> list[tuple[str, str, str, str]]:
    """(module, its room, imported module, its room) for every import between two core modules."""
    return [(a, core_room(a), b, core_room(b)) for a, targets in import_graph().items() if a.startswith("mcmc_landscape")
            for b in targets if b.startswith("mcmc_landscape")]


def test_the_core_rooms_import_down_only():
    wrong = [f"{a} ({ra}, floor {CORE_ROOMS[ra]}) imports {b} ({rb}, floor {CORE_ROOMS[rb]})"
             for a, ra, b, rb in core_edges() if ra != rb and CORE_ROOMS[rb] >= CORE_ROOMS[ra]]
    assert not wrong, "core imports that run up or across a floor: " + "; ".join(sorted(wrong))


def test_storage_and_models_know_no_sampler_and_nothing_imports_runs():
    edges = core_edges()
    assert not [(a, b) for a, ra, b, rb in edges if ra == "storage" and rb in ("samplers", "models", "runs")]
    assert not [(a, b) for a, ra, b, rb in edges if ra in ("models", "data") and rb in ("samplers", "storage")]
    assert not [(a, b) for a, ra, b, rb in edges if rb == "runs" and ra != "runs"]
    rooms = {core_room(m) for m in import_graph() if m.startswith("mcmc_landscape")}
    assert rooms == set(CORE_ROOMS), f"rooms found: {sorted(rooms)}"


def test_imports_run_down_the_floors_only():
    wrong = []
    for source, targets in import_graph().items():
        top = source.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != top and FLOORS[other] >= FLOORS[top]:
                wrong.append(f"{source} (floor {FLOORS[top]}) imports {target} (floor {FLOORS[other]})")
    assert not wrong, "imports that run up or across a floor: " + "; ".join(sorted(wrong))


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_the_checker_sees_a_planted_violation(tmp_path, monkeypatch):
    """The two checks above can fail: an upward import and a circle planted in a copy are both reported."""
    import shutil

    for top in FLOORS:
        shutil.copytree(ROOT / top, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "mcmc_landscape" / "planted.py").write_text("from dss import tasks\nfrom . import planted2\n")
    (tmp_path / "mcmc_landscape" / "planted2.py").write_text("def f():\n    from .planted import x\n")
    (tmp_path / "mcmc_landscape" / "storage" / "planted3.py").write_text("from mcmc_landscape.samplers import hmc\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    graph = import_graph()
    assert "dss.tasks" in graph["mcmc_landscape.planted"]
    try:
        test_imports_run_down_the_floors_only()
    except AssertionError as exc:
        assert "mcmc_landscape.planted (floor 1) imports dss.tasks (floor 2)" in str(exc)
    else:
        raise AssertionError("the upward import was not reported")
    try:
        test_no_import_cycles()
    except AssertionError as exc:
        assert "mcmc_landscape.planted -> mcmc_landscape.planted2 -> mcmc_landscape.planted" in str(exc)
    else:
        raise AssertionError("the cycle was not reported")
    try:
        test_the_core_rooms_import_down_only()
    except AssertionError as exc:
        assert "mcmc_landscape.storage.planted3 (storage, floor 3) imports mcmc_landscape.samplers.hmc" in str(exc)
    else:
        raise AssertionError("the storage room importing a sampler was not reported")


def test_help_does_not_import_the_commands():
    """`landscape --help` loads no command module (nor torch, numba or h5py): it stays fast."""
    code = ("import sys, contextlib, io\nfrom landscape_cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'numba', 'h5py', 'dss', 'analysis') "
            "or m in ('landscape_cli.sample', 'landscape_cli.dss')]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]", out


def test_quiet_and_verbose_work_after_the_command(tmp_path):
    from landscape_cli.main import build_parser

    for argv, quiet, verbose in ((["-q", "diagnose", "f.h5"], True, False), (["diagnose", "f.h5", "--quiet"], True, False),
                                 (["diagnose", "f.h5", "-v"], False, True), (["dss", "sweep", "--l0", "1", "-o", "x", "-q"],
                                                                             True, False)):
        args = build_parser(argv[0] if argv[0] != "-q" else argv[1]).parse_args(argv)
        assert (args.quiet, args.verbose) == (quiet, verbose), argv
