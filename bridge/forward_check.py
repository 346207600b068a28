"""The steps every family's forward check takes (``bridge/families/<family>/forward_check.py``), written once: the
direction guard, loading the models (a missing framework or a model that cannot be built skips the check, with a
note), and comparing each PyTorch output with the TF reference's.  A family supplies its own pieces: what it
loads, its inputs, its reference forward."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np

from bridge.core.errors import BridgeError
from bridge.core.verify_report import ForwardContext, VerifyReport

Loaded = TypeVar("Loaded")


def transformers_model(ctx: ForwardContext) -> tuple[Any, dict[str, Any]]:
    """The PyTorch side's transformers model and its config.json: the output, or the source with its names
    renamed as ``--strip-prefix``/``--add-prefix`` asked (the names the conversion read it under)."""
    from bridge.core.align import prefix_renaming
    from pt_side.forward import load_transformers_model, torch_state

    side = ctx.out if ctx.to == "pytorch" else ctx.source
    folder = side if side.is_dir() else side.parent
    if ctx.to == "pytorch" or not (ctx.strip_prefix or ctx.add_prefix):
        return load_transformers_model(folder)
    return load_transformers_model(folder, torch_state(ctx.src, prefix_renaming(ctx.strip_prefix, ctx.add_prefix)))


def towards_pytorch_only(report: VerifyReport, ctx: ForwardContext, pack: str) -> bool:
    """A family whose reference runs only on a TF source: towards TensorFlow, values compared only."""
    if ctx.to != "pytorch":
        report.notes.append(f"no forward check for the {pack} rules towards TensorFlow: values compared only")
        return False
    return True


def load_or_skip(report: VerifyReport, load: Callable[[], Loaded]) -> Loaded | None:
    """``load()``'s models and reference (the frameworks imported inside it), or None with the reason noted."""
    try:
        return load()
    except (BridgeError, ImportError) as e:
        report.notes.append(f"forward check skipped: {e}")
        return None


def compare_outputs(report: VerifyReport, tf: Mapping[str, np.ndarray], pt: Mapping[str, np.ndarray]) -> None:
    """Each PyTorch output against the TF reference's output of the same name, at ``report.atol``."""
    for name, value in pt.items():
        report.compare_output(name, tf[name], value)
