"""The code's layout: no import cycles between teachset's modules, no global seeding, small modules."""

import ast
import re
from pathlib import Path

import teachset

ROOT = Path(teachset.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str, modules: set[str]) -> str | None:
    while name and name not in modules:  # `from pkg.mod import function` -> pkg.mod
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Every teachset module -> the teachset modules it imports (at any level, functions included)."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                prefix = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
                targets = [f"{prefix}.{a.name}" for a in node.names]
            for target in targets:
                resolved = _resolve(target, set(files))
                if resolved and resolved != name and resolved.startswith("teachset"):
                    edges.add(resolved)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
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
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_between_modules():
    graph = import_graph()
    # a package's __init__ importing its own modules is how Python packages work, not a cycle of ours
    for name in graph:
        graph[name] = {t for t in graph[name] if not (ROOT.parent / name.replace(".", "/") / "__init__.py").is_file()
                       or not t.startswith(name + ".")}
    assert cycles(graph) == []


def test_no_global_seeding_and_no_global_backend_flags():
    pattern = re.compile(r"torch\.manual_seed|torch\.cuda\.manual_seed|np\.random\.seed|random\.seed\(")
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in ROOT.rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_modules_are_small_enough_to_read():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in ROOT.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 400} == {}
    assert {p: n for p, n in sizes.items() if p.startswith("cli/") and n > 250} == {}


def test_threads_come_from_cores_and_workers_unless_asked(monkeypatch):
    from teachset import threads

    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 8)
    assert [threads.threads_per_worker(w) for w in (1, 2, 3, 16)] == [8, 4, 2, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.threads_per_worker(2) == 3
    monkeypatch.setenv(threads.THREADS_ENV, "5")
    assert threads.threads_per_worker(2) == 5
