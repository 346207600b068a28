"""Target specs from transformers classes, built on torch's ``meta`` device (no memory, no weights)."""

from __future__ import annotations

from typing import Any

from bridge.core.errors import MissingDependency, UsageError
from bridge.core.plan import TargetModule, TargetSpec, TargetTensor


def transformers_class_names() -> list[str] | None:
    """The names transformers exports (read from its lazy module: nothing more is imported), or None
    when it is not installed."""
    try:
        import transformers
    except ImportError:
        return None
    return [n for n in dir(transformers) if n[:1].isupper()]


def _orient_ties(tied: dict[str, str], declared: dict[str, str]) -> None:
    """Point each tie at the tensor transformers declares the source (5.x ``all_tied_weights_keys``:
    ``{tied: source}``), not at whichever came first in module order: CamembertForCausalLM builds ``lm_head``
    before ``roberta``, yet the word embeddings are the weight a checkpoint holds and the decoder the copy."""
    for copy, source in declared.items():
        if tied.get(source) != copy:
            continue  # already pointing at the source (or not a tie by identity here)
        for name, owner in list(tied.items()):
            if owner == copy:
                tied[name] = source
        del tied[source]
        tied[copy] = source


def base_model_prefix(class_name: str) -> str | None:
    """``transformers.<class_name>.base_model_prefix`` (``distilbert``), or None without transformers or the class."""
    try:
        import transformers
    except ImportError:
        return None
    prefix = getattr(getattr(transformers, class_name, None), "base_model_prefix", None)
    return prefix if isinstance(prefix, str) and prefix else None


def transformers_spec(class_name: str, config: dict[str, Any], *, saved: bool = False) -> TargetSpec:
    """Names, shapes, dtypes and ties of ``transformers.<class_name>(config)``; with ``saved``, its tensors as
    its ``save_pretrained`` writes them (transformers 5's conversions reverted: a bank of experts one tensor each).

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
    _orient_ties(tied, getattr(model, "all_tied_weights_keys", None) or {})
    state = model.state_dict(keep_vars=True)
    if saved:
        from transformers.core_model_loading import revert_weight_conversion

        state = revert_weight_conversion(model, state)  # runs on the meta tensors: shapes alone
    tensors = {
        name: TargetTensor(name, tuple(t.shape), str(t.dtype).removeprefix("torch."), tied.get(name))
        for name, t in state.items()
    }
    return TargetSpec(
        "pytorch",
        f"transformers {class_name}",
        tensors,
        class_name=class_name,
        config=config,
        base_prefix=getattr(cls, "base_model_prefix", None) or None,
    )


# torch.nn classes -> the Keras pack's module kinds (bridge/families/keras/pairing.py).
_KINDS = {
    "Linear": "linear", "Conv1d": "conv1d", "Conv2d": "conv2d", "Conv3d": "conv3d",
    "BatchNorm1d": "batch_norm", "BatchNorm2d": "batch_norm", "BatchNorm3d": "batch_norm",
    "LayerNorm": "layer_norm", "Embedding": "embedding", "LSTM": "lstm", "GRU": "gru",
    "MultiheadAttention": "multi_head_attention",  # its out_proj (a Linear subclass) is "other": part of it
}  # fmt: skip
_FACTS = ("eps", "momentum", "num_layers", "bidirectional", "batch_first", "groups", "num_heads")


def module_spec(spec: str) -> TargetSpec:
    """Names, shapes, dtypes and parameter-bearing modules of the ``torch.nn.Module`` that
    ``file.py:factory`` returns (called with no arguments; build it on the ``meta`` device or CPU).

    Modules come in registration order (``named_modules``), each with its kind for structural
    matching: a ``Conv2d`` with ``groups == in_channels > 1`` is depthwise.
    """
    from bridge.core.factory import TARGET_CONTRACT, load_factory

    try:
        import torch
    except ImportError as e:
        raise MissingDependency("torch is needed to build the target model", hint="pip install torch") from e
    model = load_factory(spec, TARGET_CONTRACT)()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(
            "The target factory did not return a torch.nn.Module",
            detail=f"{spec} returned {type(model).__module__}.{type(model).__qualname__}",
            hint="Return the PyTorch twin (an nn.Module) from the factory",
        )
    tensors = {
        name: TargetTensor(name, tuple(t.shape), str(t.dtype).removeprefix("torch."))
        for name, t in model.state_dict(keep_vars=True).items()
    }
    modules = []
    for name, module in model.named_modules():
        if not any(True for _ in module.parameters(recurse=False)):
            continue
        cls = type(module).__name__
        kind = _KINDS.get(cls, "other")
        if kind == "conv2d" and module.groups > 1 and module.groups == module.in_channels:
            kind = "depthwise_conv2d"
        facts = {k: getattr(module, k) for k in _FACTS if isinstance(getattr(module, k, None), (int, float, bool))}
        modules.append(TargetModule(name, kind, cls, facts))
    return TargetSpec("pytorch", f"torch module from {spec}", tensors, class_name=type(model).__name__, modules=modules)


# transformers' auto tables of one class per model type and task, the base model's last
_TASK_TABLES = (
    "MODEL_FOR_PRETRAINING_MAPPING_NAMES",
    "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES",
    "MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING_NAMES",
    "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES",
    "MODEL_MAPPING_NAMES",
)


def model_type_of(class_name: str) -> str | None:
    """``transformers.<class_name>.config_class.model_type`` (``bert``), or None without transformers or the class."""
    try:
        import transformers
    except ImportError:
        return None
    model_type = getattr(getattr(getattr(transformers, class_name, None), "config_class", None), "model_type", None)
    return model_type if isinstance(model_type, str) else None


def class_keeping_every_tensor(model_type: str, names: list[str], config: dict[str, Any]) -> str | None:
    """The class of ``model_type`` whose state dict takes the most of ``names`` (with or without its base-model
    prefix), the smallest such one; None without transformers or a class of that type."""
    try:
        from transformers.models.auto import modeling_auto
    except ImportError:
        return None
    candidates = dict.fromkeys(
        name for table in _TASK_TABLES if isinstance(name := getattr(modeling_auto, table, {}).get(model_type), str)
    )
    best: tuple[int, int, str] | None = None
    for class_name in candidates:
        try:
            spec = transformers_spec(class_name, config)
        except Exception:  # noqa: BLE001 - a class this config cannot build is simply no candidate
            continue
        prefix = f"{spec.base_prefix}." if spec.base_prefix else ""
        kept = sum(n in spec.tensors or prefix + n in spec.tensors for n in names)
        score = (kept, -len(spec.tensors), class_name)
        if best is None or score[:2] > best[:2]:
            best = score
    return best[2] if best is not None and best[0] else None
