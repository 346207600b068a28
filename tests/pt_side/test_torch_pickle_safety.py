"""The restricted unpickler's allow-list, pinned, and dangerous globals refused before they run.

Each payload is written by torch.save (zip and legacy containers) from an object whose ``__reduce__``
returns the global under test, and would create a sentinel file when unpickled: ``torch.load(...,
weights_only=False)`` of the same file does create it (the oracle that the payload is live), bridge
refuses it (``UnsafeCheckpoint``; exit 2 from the CLI) and the sentinel never appears.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import os
import pickle
import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.core.errors import UnsafeCheckpoint
from pt_side import restricted_unpickler

FORMATS = ["zip", "legacy"]

# --------------------------------------------------------------------------------- the allow-list, pinned

# Globals the unpickler calls: each resolves to a local function that only describes (never the real one).
ALLOWED_CALLABLES = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch._tensor", "_rebuild_from_type"),
    ("torch", "Size"),
    ("torch", "device"),
    ("_codecs", "encode"),
    *((b, n) for b in ("builtins", "__builtin__") for n in ("set", "frozenset", "slice", "complex")),
}
# Globals used only as tags.
MARKERS = {("torch", "Tensor"), ("torch._tensor", "Tensor"), ("torch.nn.parameter", "Parameter"),
           ("torch.nn", "Parameter")}  # fmt: skip
# Modules whose every attribute is probed: the ones payloads use, and the ones torch.save pickles name.
PROBED_MODULES = [
    "builtins", "io", "os", "posix", "sys", "subprocess", "importlib", "functools", "operator", "runpy", "pickle",
    "_pickle", "copyreg", "codecs", "_codecs", "collections", "shutil", "types", "pathlib", "numpy",
    "torch", "torch._utils", "torch._tensor", "torch.serialization", "torch.storage", "torch.nn",
    "torch.nn.parameter", "torch.cuda",
]  # fmt: skip


def test_allow_list_is_exactly_the_pinned_set():
    assert set(restricted_unpickler.ALLOWED) == ALLOWED_CALLABLES
    assert set(restricted_unpickler.MARKERS) == MARKERS
    for (module, name), fn in restricted_unpickler.ALLOWED.items():
        # A stand-in defined here, never the real global (which would run when the pickle calls it).
        assert fn.__module__ == restricted_unpickler.__name__, (module, name, fn)


def test_every_attribute_of_the_probed_modules_is_refused_or_inert(torch):
    """What _allowed_global accepts, over every name these modules define (``__builtin__`` as builtins):
    pinned callables, pinned markers, or data-only dtype/storage descriptions of torch names."""
    accepted: set[tuple[str, str]] = set()
    for module in PROBED_MODULES:
        names = dir(importlib.import_module(module))
        for spelled in [module, "__builtin__"] if module == "builtins" else [module]:
            for name in names:
                found = restricted_unpickler._allowed_global(spelled, name)
                if found is None:
                    continue
                accepted.add((spelled, name))
                if isinstance(found, restricted_unpickler._Global):
                    assert (spelled, name) in ALLOWED_CALLABLES
                elif isinstance(found, restricted_unpickler._Marker):
                    assert (spelled, name) in MARKERS
                else:
                    assert isinstance(found, (restricted_unpickler.StorageType, restricted_unpickler._DType)), (
                        spelled,
                        name,
                    )
                    assert spelled in ("torch", "torch.cuda", "torch.storage") and not callable(found)
    # The probe reaches every pinned entry (so a new entry in a probed module is seen above).
    assert ALLOWED_CALLABLES | MARKERS <= accepted


# --------------------------------------------------------------------------------- dangerous globals


class Reduce:
    """Pickles as the call ``fn(*args)``, as a malicious object's ``__reduce__`` does; ``fn`` may itself be a
    Reduce (its result is then what is called)."""

    def __init__(self, fn: Any, *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.fn, self.args

    def __call__(self, *args: Any) -> Any:  # pickle wants the reduce position callable; never called here
        raise AssertionError("a payload is only ever unpickled")


def _code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


def _inner_file(torch, marker: Path, style: str) -> Path:
    """A second torch.save file whose pickle runs os.system: what the torch.load-style globals load."""
    path = marker.with_name(f"inner-{style}.pt")
    torch.save({"x": Reduce(os.system, _touch(marker))}, path, _use_new_zipfile_serialization=style == "zip")
    return path


# name -> builder(g, marker, torch, style): g(name) is the global, pickled under exactly that name.
Builder = Callable[[Callable[[str], Any], Path, Any, str], Any]
PAYLOADS: dict[str, Builder] = {
    "builtins.eval": lambda g, m, torch, style: Reduce(g("builtins.eval"), _code(m)),
    "builtins.exec": lambda g, m, torch, style: Reduce(g("builtins.exec"), _code(m)),
    "builtins.compile": lambda g, m, torch, style: [
        code := Reduce(g("builtins.compile"), _code(m), "<payload>", "exec"), Reduce(exec, code)],
    "builtins.getattr": lambda g, m, torch, style: Reduce(Reduce(g("builtins.getattr"), m, "touch")),
    "builtins.__import__": lambda g, m, torch, style: [
        mod := Reduce(g("builtins.__import__"), "os"), Reduce(Reduce(getattr, mod, "system"), _touch(m))],
    "builtins.open": lambda g, m, torch, style: Reduce(g("builtins.open"), str(m), "w"),
    "io.open": lambda g, m, torch, style: Reduce(g("io.open"), str(m), "w"),
    "os.system": lambda g, m, torch, style: Reduce(g("os.system"), _touch(m)),
    "posix.system": lambda g, m, torch, style: Reduce(g("posix.system"), _touch(m)),
    "os.popen": lambda g, m, torch, style: Reduce(g("os.popen"), _touch(m)),
    "subprocess.Popen": lambda g, m, torch, style: Reduce(g("subprocess.Popen"), ["touch", str(m)]),
    "subprocess.run": lambda g, m, torch, style: Reduce(g("subprocess.run"), ["touch", str(m)]),
    "importlib.import_module": lambda g, m, torch, style: [
        mod := Reduce(g("importlib.import_module"), "os"), Reduce(Reduce(getattr, mod, "system"), _touch(m))],
    "functools.partial": lambda g, m, torch, style: Reduce(g("functools.partial")(os.system, _touch(m))),
    "operator.attrgetter": lambda g, m, torch, style: Reduce(Reduce(g("operator.attrgetter")("touch"), m)),
    "runpy._run_code": lambda g, m, torch, style: Reduce(g("runpy._run_code"), _code(m), {}),
    "pickle.loads": lambda g, m, torch, style: Reduce(g("pickle.loads"), pickle.dumps(Reduce(os.system, _touch(m)))),
    "_pickle.loads": lambda g, m, torch, style: Reduce(g("_pickle.loads"), pickle.dumps(Reduce(os.system, _touch(m)))),
    # With a pickle_module argument torch.load defaults to weights_only=False.
    "torch.load": lambda g, m, torch, style: Reduce(
        g("torch.load"), str(_inner_file(torch, m, style)), None, Reduce(importlib.import_module, "pickle")),
    "torch.serialization.load": lambda g, m, torch, style: Reduce(
        g("torch.serialization.load"), str(_inner_file(torch, m, style)), None,
        Reduce(importlib.import_module, "pickle")),
    "torch.storage._load_from_bytes": lambda g, m, torch, style: Reduce(
        g("torch.storage._load_from_bytes"), _inner_file(torch, m, style).read_bytes()),
}  # fmt: skip


def _global_spelled(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """``g("os.system")``: the global, pickled as exactly that name.  Where pickle would spell the real
    object otherwise (``os.system`` is ``posix.system``, ``builtins.open`` is ``io.open``), a stand-in
    named so is put in its place while the file is written; loading resolves the real one."""

    def g(dotted: str) -> Any:
        module_name, name = dotted.rsplit(".", 1)
        module = importlib.import_module(module_name)
        real = getattr(module, name)
        if f"{real.__module__}.{real.__qualname__}" == dotted:
            return real

        def stand_in(*args: Any, **kwargs: Any) -> Any:
            return real(*args, **kwargs)

        stand_in.__module__, stand_in.__qualname__, stand_in.__name__ = module_name, name, name
        monkeypatch.setattr(module, name, stand_in)
        return stand_in

    return g


def _wait_for(path: Path, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds  # Popen/popen run their command in another process
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return path.exists()


def _as_written(dotted: str, protocol: int) -> tuple[str, str]:
    """(module, name) as the pickle stores the global: protocols below 3 store Python 2 names
    (``builtins`` -> ``__builtin__``, ``subprocess`` -> ``commands``; pickle's fix_imports)."""
    module, name = dotted.rsplit(".", 1)
    if protocol < 3:
        module, name = _compat_pickle.REVERSE_NAME_MAPPING.get(
            (module, name), (_compat_pickle.REVERSE_IMPORT_MAPPING.get(module, module), name)
        )
    return module, name


def _stored(module: str, name: str, protocol: int) -> list[bytes]:
    if protocol < 3:
        return [f"c{module}\n{name}\n".encode()]  # GLOBAL
    return [b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name)]  # STACK_GLOBAL's operands


@pytest.mark.parametrize("protocol", [2, 4])  # torch.save's default, and a Python 3 protocol (no renaming)
@pytest.mark.parametrize("style", FORMATS)
@pytest.mark.parametrize("dotted", sorted(PAYLOADS))
def test_dangerous_global_is_refused_without_running(torch, tmp_path, monkeypatch, style, protocol, dotted):
    marker = tmp_path / "sentinel"
    payload = PAYLOADS[dotted](_global_spelled(monkeypatch), marker, torch, style)
    path = tmp_path / "evil.pt"
    torch.save(
        {"w": torch.ones(2), "evil": payload},
        path,
        _use_new_zipfile_serialization=style == "zip",
        pickle_protocol=protocol,
    )
    monkeypatch.undo()  # the real globals back before anything is loaded
    assert not marker.exists()
    written = _as_written(dotted, protocol)
    data = path.read_bytes()  # data.pkl is stored uncompressed in the zip
    assert all(fragment in data for fragment in _stored(*written, protocol))
    # The message names the Python 3 global the user's own load would call.
    py3 = _compat_pickle.NAME_MAPPING.get(written) or (
        _compat_pickle.IMPORT_MAPPING.get(written[0], written[0]),
        written[1],
    )
    shown = ".".join(py3)

    with pytest.raises(UnsafeCheckpoint) as err:
        bridge.load(path)
    assert f"`{shown}`" in str(err.value) and "evil.pt" in str(err.value)
    result = CliRunner().invoke(cli, ["inspect", str(path)])
    assert result.exit_code == 2, result.output
    assert f"`{shown}`" in result.output and "Traceback" not in result.output
    assert not marker.exists()

    # The oracle: the user's own unrestricted load of the very same file runs the payload.
    evil = torch.load(path, weights_only=False)["evil"]
    if isinstance(evil, subprocess.Popen):
        evil.wait()
    elif hasattr(evil, "close"):  # open()'s file, os.popen's pipe
        evil.close()
    assert _wait_for(marker), f"the {dotted} payload did not run under torch.load(weights_only=False)"


def test_the_payload_list_covers_the_brief():
    """The globals any allow-list must never admit (each has a payload above)."""
    must = {
        "builtins.eval",
        "builtins.exec",
        "builtins.getattr",
        "builtins.__import__",
        "builtins.compile",
        "builtins.open",
        "os.system",
        "posix.system",
        "subprocess.Popen",
        "subprocess.run",
        "importlib.import_module",
        "functools.partial",
        "operator.attrgetter",
        "runpy._run_code",
        "pickle.loads",
        "torch.load",
    }
    assert must <= set(PAYLOADS)
    assert not {tuple(d.rsplit(".", 1)) for d in PAYLOADS} & (ALLOWED_CALLABLES | MARKERS)
