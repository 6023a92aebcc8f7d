"""The layers hold: `service -> training -> models`, training's rooms in order, and no cycles.

Every `import` counts, those inside functions too: a lazy import hides a cycle from Python, not
from a reader. `make lint` runs this file; the last tests show it failing on a tree that breaks
each rule.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("models", "training", "service")

# Third-party packages models/ may import; everything else it imports must be the stdlib.
MODELS_ALLOWED = {"torch", "numpy", "safetensors"}

# training's rooms, lowest first: each may import only the rooms before it (and models).
TRAINING_RANKS = [
    ("training.errors", "training.settings"),
    ("training.store",),
    ("training.data",),
    ("training.evaluation",),
    ("training.registry",),
    ("training.jobs",),
    ("training.retraining",),
    ("training.cli",),
]


def module_name(root: Path, path: Path) -> str:
    """`training/data/frame.py` -> `training.data.frame`; a package is its `__init__`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Each module `path` imports (resolved to a known module where it is ours) and its line."""
    package = module_name(root, path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from training.data import frame` imports the module training.data.frame.
                sub = f"{base}.{alias.name}"
                yield (sub if sub in known else base), node.lineno


def graph(root: Path) -> dict[str, list[tuple[str, int]]]:
    """Our modules -> the modules they import (ours and third-party), with line numbers."""
    files = {module_name(root, p): p for top in TOP for p in (root / top).rglob("*.py")}
    known = set(files)
    return {name: list(imports_of(root, path, known)) for name, path in files.items()}


def rank(module: str) -> int | None:
    for i, group in enumerate(TRAINING_RANKS):
        if any(module == g or module.startswith(g + ".") for g in group):
            return i
    return None


def layer_violations(root: Path) -> list[str]:
    """Every import that points up or sideways, as `importer:line imports target (why)`."""
    stdlib = sys.stdlib_module_names
    found = []
    for module, targets in graph(root).items():
        top = module.split(".")[0]
        for target, line in targets:
            head = target.split(".")[0]
            where = f"{module}:{line} imports {target}"
            if top == "models" and head not in {"models", "__future__"} | MODELS_ALLOWED:
                if head not in stdlib:
                    found.append(f"{where} (models/ imports only torch, numpy, safetensors)")
                continue
            if top == "models" and head in {"training", "service"}:
                found.append(f"{where} (models/ imports nothing above it)")
            if top == "training" and head == "service":
                found.append(f"{where} (training/ must not import service/)")
            if top == "training" and head == "training":
                mine, theirs = rank(module), rank(target)
                if mine is not None and theirs is not None and theirs > mine:
                    found.append(f"{where} (an upward import between training's rooms)")
    return found


def cycles(root: Path) -> list[list[str]]:
    """Every import cycle among our modules (one representative path per strongly connected set)."""
    imports = graph(root)
    edges = {m: sorted({t for t, _ in ts if t in imports}) for m, ts in imports.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
            if len(component) > 1 or v in edges[v]:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_imports_point_down() -> None:
    assert layer_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert cycles(ROOT) == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for top in TOP:
        (tmp_path / top).mkdir()
        (tmp_path / top / "__init__.py").write_text("")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"models/a.py": "import pandas\n"}, "models/ imports only"),
        ({"models/a.py": "def f():\n    from training import x\n"}, "models/ imports only"),
        ({"training/a.py": "from service import app\n"}, "must not import service"),
        (
            {
                "training/data/a.py": "from training.jobs import pipeline\n",
                "training/jobs/pipeline.py": "",
            },
            "upward import",
        ),
    ],
)
def test_the_check_catches_a_deliberate_violation(
    tmp_path: Path, files: dict[str, str], reason: str
) -> None:
    found = layer_violations(_tree(tmp_path, files))
    assert len(found) == 1 and reason in found[0], found


def test_the_check_catches_a_lazy_import_cycle(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "models/io.py": "def load():\n    from models import esn\n",
            "models/esn.py": "from models.io import load\n",
        },
    )
    assert cycles(root) == [["models.esn", "models.io"]]
