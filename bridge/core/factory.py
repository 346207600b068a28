"""User factories: ``FILE.py:FACTORY`` specs loaded and called, with the contract each caller states.

A factory is the user's own code, imported from its file and run on request (``bridge unused``, a
``--target`` twin, a ``--source-model``).  Every error names the file and says what the calling command
expects the factory to return.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bridge.core.errors import UsageError

# What a factory must return, by the command that calls it: the error for a bad spec says the caller's contract.
UNUSED_CONTRACT = (
    "FILE.py:FACTORY is called with no arguments (or rank=, world_size= when it takes them) and returns "
    "(model, batch) or (model, batch, loss_fn); batch may be an iterable of batches (step i uses batch i)"
)
TARGET_CONTRACT = (
    "--target FILE.py:FACTORY is called with no arguments and returns the target model: the PyTorch "
    "twin (a torch.nn.Module), or a Keras model for --to tensorflow"
)
KERAS_MODEL_CONTRACT = (
    "--source-model (or --target) FILE.py:FACTORY is called with no arguments and returns the "
    "Keras model the weights belong to"
)


def defined_callables(path: Path) -> list[str]:
    """Top-level functions and classes a ``.py`` file defines, read with ``ast`` (nothing runs)."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except (OSError, SyntaxError, ValueError):
        return []
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [node.name for node in tree.body if isinstance(node, kinds) and not node.name.startswith("_")]


def _defines(path: Path, limit: int = 12) -> str:
    names = defined_callables(path)
    if not names:
        return "it defines no public function"
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return "it defines " + ", ".join(f"`{n}`" for n in names[:limit]) + more


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _existing(path: Path, contract: str) -> Path:
    """``path``, or the error that names it and the factory contract."""
    from bridge.core.errors import CheckpointNotFound

    if not path.is_file():
        raise CheckpointNotFound(
            "Factory file not found",
            path=path,
            detail="the file does not exist",
            hint=f"Give the path of a .py file. {_sentence(contract)}",
        )
    return path


def load_factory(spec: str, contract: str) -> Callable[..., Any]:
    """``path/to/file.py:factory`` -> the callable (the user's own code, run on request).

    ``contract``: what the calling command expects the factory to return, said in every error.
    """
    path_text, sep, attr = spec.rpartition(":")
    if not sep and spec.endswith(".py"):  # a file, but which function?
        path = _existing(Path(spec), contract)
        detail = f"name the factory: {spec}:NAME; {_defines(path)}"
        raise UsageError("Factory not named", path=path, detail=detail, hint=_sentence(contract))
    if not sep or not path_text or not attr or not attr.isidentifier():
        raise UsageError(
            "Bad factory spec",
            detail=f"got {spec!r}",
            hint=f"Write FILE.py:FACTORY, e.g. my_model.py:build. {_sentence(contract)}",
        )
    path = _existing(Path(path_text), contract)
    name = f"_bridge_unused_factory_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError("Cannot import factory file", path=path, hint=f"Give a .py file. {_sentence(contract)}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # the user's file: report it as bad input
        sys.modules.pop(name, None)
        raise UsageError("Factory file failed to import", path=path, detail=f"{type(e).__name__}: {e}") from e
    factory = getattr(module, attr, None)
    if not callable(factory):
        import difflib

        near = difflib.get_close_matches(attr, defined_callables(path), n=1)
        detail = f"no callable `{attr}`" + (f" (did you mean `{near[0]}`?)" if near else "") + f"; {_defines(path)}"
        raise UsageError("Factory not found", path=path, detail=detail, hint=_sentence(contract))
    return factory  # type: ignore[no-any-return]


def takes_rank(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` accepts ``rank`` and ``world_size`` keywords (named, or through ``**kwargs``)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read (a builtin): called with no arguments
        return False
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {"rank", "world_size"} <= named or any(p.kind == p.VAR_KEYWORD for p in params)


def call_factory(spec: str, *, rank: int = 0, world_size: int = 1) -> tuple[Any, Any, Callable[..., Any] | None]:
    """Run the factory of ``spec``; check it returned (model, batch[, loss_fn])."""
    return build_with(load_factory(spec, UNUSED_CONTRACT), spec, rank=rank, world_size=world_size)


def build_with(
    factory: Callable[..., Any], spec: str, *, rank: int = 0, world_size: int = 1
) -> tuple[Any, Any, Callable[..., Any] | None]:
    """Call a loaded `bridge unused` factory (with ``rank``/``world_size`` when it takes them) and check its result."""
    result = factory(rank=rank, world_size=world_size) if takes_rank(factory) else factory()
    if not isinstance(result, tuple) or len(result) not in (2, 3):
        raise UsageError(
            "Bad factory result",
            detail=f"{spec} returned {type(result).__name__}",
            hint="Return (model, batch) or (model, batch, loss_fn)",
        )
    model, batch = result[0], result[1]
    loss_fn = result[2] if len(result) == 3 else None
    if loss_fn is not None and not callable(loss_fn):
        raise UsageError(
            "Bad factory result", detail="the third element is not callable", hint="Return loss_fn(output, batch)"
        )
    return model, batch, loss_fn


_FACTORY = re.compile(r".+\.py(:[A-Za-z_]\w*)?")


def is_factory(target: str | None) -> bool:
    """Whether ``target`` names a model built by the user's code (``file.py:factory``, or a bare ``file.py``)."""
    return target is not None and _FACTORY.fullmatch(target) is not None
