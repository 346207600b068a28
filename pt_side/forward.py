"""The PyTorch half of forward-pass verification: a transformers model's outputs under neutral names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bridge.core.errors import MissingDependency, UsageError
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint

# transformers output field -> neutral output name, per head.
_HEAD_OUTPUTS = {
    "prediction_logits": "mlm_logits",
    "seq_relationship_logits": "nsp_logits",
}


def load_transformers_model(folder: Path, state_dict: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """The model class named in ``config.json``'s ``architectures``, loaded with ``from_pretrained``: from the
    folder's weights, or from ``state_dict`` (a source whose names transformers would not find as they are)."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as e:
        raise MissingDependency(
            "torch and transformers are needed for the forward check", hint="pip install 'ckpt-bridge[transformers]'"
        ) from e
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise UsageError(
            "No config.json beside the PyTorch weights",
            path=folder,
            hint="A forward check needs the model's class and config",
        )
    config = load_json(config_path.read_bytes(), path=config_path, what="config", hint="Fix or re-save config.json")
    class_name = (config.get("architectures") or ["AutoModel"])[0]
    cls = getattr(transformers, class_name)
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call,unused-ignore]
    if state_dict is None:
        model = cls.from_pretrained(str(folder))
    else:  # transformers refuses a folder and a state dict together: the config alone comes from the folder
        pretrained = transformers.AutoConfig.from_pretrained(str(folder))
        if not hasattr(cls, "config_class"):  # an Auto class loads no state dict without a folder: its model class
            cls = type(cls.from_config(pretrained))
        model = cls.from_pretrained(None, config=pretrained, state_dict=state_dict)
    return model.eval(), config


_COMPARED_HEADS = ("BertForPreTraining", "BertForMaskedLM", "BertLMHeadModel", "BertForNextSentencePrediction")


def transformers_outputs(model: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """sequence_output, pooled_output (if the model has a pooler) and head logits, as numpy."""
    import torch

    feed = {k: torch.from_numpy(v) for k, v in inputs.items()}
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        base = model.base_model(**feed)
        out["sequence_output"] = base.last_hidden_state.numpy()
        if getattr(base, "pooler_output", None) is not None:
            out["pooled_output"] = base.pooler_output.numpy()
        if type(model).__name__ in _COMPARED_HEADS:  # heads the TF reference computes too (not task heads)
            full = model(**feed)
            for field_name, name in _HEAD_OUTPUTS.items():
                value = getattr(full, field_name, None)
                if value is not None:
                    out[name] = value.numpy()
            if type(model).__name__ in ("BertForMaskedLM", "BertLMHeadModel"):
                out["mlm_logits"] = full.logits.numpy()
            if type(model).__name__ == "BertForNextSentencePrediction":
                out["nsp_logits"] = full.logits.numpy()
    return out


def torch_module(factory: str, weights: Checkpoint) -> Any:
    """The twin built by ``file.py:factory`` with the state dict of ``weights`` (already open) loaded strictly."""
    from bridge.core.factory import TARGET_CONTRACT, load_factory

    state = torch_state(weights)
    model = load_factory(factory, TARGET_CONTRACT)()
    model.load_state_dict(state, strict=True)
    return model.eval()


def torch_state(weights: Checkpoint, rename: Callable[[str], str] = str) -> dict[str, Any]:
    """The model tensors of ``weights`` (already open) as torch tensors, each under ``rename`` of its name."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependency("torch is needed for the forward check", hint="pip install torch") from e
    return {rename(r.name): torch.from_numpy(np.array(r.numpy())) for r in weights.values() if r.kind == "model"}


def torch_output(model: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()  # type: ignore[no-any-return]
