"""The architecture as a test: imports point one way, no import cycles, a light `atelier --help`.

Layers (DESIGN.md): cli -> demo / api -> orchestration -> evaluation -> jobs -> models / store -> etl
(the raw readers and their schemas, which store checks tables against); models and store never
import each other.
Every import counts, also those inside functions (they are how cycles hide).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("flows", "models", "store", "etl")
RANK = {"flows.cli": 6, "flows.demo": 5, "flows.api": 5, "flows.orchestration": 4, "flows.evaluation": 3, "flows.jobs": 2,
        "models": 1, "store": 1, "etl": 0}  # fmt: skip
FORBIDDEN = {  # lower layers that must not see each other
    "models": ("store", "flows"),
    "store": ("flows", "models"),
    "etl": ("flows", "models", "store"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module of our packages that ``path`` imports (absolute names, any depth)."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base]
            # `from pkg import module` imports the module too
            names += [f"{base}.{a.name}" for a in node.names if (ROOT / Path(*f"{base}.{a.name}".split("."))).with_suffix(".py").exists()
                      or (ROOT / Path(*f"{base}.{a.name}".split(".")) / "__init__.py").exists()]  # fmt: skip
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in PACKAGES}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            modules[_module_name(path)] = path
    return {name: {i for i in _imports(path) if i in modules and i != name} for name, path in modules.items()}


def _layer(module: str) -> str:
    return max((prefix for prefix in RANK if module == prefix or module.startswith(prefix + ".")), key=len)


def test_imports_point_down_the_layers():
    bad = []
    for module, imports in _graph().items():
        if module == "flows":
            continue
        mine = _layer(module)
        for imported in imports:
            theirs = _layer(imported) if imported != "flows" else "flows.jobs"
            if theirs != mine and RANK[theirs] >= RANK[mine]:
                bad.append(f"{module} ({mine}) imports {imported} ({theirs})")
            top, other = module.split(".")[0], imported.split(".")[0]
            if other in FORBIDDEN.get(top, ()):
                bad.append(f"{module} imports {imported}: {top} must not import {other}")
    assert not bad, "\n".join(sorted(bad))


def test_the_demo_is_imported_by_the_cli_only():
    users = sorted(m for m, imports in _graph().items() if any(i.startswith("flows.demo") for i in imports)
                   and not m.startswith(("flows.cli", "flows.demo")))  # fmt: skip
    assert users == []


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize("args", [["--help"], ["sql", "--help"], ["train", "--help"]])
def test_cli_help_imports_no_torch_lancedb_or_sample_generator(args):
    code = ("import sys; from typer.testing import CliRunner; from flows.cli import app; "
            f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output; "
            "import json; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lancedb', 'prefect') "
            "or m.startswith('etl.samples'))))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
