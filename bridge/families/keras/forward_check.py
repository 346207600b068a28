"""The forward half of ``bridge verify`` for the ``keras`` pack: the Keras model and its PyTorch twin.

The twin's ``forward`` takes the Keras model's input as it is (channels last) and returns
what the Keras model returns; one seeded input goes through both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.core.verify_report import ForwardContext, VerifyReport
from bridge.forward_check import compare_outputs, load_or_skip


def keras_forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """Outputs of the Keras side and the PyTorch side compared at ``report.atol``; skipped with a note when
    a model cannot be built (``ctx.target``: the model on the output's side, ``ctx.source_model``: on the source's)."""
    src, dst, to, target, source_model, seed, batch = (
        ctx.src,
        ctx.dst,
        ctx.to,
        ctx.target,
        ctx.source_model,
        ctx.seed,
        ctx.batch,
    )
    keras_ckpt, torch_ckpt = (src, dst) if to == "pytorch" else (dst, src)
    keras_factory, torch_factory = (source_model, target) if to == "pytorch" else (target, source_model)
    keras_option, torch_option = ("--source-model", "--target") if to == "pytorch" else ("--target", "--source-model")
    if torch_factory is None:
        report.notes.append(f"forward check skipped: pass {torch_option} FILE.py:FACTORY (the PyTorch twin)")
        return

    def load() -> tuple[Any, Any, Any, Any, Any]:
        from bridge.families.keras.reference_tf import keras_input, keras_model, keras_output
        from pt_side.forward import torch_module, torch_output

        keras_path = Path(keras_ckpt.path)
        if keras_ckpt.format == "keras-weights" and keras_path.is_dir():
            keras_path = next(keras_path.glob("*.weights.h5"))
        layout = keras_ckpt.metadata.get("layout")
        model = keras_model(keras_path, keras_ckpt.format, layout, keras_factory, keras_option)
        twin = torch_module(torch_factory, torch_ckpt)
        return model, twin, keras_input, keras_output, torch_output

    loaded = load_or_skip(report, load)
    if loaded is None:
        return
    model, twin, keras_input, keras_output, torch_output = loaded
    x = keras_input(model, seed, batch)
    expected, got = keras_output(model, x), torch_output(twin, x)
    if expected.shape != got.shape:
        report.fail_output("output", tuple(got.shape))
        report.notes.append(f"output shapes differ: Keras {expected.shape}, PyTorch {got.shape}")
        return
    compare_outputs(report, {"output": expected}, {"output": got})
