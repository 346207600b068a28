"""Target specs from transformers classes, built on torch's ``meta`` device (no memory, no weights)."""

from __future__ import annotations

from typing import Any

from bridge.errors import MissingDependency, UsageError
from bridge.plan import TargetSpec, TargetTensor


def transformers_spec(class_name: str, config: dict[str, Any]) -> TargetSpec:
    """Names, shapes, dtypes and ties of ``transformers.<class_name>(config)``.

    Ties come from parameter identity after the model's own tying, so they are
    whatever this transformers version does (``_tied_weights_keys`` is a dict in 5.x).
    """
    try:
        import torch
        import transformers
    except ImportError as e:
        raise MissingDependency(
            f"transformers and torch are needed to lay out `{class_name}`",
            hint="pip install 'ckpt-bridge[transformers]'",
        ) from e
    cls = getattr(transformers, class_name, None)
    if cls is None or not hasattr(cls, "config_class"):
        raise UsageError(f"Unknown transformers class '{class_name}'", hint="Pass a class name such as BertModel")
    cfg = cls.config_class(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = cls(cfg)
    owners: dict[int, str] = {}
    tied: dict[str, str] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in owners:
            tied[name] = owners[id(param)]
        else:
            owners[id(param)] = name
    tensors = {
        name: TargetTensor(name, tuple(t.shape), str(t.dtype).removeprefix("torch."), tied.get(name))
        for name, t in model.state_dict(keep_vars=True).items()
    }
    return TargetSpec(
        "pytorch",
        f"transformers {class_name}",
        tensors,
        class_name=class_name,
        config=config,
        base_prefix=getattr(cls, "base_model_prefix", None) or None,
    )
