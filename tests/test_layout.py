"""The shape of the code: no two likeme modules import each other (imports inside functions count),
using a run never imports training code, and each recipe stays a short file."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "likeme"

# What a user of a trained run loads; none of it may reach likeme.training or likeme.recipes.
INFERENCE = ["likeme.use.generate", "likeme.use.classifier", "likeme.use.embedder", "likeme.use.load", "likeme.check.evaluate",
             "likeme.use.index", "likeme.use.heads", "likeme.models", "likeme.runs", "likeme.data.examples", "likeme.prompts", "likeme.batching", "likeme"]


def modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the likeme modules it imports anywhere in its file. `from likeme import datasets` is an
    edge to likeme.datasets (not to the package), `from likeme.x import y` to likeme.x.y when that is a
    module, else to likeme.x."""
    mods = modules()
    graph = {m: set() for m in mods}
    for m, f in mods.items():
        package = m if f.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != m and t.startswith("likeme"):
                    graph[m].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan's strongly connected
    components of more than one module). Example: {a: {b}, b: {c}, c: {a}, d: {a}} -> [[a, b, c]]"""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_the_cycle_finder_finds_cycles():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_likeme_modules_import_each_other():
    graph = import_graph()
    assert "likeme.recipes.classify" in graph and "likeme.training.trainer" in graph["likeme.recipes.voice"]
    assert cycles(graph) == []


@pytest.mark.parametrize("module", INFERENCE)
def test_using_a_run_imports_no_training_code(module):
    graph = import_graph()
    assert module in graph
    training = {m for m in reachable(graph, module) if m.startswith(("likeme.training", "likeme.recipes"))}
    assert training == set()


def test_recipes_read_in_a_page_or_two():
    for f in (PKG / "recipes").glob("*.py"):
        assert len(f.read_text("utf-8").splitlines()) < 300, f.name
