"""The house holds: imports run down the floors only, and nothing imports in a circle (see docs/ARCHITECTURE.md).

Floors: the core ``mcmc_landscape`` (1); ``analysis`` and ``dss`` (2, not importing each other); the front door
``landscape_cli`` (3). Every import of every project module counts, lazy ones inside functions included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
