"""transformers 5 -> KerasHub presets: the TF-side layout, class and preset JSON files of a transformers source.

The layout is the inverse of the per-family tables of :mod:`.data`: every entry's Keras variable path (a layer's
index as the ``_<k>`` suffix Keras 3 gives a model's later layers of one class), its shape computed from the
transformers tensor (the einsum kernels split by ``head_dim``), so :func:`bridge.families.keras_hub.pack.bind`
spells the same exact reshapes both ways and a round trip is bit-exact.  A family is written when it has a
:class:`Writing` here: the backbone's Keras config from transformers' config, and its module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.core.errors import UsageError
from bridge.core.jsonio import load_json
from bridge.core.keras_hub_preset import TASK_PREFIX
from bridge.families.keras_hub.data import BERT, LLAMA, MISTRAL, QWEN2, Entry, Family

Config = dict[str, Any]
Shapes = dict[str, tuple[int, ...]]

# The versions whose preset layout this module writes (metadata.json names them, as save_to_preset does).
KERAS_VERSION = "3.15.1"
KERAS_HUB_VERSION = "0.32.0"
# Config keys ``from_files`` adds beside a transformers source: its vocab.txt and whether its tokenizer lowercases.
VOCABULARY_KEY = "keras_hub_vocabulary"
LOWERCASE_KEY = "keras_hub_lowercase"


@dataclass(frozen=True)
class Writing:
    """How one family's backbone is written: its module, its config, its task base classes (metadata.json)."""

    family: Family
    module: str  # the backbone's module (config.json's ``module``), its task modules beside it
    keras_config: Callable[[Config], Config]  # transformers config.json -> the backbone's Keras config
    metadata_tasks: tuple[str, ...]  # metadata.json's ``tasks``: the task base classes of the backbone
    tied_path: str | None = None  # the output projection's variable, absent when the embeddings are tied
    task_configs: dict[str, Callable[[Config], Config]] | None = None  # task class -> its own config keys


def _policy(name: str = "float32") -> Config:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def _refuse(config: Config, why: str, hint: str) -> UsageError:
    return UsageError(
        f"This {config.get('model_type')} model cannot be written as a KerasHub preset", detail=why, hint=hint
    )


def _bert(c: Config) -> Config:
    if c.get("position_embedding_type", "absolute") != "absolute":
        raise _refuse(c, f"position_embedding_type {c['position_embedding_type']}", "KerasHub BERT has absolute ones")
    if float(c.get("layer_norm_eps", 1e-12)) != 1e-12:
        raise _refuse(c, f"layer_norm_eps {c['layer_norm_eps']}", "KerasHub BERT's layer norms use 1e-12")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "dropout": c.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": c.get("max_position_embeddings", 512),
        "num_segments": c.get("type_vocab_size", 2),
    }


def _rope_theta(c: Config) -> float:
    rope = c.get("rope_parameters") or {}
    kind = rope.get("rope_type", "default") if isinstance(rope, dict) else "default"
    if kind != "default" or c.get("rope_scaling"):
        raise _refuse(c, f"rope_type {kind}", "Only the default rotary embedding is written today")
    theta = rope.get("rope_theta") if isinstance(rope, dict) else None
    return float(theta if theta is not None else c.get("rope_theta") or 10000.0)


def _head_dim_is_derived(c: Config) -> None:
    derived = c["hidden_size"] // c["num_attention_heads"]
    if c.get("head_dim") not in (None, derived):
        raise _refuse(
            c,
            f"head_dim {c['head_dim']} is not hidden_size / num_attention_heads ({derived})",
            "This KerasHub backbone derives head_dim from hidden_dim",
        )


def _decoder(c: Config) -> Config:
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_hidden_layers"],
        "num_query_heads": c["num_attention_heads"],
        "hidden_dim": c["hidden_size"],
        "intermediate_dim": c["intermediate_size"],
        "rope_max_wavelength": _rope_theta(c),
        "num_key_value_heads": c.get("num_key_value_heads") or c["num_attention_heads"],
        "layer_norm_epsilon": c.get("rms_norm_eps", 1e-6),
        "dropout": c.get("attention_dropout", 0.0),
    }


def _llama(c: Config) -> Config:
    _head_dim_is_derived(c)
    if c.get("attention_bias") or c.get("mlp_bias"):
        raise _refuse(c, "attention_bias or mlp_bias is set", "KerasHub Llama has no biases")
    out = _decoder(c)
    rope = {"rope_position_scaling_factor": 1.0, "rope_frequency_adjustment_factor": None}
    rope |= {"rope_low_freq_factor": None, "rope_high_freq_factor": None, "rope_pretraining_sequence_length": None}
    out = {**{k: out[k] for k in list(out)[:6]}, **rope, **{k: out[k] for k in list(out)[6:]}}
    if c.get("tie_word_embeddings"):  # KerasHub's own get_config leaves it out; its constructor takes it
        out["tie_word_embeddings"] = True
    return out


def _mistral(c: Config) -> Config:
    if c.get("tie_word_embeddings"):
        raise _refuse(c, "tie_word_embeddings is set", "KerasHub Mistral always has its own output projection")
    out = _decoder(c)
    window = c.get("sliding_window") or c.get("max_position_embeddings")
    head_dim = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    extra = {
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": out.pop("num_key_value_heads"),
        "sliding_window": window,
        "head_dim": head_dim,
    }
    eps = out.pop("layer_norm_epsilon")
    dropout = out.pop("dropout")
    return out | extra | {"layer_norm_epsilon": eps, "dropout": dropout}


def _qwen2(c: Config) -> Config:
    _head_dim_is_derived(c)
    out = _decoder(c)
    kv = out.pop("num_key_value_heads")
    return {
        **{k: out[k] for k in ("vocabulary_size", "num_layers", "num_query_heads", "hidden_dim", "intermediate_dim")},
        "rope_max_wavelength": out["rope_max_wavelength"],
        "rope_scaling_factor": 1.0,
        "num_key_value_heads": kv,
        "layer_norm_epsilon": out["layer_norm_epsilon"],
        "dropout": out["dropout"],
        "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        "use_sliding_window_attention": bool(c.get("use_sliding_window", False)),
        "sliding_window_size": c.get("sliding_window") or 32768,
    }


def _text_classifier(c: Config) -> Config:
    labels = c.get("id2label")  # transformers 5 saves the labels, not num_labels
    return {
        "num_classes": len(labels) if isinstance(labels, dict) and labels else c.get("num_labels", 2),
        "activation": "linear",
        "dropout": c.get("classifier_dropout") or c.get("hidden_dropout_prob", 0.1),
    }


_DECODER_TIED = "layers/reversible_embedding/vars/1"
WRITINGS: dict[str, Writing] = {
    w.family.model_type: w
    for w in (
        Writing(
            BERT,
            "keras_hub.src.models.bert",
            _bert,
            ("MaskedLM", "TextClassifier", "TextEmbedder"),
            task_configs={"BertTextClassifier": _text_classifier},
        ),
        Writing(LLAMA, "keras_hub.src.models.llama", _llama, ("CausalLM",), _DECODER_TIED),
        Writing(MISTRAL, "keras_hub.src.models.mistral", _mistral, ("CausalLM",), _DECODER_TIED),
        Writing(QWEN2, "keras_hub.src.models.qwen", _qwen2, ("CausalLM",), _DECODER_TIED),
    )
}
WRITTEN_TYPES = tuple(WRITINGS)


def writing_of(config: Config) -> Writing:
    writing = WRITINGS.get(str(config.get("model_type")))
    if writing is None:
        raise UsageError(
            f"No KerasHub preset is written for the {config.get('model_type')} family",
            detail="config.json's model_type",
            hint=f"KerasHub presets are written for: {', '.join(WRITTEN_TYPES)}",
        )
    return writing


def task_class(writing: Writing, config: Config) -> str | None:
    """The KerasHub task class of the transformers class config.json names, or None (the backbone alone)."""
    saved = config.get("architectures")
    name = saved[0] if isinstance(saved, list) and saved else None
    return next((task for task, cls in writing.family.tasks.items() if cls == name), None)


def _literal(entry: Entry) -> bool:
    """An entry whose source regex is a plain path: the one path written for it."""
    return re.escape(entry.source) == entry.source


def _paths(writing: Writing, config: Config) -> Iterator[tuple[str, str, str]]:
    """(Keras variable path, transformers name without the base prefix, kind) of every variable written."""
    family = writing.family
    for entry in family.entries:
        if "{i}" not in entry.target and _literal(entry):
            if entry.source == writing.tied_path and config.get("tie_word_embeddings"):
                continue
            yield entry.source, entry.target, entry.kind
    for i in range(config["num_hidden_layers"]):
        layer = f"layers/{family.layer}" + (f"_{i}" if i else "")
        for entry in family.entries:
            if "{i}" in entry.target and _literal(entry):
                yield f"{layer}/{entry.source}", entry.target.format(i=i), entry.kind
    if task_class(writing, config) is not None:
        for entry in family.task_entries:
            if _literal(entry):
                yield TASK_PREFIX + entry.source, entry.target, entry.kind


def _tf_shape(kind: str, shape: tuple[int, ...], head_dim: int) -> tuple[int, ...]:
    """The Keras variable's shape for a transformers tensor of ``shape`` (:func:`pack._transform` inverted)."""
    if kind == "dense":
        return shape[::-1]
    if kind == "heads_in":  # [heads * head_dim, hidden] -> [hidden, heads, head_dim]
        return (shape[1], shape[0] // head_dim, head_dim)
    if kind == "heads_out":  # [hidden, heads * head_dim] -> [heads, head_dim, hidden]
        return (shape[1] // head_dim, head_dim, shape[0])
    if kind == "heads_bias":
        return (shape[0] // head_dim, head_dim)
    return shape


def preset_layout(shapes: Shapes, config: Config) -> Shapes:
    """The preset's variables (``task/`` for the task's head) and shapes, computed from the source's tensors."""
    writing = writing_of(config)
    writing.keras_config(config)  # a config the backbone cannot express is refused before any plan
    prefix = writing.family.base_prefix + "."
    by_name = {n.removeprefix(prefix): s for n, s in shapes.items()}
    head_dim = config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]
    layout: Shapes = {}
    missing: list[str] = []
    for path, target, kind in _paths(writing, config):
        if target not in by_name:
            missing.append(target)
            continue
        layout[path] = _tf_shape(kind, by_name[target], head_dim)
    if missing:
        raise UsageError(
            f"The source lacks tensors the KerasHub {writing.family.backbone} has",
            detail=f"{len(missing)} missing: " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""),
            hint=f"Convert from a class that has them ({writing.family.base_class} or one of "
            + ", ".join(writing.family.tasks.values())
            + ")",
        )
    return layout


def preset_class(heads: object, config: Config) -> str:
    """The KerasHub class the preset is loaded as: the task's, else the backbone's."""
    writing = writing_of(config)
    return task_class(writing, config) or writing.family.backbone


def _serialized(module: str, class_name: str, config: Config) -> Config:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": f"keras_hub>{class_name}"}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def preset_files(config: Config, class_name: str) -> dict[str, Any]:
    """What the preset writer needs besides the tensors: the JSON files as ``save_to_preset`` writes them
    (``metadata.json`` less what the tensors give: ``parameter_count``, ``date_saved``) and the vocabulary."""
    writing = writing_of(config)
    backbone = writing.family.backbone
    backbone_config = {"name": _snake(backbone), "trainable": True, "dtype": _policy(), **writing.keras_config(config)}
    stem = _snake(backbone.removesuffix("Backbone"))
    files: dict[str, Any] = {
        "config.json": _serialized(f"{writing.module}.{stem}_backbone", backbone, backbone_config),
        "metadata.json": {
            "keras_version": KERAS_VERSION,
            "keras_hub_version": KERAS_HUB_VERSION,
            "tasks": list(writing.metadata_tasks),
        },
    }
    task = task_class(writing, config)
    if task is not None:
        own = (writing.task_configs or {}).get(task)
        task_config = {
            "backbone": files["config.json"],
            "preprocessor": None,
            "name": _snake(task),
            **(own(config) if own else {}),
        }
        files["task.json"] = _serialized(f"{writing.module}.{_snake(task)}", task, task_config)
        if writing.family.task_entries:  # a task with weights of its own is saved compiled (KerasHub's default)
            files["task_optimizer"] = {"name": "adam", "learning_rate": 5e-5}
    vocabulary = config.get(VOCABULARY_KEY)
    if isinstance(vocabulary, str) and writing.family is BERT:
        files["vocabulary"] = vocabulary
        files["tokenizer.json"] = _serialized(
            f"{writing.module}.bert_tokenizer",
            "BertTokenizer",
            {
                "name": "bert_tokenizer",
                "trainable": True,
                "dtype": _policy("int32"),
                "config_file": "tokenizer.json",
                "vocabulary": None,
                "sequence_length": None,
                "lowercase": bool(config.get(LOWERCASE_KEY, False)),
                "strip_accents": False,
                "split": True,
                "suffix_indicator": "##",
                "oov_token": "[UNK]",
                "special_tokens": None,
                "special_tokens_in_strings": False,
            },
        )
    return {"preset_files": files}


def preset_notes(config: Config) -> list[str]:
    """What a preset computes otherwise than the transformers source, for the plan."""
    act = config.get("hidden_act")
    if config.get("model_type") == "bert" and act not in ("gelu_new", "gelu_pytorch_tanh", None):
        return [
            f"hidden_act {act}: KerasHub BERT computes the tanh form of gelu (gelu_new), about 1e-3 apart in a "
            "forward pass; the values are written exactly"
        ]
    return []


def vocabulary_facts(folder: Path) -> tuple[Config, list[str]]:
    """A transformers directory's WordPiece ``vocab.txt`` (and ``do_lower_case`` of its tokenizer_config.json),
    for the preset's tokenizer assets."""
    vocab = folder / "vocab.txt"
    if not vocab.is_file():
        return {}, []
    facts: Config = {VOCABULARY_KEY: str(vocab)}
    tokenizer = folder / "tokenizer_config.json"
    if tokenizer.is_file() and tokenizer.stat().st_size < 1 << 24:
        value = load_json(tokenizer.read_bytes(), path=tokenizer, what="tokenizer config", hint="Save it again")
        if isinstance(value, dict) and isinstance(value.get("do_lower_case"), bool):
            facts[LOWERCASE_KEY] = value["do_lower_case"]
    return facts, []
