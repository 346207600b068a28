"""A source folder of two PyTorch networks that one TF checkpoint stores together (a pack's
:class:`~bridge.core.packs.Companion`: ``main/`` and the companion's subfolder, each a transformers
``save_pretrained`` output), read as one PyTorch source: the main network's names as they are, the companion's
under its prefix, the config of both in ``metadata["config"]``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bridge.core.errors import UsageError
from bridge.core.model import Checkpoint
from bridge.core.packs import Companion

FORMAT = "companion-folder"


def companion_of(path: Path) -> Companion | None:
    """The companion a pack declares whose two subfolders ``path`` holds, or None."""
    if not path.is_dir():
        return None
    from bridge.rules import packs

    for pack in packs():
        pair = pack.pt.companion
        if pair is not None and (path / pair.main).is_dir() and (path / pair.folder).is_dir():
            return pair
    return None


def sniff(path: Path) -> bool:
    return companion_of(path) is not None


def read(path: Path, load: Callable[[Path], Checkpoint]) -> Checkpoint:
    """The two networks as one source, each opened by ``load`` (the format registry's: index only; each network's
    own reader keeps its memory maps)."""
    pair = companion_of(path)
    if pair is None:
        raise UsageError("Not a folder of two networks", path=path, hint="Give each network's folder on its own")
    with ExitStack() as stack:
        main = stack.enter_context(load(path / pair.main))
        companion = stack.enter_context(load(path / pair.folder))
        for part, ckpt in ((pair.main, main), (pair.folder, companion)):
            if ckpt.framework != "pytorch" or "config" not in ckpt.metadata:
                raise UsageError(
                    f"The {pair.main}/ + {pair.folder}/ folder needs a PyTorch network with its config.json in each",
                    path=path / part,
                    detail=f"{part}/ holds a {ckpt.format} checkpoint"
                    + ("" if "config" in ckpt.metadata else " and no config.json"),
                    hint=f"Put each network's save_pretrained output in {pair.main}/ and {pair.folder}/",
                )
        renamed = [
            dataclasses.replace(r, name=pair.prefix + r.name, slot_of=r.slot_of and pair.prefix + r.slot_of)
            for r in companion.values()
        ]
        closers = stack.pop_all()  # the records read from both maps until the source is closed
    return Checkpoint(
        [*main.values(), *renamed],
        format=FORMAT,
        path=str(path),
        files=[*main.files, *companion.files],
        framework="pytorch",
        metadata={
            "config": pair.config(main.metadata["config"], companion.metadata["config"]),
            "parts": {pair.main: main.format, pair.folder: companion.format},
        },
        tied=[*main.tied, *(tuple(pair.prefix + n for n in group) for group in companion.tied)],
        closer=closers.close,
        warnings=[*main.warnings, *companion.warnings],
    )
