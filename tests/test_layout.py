"""The package's shape, as the redesign promised it: a thin facade, modules
of one job each, no import cycle, integrations on the public API only."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "optical_memory"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _top_level_imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Package modules imported when ``name`` is imported: module-level
    imports only (not inside functions, not under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_pkg else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names)

    visit(tree.body)
    out = set()
    for mod in found:
        # importing a.b.c imports a, a.b and a.b.c
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):
            cand = ".".join(parts[:i])
            if cand in modules and cand != name:
                out.add(cand)
    return out


def test_no_import_cycle_in_the_package():
    modules = _modules()
    graph = {m: _top_level_imports(p, m, modules) for m, p in modules.items()}
    # a package importing its own submodules from __init__ is not a cycle
    for m in graph:
        graph[m] = {d for d in graph[m] if not (m.startswith(d + ".") and
                                                 modules[d].name == "__init__.py")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                return [*stack[stack.index(d):], d]
            if d not in state:
                cycle = dfs(d)
                if cycle:
                    return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = dfs(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_facade_is_thin_and_modules_stay_small():
    assert len((PKG / "memory.py").read_text(encoding="utf-8").splitlines()) <= 300
    big = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not big, f"modules over 600 lines: {big}"


def test_integrations_niah_and_cli_use_the_public_api_only():
    dirs = [ROOT / "integrations", PKG / "niah", PKG / "cli"]
    bad = []
    for d in dirs:
        for path in d.rglob("*.py"):
            if "tests" in path.relative_to(d).parts:
                continue
            text = path.read_text(encoding="utf-8")
            for n, line in enumerate(text.splitlines(), 1):
                if re.search(r"\.store\.\w+\(|\.store\b(?!\s*=)(?![\w.]*import)", line) \
                        and "optical_memory.store" not in line and "--store" not in line \
                        and "c.store" not in line and "config.store" not in line \
                        and "cfg.store" not in line \
                        and not line.lstrip().startswith(("from ", "import ")):  # a module path
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
                if re.search(r"""["'](content_len)["']|meta\[["']memory["']\]""", line):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "private access:\n" + "\n".join(bad)
