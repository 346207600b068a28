"""What the packs' torch-free class layouts share (``PyTorchSide.targets``): a class's layout is its family's TF layout
mapped through the pack's rules, then the class's own touches (the base model's names without its prefix, the tied
output embeddings)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bridge.core.transforms import Transform

# PyTorch name -> (shape, the name it is tied to or None)
Layout = dict[str, tuple[tuple[int, ...], str | None]]


def class_layouts(
    classes: Iterable[str], layout: Callable[[str, dict[str, Any]], Layout]
) -> dict[str, Callable[[dict[str, Any]], Layout]]:
    """``PyTorchSide.targets``: each class's ``(config) -> layout``, from the pack's ``layout(class name, config)``."""
    return {name: functools.partial(layout, name) for name in classes}


def mapped(tf_layout: Mapping[str, tuple[int, ...]], map_name: Callable[[str], tuple[str, Transform] | None]) -> Layout:
    """The PyTorch names and shapes a TF layout maps to through the rules (each name's transform sets its shape)."""
    out: Layout = {}
    for name, shape in tf_layout.items():
        target, transform = map_name(name)  # type: ignore[misc]
        out[target] = (transform.shape(shape) or shape, None)
    return out


def unprefixed(layout: Layout, prefix: str) -> Layout:
    """The base model class itself: its names without the base model's prefix (``bert.``)."""
    return {name.removeprefix(prefix): value for name, value in layout.items()}
