"""``bridge layouts``: the TF layout names, per direction, and the transformers families each converts.

TensorFlow -> PyTorch: the layouts packs read (``RulePack.docs``); PyTorch -> TensorFlow: the layouts they write
(``RulePack.tf``), the names ``--target`` takes.  Both come from the packs, as ``docs/families.md`` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LayoutRow:
    """One layout name of one direction: what it is in words, the ``model_type`` families it converts."""

    name: str
    layout: str
    model_types: tuple[str, ...]
    default: bool = False  # the layout ``--to tensorflow`` writes for these families when no ``--target`` is given

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layout": self.layout,
            "model_types": list(self.model_types),
            "default": self.default,
        }


@dataclass
class LayoutsReport:
    """Every layout name, per direction; a listing, so always ``ok``."""

    read: list[LayoutRow] = field(default_factory=list)  # TensorFlow -> PyTorch
    written: list[LayoutRow] = field(default_factory=list)  # PyTorch -> TensorFlow

    @property
    def ok(self) -> bool:
        return True

    @property
    def exit_code(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "tensorflow_to_pytorch": [row.to_json() for row in self.read],
            "pytorch_to_tensorflow": [row.to_json() for row in self.written],
        }


def layouts() -> LayoutsReport:
    """The layouts every pack reads and writes."""
    from bridge.rules import packs

    report = LayoutsReport()
    for pack in packs():
        if pack.docs.layout:
            report.read.append(LayoutRow(pack.name, pack.docs.layout, pack.docs.model_types))
        if pack.tf.writes:
            weights = pack.tf.output.weights if pack.tf.output is not None else ""
            words = f"{pack.docs.layout} ({weights})" if pack.docs.layout and weights != pack.docs.layout else weights
            types = pack.tf.model_types if pack.tf.model_types is not None else pack.docs.model_types
            report.written.append(LayoutRow(pack.name, words, tuple(dict.fromkeys(types)), pack.tf.default))
    return report
