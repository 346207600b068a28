"""The floors, read from the source: imports only run downward and never in a circle.

core (``bridge.core``) <- rules (``bridge.rules``) <- adapters (``tf_side``, ``pt_side``) <- front (the rest of
``bridge``).  A family folder (``bridge/families/<family>/``) spans floors by role: its pack, config and data on
the rules floor, its ``reference_tf`` a TF adapter, its ``forward_check`` front.  Every import counts, the ones
inside functions too: a lazy import upward is still a floor crossed, except in a doorway (a family's ``hooks``,
:mod:`bridge.rules.writers`), whose functions each import the one module above that they stand for.
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


def _imports(name: str) -> dict[str, str]:
    """First-party modules ``name`` imports, resolved to modules (``from bridge.core import dtypes`` -> the module),
    each with where: "module" (run on import), "lazy" (inside a function only) or "types" (``if TYPE_CHECKING``)."""
    tree = ast.parse(MODULES[name].read_text())
    where: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            where.update({id(n): "lazy" for n in ast.walk(node)})
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            where.update({id(n): "types" for n in ast.walk(node)})
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        found: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in TOPS:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.append(sub if sub in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] in TOPS]
        for dep in found:
            out[dep] = "module" if "module" in (out.get(dep), where.get(id(node), "module")) else where[id(node)]
    out.pop(name, None)
    return out


IMPORTS = {name: _imports(name) for name in MODULES}
GRAPH = {name: set(deps) for name, deps in IMPORTS.items()}

# a family module's floor, by its role (the last part of its name); any other part of a family is rules
FAMILY_ROLES = {"reference_tf": "adapter", "forward_check": "front"}


def _family(name: str) -> str | None:
    """``bridge.families.gpt2`` for ``bridge.families.gpt2.pack``; None outside a family folder."""
    parts = name.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["bridge", "families"] and len(parts) > 2 else None


def _doorway_reaches(name: str) -> tuple[str, ...]:
    """What a doorway's functions may import above its floor (module name prefixes); () for any other module."""
    if name == "bridge.rules.writers":
        return ("tf_side.",)
    family = _family(name)
    return (family + ".",) if family is not None and name == family + ".hooks" else ()


def _upward_by_design(name: str, dep: str) -> bool:
    """A doorway's lazy import of what it stands for: reached when called, as an import string was."""
    return IMPORTS[name][dep] == "lazy" and dep.startswith(_doorway_reaches(name)) if _doorway_reaches(name) else False


def floor(name: str) -> str:
    if name == "bridge.core" or name.startswith("bridge.core."):
        return "core"
    if _family(name) is not None or name == "bridge.families":
        return FAMILY_ROLES.get(name.split(".")[-1], "rules")
    if name == "bridge.rules" or name.startswith("bridge.rules."):
        return "rules"
    if name.split(".")[0] in ("tf_side", "pt_side"):
        return "adapter"
    return "front"


def side(name: str) -> str:
    """An adapter's side: ``tf_side`` or ``pt_side`` (a family's TF reference is on the TF side)."""
    return "tf_side" if _family(name) is not None else name.split(".")[0]


# what each floor may import
ALLOWED = {"core": {"core"}, "rules": {"core", "rules"}, "adapter": {"core", "rules", "adapter"}, "front": None}


def test_the_floors_are_where_the_contract_says() -> None:
    assert floor("bridge.core.model") == "core" and floor("bridge.families.google_bert.pack") == "rules"
    assert floor("tf_side.bundle") == "adapter" and floor("bridge.cli") == "front"
    assert floor("bridge.commands.check") == floor("bridge.cli.options") == "front"
    assert {"bridge.core.model", "bridge.rules", "tf_side.bundle", "pt_side.safetensors_io"} <= set(MODULES)
    # packages by capability keep their floors: a bundle's layers are TF adapter; `unused` has one package per floor
    assert {floor(f"tf_side.bundle.{m}") for m in ("locate", "index", "read", "slices", "checkpoint", "write")} == {
        "adapter"
    }
    unused = ("bridge.unused.dispatch", "bridge.core.unused.report", "pt_side.unused.trace", "tf_side.unused.watch")
    assert [floor(name) for name in unused] == ["front", "core", "adapter", "adapter"]
    assert set(unused) <= set(MODULES) and side("pt_side.unused.trace") == "pt_side"
    gpt2 = "bridge.families.gpt2"
    assert [floor(f"{gpt2}.{role}") for role in ("pack", "hooks", "reference_tf", "forward_check")] == [
        "rules",
        "rules",
        "adapter",
        "front",
    ]
    assert side(f"{gpt2}.reference_tf") == "tf_side" and floor("bridge.families.hf_tf.data.text") == "rules"


def test_imports_only_run_downward() -> None:
    crossings = []
    for name, deps in GRAPH.items():
        allowed = ALLOWED[floor(name)]
        if allowed is None:
            continue
        for dep in sorted(deps):
            if _upward_by_design(name, dep):
                continue
            if floor(dep) not in allowed:
                crossings.append(f"{name} ({floor(name)}) imports {dep} ({floor(dep)})")
            elif floor(name) == floor(dep) == "adapter" and side(dep) != side(name):
                crossings.append(f"{name} imports the other adapter's {dep}")
    assert crossings == []


def test_doorways_reach_up_only_inside_functions() -> None:
    doorways = [name for name in MODULES if _doorway_reaches(name)]
    assert "bridge.rules.writers" in doorways and "bridge.families.gpt2.hooks" in doorways
    eager = [
        f"{name} imports {dep} on import"
        for name in doorways
        for dep, where in IMPORTS[name].items()
        if dep.startswith(_doorway_reaches(name)) and where != "lazy"
    ]
    assert eager == []


def test_no_import_circles() -> None:
    # a package importing its own submodules (``bridge.rules`` listing its packs) is how a registry reads them;
    # not edges either: imports for annotations only, and a doorway's call-time import
    edges = {
        n: {
            d
            for d, where in IMPORTS[n].items()
            if not d.startswith(n + ".") and where != "types" and not _upward_by_design(n, d)
        }
        for n in GRAPH
    }
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
GENERIC = (
    "bridge.commands.plan_request",
    "bridge.commands.inspect",
    "bridge.commands.check",
    "bridge.commands.target",
    "bridge.commands.convert",
    "bridge.commands.verify",
    "bridge.forward_check",
    "bridge.core.match",
    "bridge.core.align",
    "bridge.core.ties",
    "bridge.core.leftovers",
    "bridge.rules.layouts",
    "bridge.rules.writers",
)


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
        family_modules = {m for m in MODULES if _family(m) is not None}
        found += [f"{module} imports {dep}" for dep in GRAPH[module] if dep in family_modules]
    assert found == []
