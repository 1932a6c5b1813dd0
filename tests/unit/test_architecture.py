"""The layers of docs/architecture.md hold: no import cycles, and each layer imports only what it may.

Imports are read from the source (every ``import`` and ``from … import``, also those inside
functions), so a lazy import that would close a cycle counts as much as one at the top.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
while not (ROOT / "pyproject.toml").exists():  # the tests may live one folder deeper
    ROOT = ROOT.parent
PACKAGES = {"dynocc": "dynocc", "dynocc.factory": "factory", "dynocc.schemas": "schemas", "dynocc.trainer": "trainer"}

# What each layer of factory/ may import from dynocc itself, and which libraries it must not touch.
LAYER_ALLOWED = {
    "dynocc.factory.core": ("dynocc.factory.core", "dynocc.factory.config"),
    "dynocc.factory.io": ("dynocc.factory.io", "dynocc.factory.core", "dynocc.factory.config", "dynocc.schemas"),
    "dynocc.factory.engine": ("dynocc.factory.engine", "dynocc.factory.io", "dynocc.factory.core",
                              "dynocc.factory.config", "dynocc.schemas"),
    "dynocc.factory.testing": ("dynocc.factory.testing", "dynocc.factory.core", "dynocc.factory.io",
                               "dynocc.factory.config", "dynocc.schemas"),
    "dynocc.schemas": ("dynocc.schemas", "dynocc.factory.io.storage"),  # files are read through io.storage
    "dynocc.trainer": ("dynocc.trainer", "dynocc.factory", "dynocc.schemas"),  # not the CLI package (dynocc/*)
}
CORE_FORBIDDEN_LIBRARIES = ("fsspec", "s3fs", "gcsfs", "pyarrow", "duckdb", "ray", "yt_dlp", "requests", "urllib",
                            "tqdm", "argparse")


def modules() -> dict[str, Path]:
    out = {}
    for package, folder in PACKAGES.items():
        base = ROOT / folder
        for path in base.rglob("*.py"):
            rel = path.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts]) if parts else package] = path
    return out


def imports_of(name: str, path: Path) -> set[str]:
    """Every module name an ``import`` statement in ``path`` names (relative ones resolved)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()  # e.g. "dynocc.factory.core.raft imports fsspec" (weights are read in factory/io/weights.py)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = defaultdict(set)
    for name, path in mods.items():
        for target in imports_of(name, path):
            if target in mods and target != name and not name.startswith(target + "."):
                graph[name].add(target)
            elif target.rsplit(".", 1)[0] in mods and target.rsplit(".", 1)[0] != name:
                parent = target.rsplit(".", 1)[0]
                if not name.startswith(parent + ".") and parent not in PACKAGES:
                    graph[name].add(parent)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_each_layer_imports_only_what_it_may():
    broken = []
    for name, path in modules().items():
        layer = next((layer for layer in LAYER_ALLOWED if name == layer or name.startswith(layer + ".")), None)
        if layer is None:
            continue
        for target in imports_of(name, path):
            if target.startswith("dynocc") and target not in PACKAGES and not target.startswith(LAYER_ALLOWED[layer]):
                if not any(target == p for p in ("dynocc.factory",)):
                    broken.append(f"{name} imports {target}")
    assert broken == []


def test_the_algorithm_layer_touches_no_storage_parquet_ray_or_cli():
    found = set()  # e.g. "dynocc.factory.core.raft imports fsspec" (weights are read in factory/io/weights.py)
    for name, path in modules().items():
        if not name.startswith("dynocc.factory.core"):
            continue
        for target in imports_of(name, path):
            if target.split(".")[0] in CORE_FORBIDDEN_LIBRARIES:
                found.add(f"{name} imports {target.split('.')[0]}")
    assert found == set()
