"""The floors, read from the source: imports only run downward and never in a circle.

core (``bridge.core``) <- rules (``bridge.rules``) <- adapters (``tf_side``, ``pt_side``) <- front (the rest of
``bridge``).  Every import counts, the ones inside functions too: a lazy import upward is still a floor crossed.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

TOPS = ("bridge", "tf_side", "pt_side")


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOPS:
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """First-party modules ``name`` imports, resolved to modules (``from bridge.core import dtypes`` -> the module)."""
    out = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in TOPS:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    out.add(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in TOPS)
    out.discard(name)
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def floor(name: str) -> str:
    if name == "bridge.core" or name.startswith("bridge.core."):
        return "core"
    if name == "bridge.rules" or name.startswith("bridge.rules."):
        return "rules"
    if name.split(".")[0] in ("tf_side", "pt_side"):
        return "adapter"
    return "front"


# what each floor may import
ALLOWED = {"core": {"core"}, "rules": {"core", "rules"}, "adapter": {"core", "rules", "adapter"}, "front": None}


def test_the_floors_are_where_the_contract_says() -> None:
    assert floor("bridge.core.model") == "core" and floor("bridge.rules.bert") == "rules"
    assert floor("tf_side.bundle") == "adapter" and floor("bridge.cli") == "front"
    assert {"bridge.core.model", "bridge.rules", "tf_side.bundle", "pt_side.safetensors_io"} <= set(MODULES)


def test_imports_only_run_downward() -> None:
    crossings = []
    for name, deps in GRAPH.items():
        allowed = ALLOWED[floor(name)]
        if allowed is None:
            continue
        for dep in sorted(deps):
            if floor(dep) not in allowed:
                crossings.append(f"{name} ({floor(name)}) imports {dep} ({floor(dep)})")
            elif floor(name) == floor(dep) == "adapter" and dep.split(".")[0] != name.split(".")[0]:
                crossings.append(f"{name} imports the other adapter's {dep}")
    assert crossings == []


def test_no_import_circles() -> None:
    # a package importing its own submodules (``bridge.rules`` listing its packs) is how a registry reads them
    edges = {n: {d for d in deps if not d.startswith(n + ".")} for n, deps in GRAPH.items()}
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                circles.append(path[path.index(dep) :] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert circles == []


# Generic modules: a family plugs in through its pack (bridge.core.packs.RulePack), never by name here.
GENERIC = ("bridge.check", "bridge.convert", "bridge.verify", "bridge.core.match")


def test_generic_modules_never_name_a_family() -> None:
    from bridge.rules import packs

    names = {p.name for p in packs()}
    found = []
    for module in GENERIC:
        tree = ast.parse(MODULES[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):  # `plan.pack == "keras"`, `pack.name in ("google-bert", ...)`
                sides = [node.left, *node.comparators]
                if any(isinstance(side, ast.Attribute) and side.attr == "framework" for side in sides):
                    continue  # `ckpt.framework == "keras"` names a framework (a Keras file), not the pack
                for side in sides:
                    values = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                    found += [
                        f"{module}: compares with {v.value!r}"
                        for v in values
                        if isinstance(v, ast.Constant) and v.value in names
                    ]
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "get_pack":
                found += [f"{module}: get_pack({a.value!r})" for a in node.args if isinstance(a, ast.Constant)]
        family_modules = {m for m in MODULES if m.startswith("bridge.rules.") and m != "bridge.rules.user"}
        found += [f"{module} imports {dep}" for dep in GRAPH[module] if dep in family_modules]
    assert found == []
