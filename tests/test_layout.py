"""The shape of the code, stated by folder (see the README's Architecture):
- `use/` (a finished run at work) and `serve/` never reach `training/`, `recipes/` or `check/`;
- `studio/` never imports `training/`, `recipes/` or `check/` itself: it runs them as `likeme` child processes, and
  reads the recipes' configs through cli/train.py's table;
- `data/` never imports torch, and reaches only `data/`, `errors`, `paths` and `prompts`;
- no two likeme modules import each other, directly or through others (imports inside functions count);
- no `_private` name is imported from another module;
- modules read in a page or two: recipes under 300 lines, CLI modules under 300, every other module under
  450 (the export parsers' locale tables aside)."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "likeme"
LONG_PARSERS = {"data/ingest/whatsapp.py"}  # mostly locale tables: the words of system messages in 20 languages


def in_folder(module: str, *folders: str) -> bool:
    return any(module == f"likeme.{f}" or module.startswith(f"likeme.{f}.") for f in folders)


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


USING = sorted(m for m in modules() if in_folder(m, "use", "serve")) + ["likeme", "likeme.prompts", "likeme.batching",
                                                                       "likeme.models", "likeme.runs"]


def test_every_use_and_serve_module_is_checked():
    assert "likeme.use.generate" in USING and "likeme.serve.app" in USING and "likeme.use.decoding" in USING


@pytest.mark.parametrize("module", USING)
def test_using_a_run_never_reaches_training_or_checking(module):
    bad = {m for m in reachable(import_graph(), module) if in_folder(m, "training", "recipes", "check")}
    assert bad == set()


def test_the_studio_runs_training_and_checking_in_child_processes():
    graph = import_graph()
    studio = [m for m in graph if in_folder(m, "studio")]
    assert "likeme.studio.app" in studio and "likeme.studio.jobs" in studio
    for module in studio:
        direct = {m for m in graph[module] if in_folder(m, "training", "recipes", "check")}
        assert direct == set(), module


def test_data_needs_no_torch():
    graph = import_graph()
    data = [m for m in graph if in_folder(m, "data")]
    assert "likeme.data.examples" in data and "likeme.data.ingest.whatsapp" in data
    allowed = {"likeme.errors", "likeme.paths", "likeme.prompts"}
    for module in data:
        outside = {m for m in reachable(graph, module) if not in_folder(m, "data") and m not in allowed}
        assert outside == set(), module
        tree = ast.parse(modules()[module].read_text("utf-8"))
        heavy = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and any(
            (getattr(n, "module", None) or a.name).split(".")[0] in ("torch", "transformers") for a in n.names)]
        assert heavy == [], module


def private_imports(files) -> list[str]:
    """`from likeme.x import _y` and `x._y` on an imported likeme module: a private name crossing a module.
    Example: "from likeme.use.generate import _Cleaner" -> ["...: from likeme.use.generate import _Cleaner"]"""
    out = []
    for f in files:
        tree = ast.parse(f.read_text("utf-8"))
        mods = set()
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("likeme"):
                for a in n.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        out.append(f"{f.name}:{n.lineno}: from {n.module} import {a.name}")
                    mods.add(a.asname or a.name)
        for n in ast.walk(tree):
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in mods \
                    and n.attr.startswith("_") and not n.attr.startswith("__"):
                out.append(f"{f.name}:{n.lineno}: {n.value.id}.{n.attr}")
    return out


def test_the_private_name_finder_finds_them(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from likeme.use import generate\nfrom likeme.prompts import _x, y\ngenerate._Cleaner\ngenerate.Voice\n")
    assert private_imports([f]) == ["m.py:2: from likeme.prompts import _x", "m.py:3: generate._Cleaner"]


def test_no_private_name_crosses_a_module():
    assert private_imports(sorted(PKG.rglob("*.py"))) == []


def test_modules_read_in_a_page_or_two():
    for f in PKG.rglob("*.py"):
        rel = f.relative_to(PKG).as_posix()
        limit = 300 if rel.startswith(("recipes/", "cli/")) else 450
        if rel not in LONG_PARSERS:
            assert len(f.read_text("utf-8").splitlines()) < limit, rel
