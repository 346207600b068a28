"""What a KerasHub family module declares: its variable table, both config mappings, its tasks and tokenizer.

A variable path is ``layers/<snake_case class>[_<k>]/<attribute path>/vars/<i>`` (Keras 3 numbers a model's second
layer of a class ``_1``); ``{i}`` in a target is the layer's index (no suffix: 0).  A transform kind says how the
value changes: ``dense`` (Keras ``[in, out]`` -> torch ``[out, in]``), ``heads_in`` (an einsum kernel
``[hidden, heads, head_dim]`` -> ``[heads * head_dim, hidden]``), ``heads_out`` (``[heads, head_dim, hidden]`` ->
``[hidden, heads * head_dim]``), ``heads_bias`` (``[heads, head_dim]`` -> ``[heads * head_dim]``), ``same``;
``heads_first_in`` (Gemma's ``[heads, hidden, head_dim]`` -> ``[heads * head_dim, hidden]``);
A head kind ending ``*k`` holds ``k`` slices of ``head_dim`` per head (GPT-NeoX's one query-key-value einsum
kernel ``[hidden, heads, 3 * head_dim]``, whose rows transformers keeps in the same per-head order).
``conv_heads_in`` / ``conv_heads_out`` keep Keras' ``[in, out]`` order (a transformers Conv1D's) and only merge the
head axes.  A kind ending ``@k/n`` makes the value block ``k`` of ``n`` that the writer joins along the target's last
axis (GPT-2's query, key and value side by side in one ``c_attn``); ``@k/n/axis`` joins along ``axis``, and
``@k/key0+key1+.../axis`` joins unequal blocks, sized in proportion to those Keras config keys' values (Phi-3's
``qkv_proj``: ``num_query_heads`` rows of query heads, ``num_key_value_heads`` of key and of value heads).
``@k/n/axis/key`` makes it block ``k`` of ``n`` in each of as many groups along ``axis`` as that Keras config key's
value (transformers' one projection holding per head its query, key and value rows: ``@0/3/0/num_heads``).
A kind with ``%k/n`` before its ``@`` part (``dense%0/2``) is the other way round: the Keras variable (its row)
holds ``n`` equal blocks along its last axis and this target is block ``k`` (KerasHub's Qwen MoE expert bank keeps
each expert's gate and up kernels side by side in one array; several entries name the one variable).
An entry with ``each`` (a Keras config key) is one variable of many targets: its target names ``{e}``, and row ``e``
of the variable's axis 0 (``row(e)``, then the kind) is the target of index ``e`` for each ``e`` below that key's
value; on the way out the targets are stacked back in order (``place(e,n)``): Mixtral's expert bank, one tensor per
expert on disk.
``rows+k``: transformers' tensor has ``k`` leading rows more than KerasHub's (RoBERTa's position table, two rows for
its padding offset): zeros on the way in, dropped on the way out (they are read only at padding positions).
``conv1d`` (Keras ``[width, in, out]`` -> torch ``[out, in, width]``), ``conv2d`` (``[h, w, in, out]`` -> ``[out,
in, h, w]``), ``depthwise2d`` (a depthwise kernel ``[h, w, channels, 1]`` -> ``[channels, 1, h, w]``), ``lead1``
(a leading axis of one more on transformers' side), ``axis1`` (an axis of one more at position 1 on transformers'
side: a depthwise ``Conv1d``'s ``[channels, 1, width]``).  An entry with ``held`` is
held by only the layers of its class that predicate picks from the Keras config (a hybrid backbone's layer
types: its linear-attention layers lack the full-attention variables and the other way round).  A family's layer
classes (``layer`` with ``entries``, then its ``stacks``: an encoder-decoder's decoder blocks) may be nested paths
(``vi_t_encoder/encoder_layers/vi_t_encoder_block``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.core.errors import UsageError

Config = dict[str, Any]

# The config key ``from_files`` adds beside a transformers source: which of its tokenizer files it holds (a family's
# ``picks`` may read it: Llama 3's byte-level BPE, Llama 2's SentencePiece)
TOKENIZER_FILES_KEY = "keras_hub_tokenizer_files"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "merges.txt")


@dataclass(frozen=True)
class Entry:
    """One variable: a regex (fullmatch) over the path, the transformers name (``{i}``: layer index), the kind."""

    source: str
    target: str  # "": a preset variable transformers has no tensor for (dropped on the way in, zeros on the way out)
    kind: str = "same"
    # of a variable without a transformers tensor: its shape, which nothing else gives (or computed from the config)
    shape: tuple[int, ...] | Callable[[Config], tuple[int, ...]] = ()
    each: str = ""  # the Keras config key counting the rows of axis 0 that are targets of their own (``{e}``)
    # of a variable without a transformers tensor that is not zero (a rotary table the layer saves, position ids):
    # its value, from the backbone's Keras config and the shape
    computed: Callable[[Config, tuple[int, ...]], Any] | None = None
    # of an indexed entry: whether layer ``i`` of its class holds it, from the Keras config (none: every layer)
    held: Callable[[Config, int], bool] | None = None

    def shape_for(self, keras: Config) -> tuple[int, ...]:
        return self.shape(keras) if callable(self.shape) else self.shape

    def rows(self, keras: Config) -> tuple[int | None, ...]:
        """The row ``e`` of each of this entry's targets (``None``: the variable is one target, whole)."""
        return tuple(range(int(keras[self.each]))) if self.each else (None,)

    def named(self, row: int | None, i: int = 0) -> str:
        """The target of layer ``i`` (an indexed layer's entry) and row ``row``."""
        return self.target.format(i=i, e=row)


def blocks_of(part: str, keras: Config, rank: int) -> tuple[int, tuple[int, ...], int, bool]:
    """A kind's ``@`` part (``k/n[/axis]`` or ``k/key0+key1+...[/axis]``): block ``k``, the blocks' relative sizes,
    the axis (default the last of a tensor of ``rank``) and whether the blocks are equal."""
    k, blocks, *axis = part.split("/")[:3]
    equal = blocks.isdigit()
    weights = (1,) * int(blocks) if equal else tuple(int(keras[key]) for key in blocks.split("+"))
    return int(k), weights, int(axis[0]) if axis else max(rank - 1, 0), equal


def groups_of(part: str, keras: Config) -> int:
    """The groups a kind's ``@k/n/axis/key`` part interleaves its blocks in (that config key's value; none: 1)."""
    parts = part.split("/")
    return int(keras[parts[3]]) if len(parts) > 3 else 1


def position_ids(keras: Config, shape: tuple[int, ...]) -> Any:
    """An ``Entry.computed`` value: 0..n-1 along the last axis (position ids), int64 as KerasHub saves them."""
    import numpy as np

    return np.broadcast_to(np.arange(shape[-1], dtype=np.int64), shape).copy()


def no_notes(config: Config) -> list[str]:
    return []


@dataclass(frozen=True)
class Writing:
    """How a family's preset is written from transformers: its module, its config, its task base classes."""

    module: str  # the backbone's module (config.json's ``module``), its task and tokenizer modules beside it
    keras_config: Callable[[Config], Config]  # transformers config.json -> the backbone's Keras config
    metadata_tasks: tuple[str, ...]  # metadata.json's ``tasks``: the task base classes of the backbone
    tied_path: str | None = None  # the output projection's variable, absent when the embeddings are tied
    task_configs: Mapping[str, Callable[[Config], Config]] = field(default_factory=dict)  # task -> its own keys
    notes: Callable[[Config], list[str]] = no_notes  # what the preset computes otherwise than the source
    tokenizer: str = ""  # the KerasHub tokenizer class its vocabulary is written for
    tokenizer_config: Config = field(default_factory=dict)  # that tokenizer's config keys of this family
    # a class's module file where it is not the class name in snake case (``ViTBackbone``: ``vit_backbone``)
    files: Mapping[str, str] = field(default_factory=dict)

    def module_of(self, class_name: str) -> str:
        stem = snake(class_name.removesuffix("Backbone")) + "_backbone" if class_name.endswith("Backbone") else ""
        return f"{self.module}.{self.files.get(class_name, stem or snake(class_name))}"


@dataclass(frozen=True)
class LoraSite:
    """One layer LoRA can adapt: its Keras name (what ``enable_lora(target_layer_names=...)`` lists), the
    transformers module of block ``{i}``, and which head count its kernel splits by (``q``, ``kv``, or none);
    ``refused``: why a LoRA there cannot be converted exactly (one library adapts it, the other cannot)."""

    keras: str
    module: str
    heads: str = ""
    refused: str = ""
    # the Keras kernel's kind where the entry's says otherwise (``dense``: a Conv1D weight, stored untransposed)
    kind: str = ""
    # ``"n/k"``: the layer is the n-th of k equal blocks of the module's output (GPT-2's query, key and value in
    # ``c_attn``): their LoRAs are one LoRA there, its ``A`` stacked and its ``B`` block-diagonal
    part: str = ""
    # whether a model of this transformers config has the layer (T5's gate only where its feed-forward is gated)
    held: Callable[[Config], bool] | None = None


@dataclass(frozen=True)
class LoraStack:
    """A further stack of blocks (an encoder-decoder's decoder): the weighted layers between the previous stack's
    last block and its first, its block, and the config keys of its layer count and head counts."""

    between: int
    block: tuple[LoraSite | None, ...]
    counts: tuple[str, str, str]


@dataclass(frozen=True)
class LoraOrder:
    """A backbone's weighted layers in Keras' order (what indexes ``save_lora_weights``' layers): ``before`` of
    them ahead of block 0, then per block ``block`` (``None``: a layer LoRA cannot adapt: the block itself, a norm,
    the attention layer); the config keys of the layer count and the query and key/value head counts.  ``before``
    may depend on the transformers config (a layer present or not)."""

    before: int | Callable[[Config], int]
    block: tuple[LoraSite | None, ...]
    counts: tuple[str, str, str] = ("num_hidden_layers", "num_attention_heads", "num_key_value_heads")
    fan_in_fan_out: bool = False  # the adapted modules are transformers' Conv1D (PEFT's flag for them)
    reverse: bool = False  # the blocks are one layer's sublayers, so Keras walks them last-built first (ViT)
    stacks: tuple[LoraStack, ...] = ()  # further stacks, after the first one's blocks
    # where KerasHub numbers the layers otherwise on another Keras backend: which order is declared, and the fix
    backend: str = ""


def transformer_encoder_lora(
    before: int | Callable[[Config], int],
    stem: str,
    names: dict[str, str],
    counts: tuple[str, str, str],
    stacks: tuple[LoraStack, ...] = (),
    backend: str = "",
) -> LoraOrder:
    """The LoRA order of a backbone of KerasHub's ``TransformerEncoder`` blocks, their modules named by ``names``."""
    return LoraOrder(
        before,
        (
            None,  # the encoder block
            LoraSite("feedforward_output_dense", stem + names["ffn_out"]),
            LoraSite("feedforward_intermediate_dense", stem + names["ffn_in"]),
            None,  # feedforward_layer_norm
            None,  # self_attention_layer_norm
            None,  # self_attention_layer
            LoraSite("attention_output", stem + names["output"], "q"),
            LoraSite("value", stem + names["value"], "kv"),
            LoraSite("key", stem + names["key"], "kv"),
            LoraSite("query", stem + names["query"], "q"),
        ),
        counts,
        stacks=stacks,
        backend=backend,
    )


@dataclass(frozen=True)
class Computed:
    """A transformers buffer KerasHub has no variable for and recomputes (ESM's rotary inverse frequencies): its
    name without the base prefix, its value for a backbone's Keras config and the buffer's shape, and why."""

    name: str
    value: Callable[[Config, tuple[int, ...]], Any]
    reason: str


@dataclass(frozen=True)
class Stack:
    """A further indexed layer class of a backbone (an encoder-decoder's decoder blocks): its path under
    ``layers/`` and the entries of one of its layers (``{i}``: the layer's index in this stack)."""

    layer: str
    entries: tuple[Entry, ...]
    # the Keras config key whose value numbers this stack's first layer, where it shares its layer class with an
    # earlier stack (T5's decoder blocks follow its encoder blocks in one class); none: 0
    start_key: str = ""
    first: tuple[Entry, ...] = ()  # entries only the stack's first layer holds (T5's relative attention table)
    # the Keras config keys of this stack's layer count and head size where they are its own (T5Gemma's encoder and
    # decoder sizes); none: the family's
    count_key: str = ""
    head_dim_key: str = ""
    # the Keras config key of this stack's head count where its head size is ``hidden_dim`` over it (Moonshine's
    # encoder and decoder heads)
    heads_key: str = ""
    # the "/"-path of the nested Keras config that counts and sizes this stack's layers (a tower of a dual-tower
    # backbone: ``text_encoder/config``); none: the backbone's own
    scope: str = ""
    # where the layers' head sizes differ (Gemma 4's wider full layers): layer ``i``'s, from the Keras config
    head_dim_of: Callable[[Config, int], int] | None = None

    def config_of(self, keras: Config, i: int = 0) -> Config:
        """The Keras config sizing layer ``i``'s heads: its tower's (``scope``), with its own head size where it has
        one (``head_dim_of``, ``head_dim_key``, or ``hidden_dim`` over ``heads_key``)."""
        own = scoped(keras, self.scope)
        if self.head_dim_of is not None:
            return {**own, "head_dim": self.head_dim_of(keras, i)}
        if self.head_dim_key:
            return {**own, "head_dim": keras[self.head_dim_key]}
        if self.heads_key:
            return {**own, "head_dim": int(keras["hidden_dim"]) // int(keras[self.heads_key])}
        return own

    def count(self, keras: Config, layers_key: str) -> int:
        """How many layers this stack has: its own count key's value, else ``layers_key``'s in its config."""
        return int(keras[self.count_key] if self.count_key else scoped(keras, self.scope)[layers_key])

    def start(self, keras: Config) -> int:
        return int(keras[self.start_key]) if self.start_key else 0

    def entries_of(self, i: int, keras: Config | None = None) -> tuple[Entry, ...]:
        """The entries of this stack's layer ``i`` (counted from the stack's first); with ``keras``, only those that
        layer holds (:attr:`Entry.held`)."""
        entries = self.entries + self.first if i == 0 else self.entries
        if keras is None:
            return entries
        return tuple(e for e in entries if e.held is None or e.held(keras, i))


@dataclass(frozen=True)
class Family:
    backbone: str  # KerasHub backbone class (config.json's registered_name without ``keras_hub>``)
    model_type: str  # transformers' model_type
    base_class: str  # transformers class of the backbone alone
    base_prefix: str  # transformers' base_model_prefix
    layer: str  # snake_case class of one transformer layer in the variable paths
    entries: tuple[Entry, ...]
    config: Callable[[Config], Config]  # the backbone's Keras config -> transformers config.json
    tasks: dict[str, str] = field(default_factory=dict)  # KerasHub task class -> transformers class
    # a task's own Keras config -> the transformers config keys it sets (a depth estimator's activation)
    task_settings: Callable[[Config], Config] | None = None
    task_entries: tuple[Entry, ...] = ()  # over ``task/``-prefixed paths
    generates: bool = False
    tokenizer: str = ""  # transformers' tokenizer class reading the preset's vocabulary, where it has one
    vocabulary: str = ""  # its kind, a key of tokenizer.ASSETS (wordpiece, bpe, sentencepiece, spiece, ...)
    writing: Writing | None = None  # present where presets of the family are written from transformers
    lora: LoraOrder | None = None  # present where LoRA adapters of the family convert (bridge lora)
    # where families share a backbone class: whether a preset's backbone config is this family's
    claims: Callable[[Config], bool] | None = None
    # where families share a transformers model_type: whether a transformers config (with the vocabulary facts
    # beside it) is written as this family's backbone; the family without one takes the rest
    picks: Callable[[Config], bool] | None = None
    # transformers tensors (names without the base prefix) KerasHub has no variable for, the family's model computing
    # as if they were zero: written as zeros on the way in, refused on the way out unless zero; with the reason
    zeros: tuple[tuple[str, str], ...] = ()
    # transformers tensors (regexes without the base prefix) of a part KerasHub's backbone does not compute (a
    # pooler): zeros on the way in, dropped on the way out; with the reason
    unkept: tuple[tuple[str, str], ...] = ()
    # entries over the model's own layers that depend on the backbone's Keras config (a layer present or not
    # renumbers the later layers of its class)
    variant: Callable[[Config], tuple[Entry, ...]] | None = None
    layers_key: str = "num_layers"  # the Keras config key counting the stored layers (ALBERT's shared groups)
    scope: str = ""  # the nested Keras config counting and sizing ``layer``'s layers (see :class:`Stack`)
    head_dim_of: Callable[[Config, int], int] | None = None  # ``layer``'s head sizes where they differ (Stack)
    stacks: tuple[Stack, ...] = ()  # layer classes besides ``layer``, as many layers each
    # (regex, replacement) turning a target name into the one save_pretrained writes, where transformers 5 renames
    # its checkpoints' names on loading (ViT): a source holding those names is read by them
    saved: tuple[tuple[str, str], ...] = ()
    # the transformers names are those its save_pretrained writes, not the model's in memory (transformers 5 saves
    # some tensors it joins in memory one by one: a bank of experts)
    saved_names: bool = False
    # transformers buffers computed from the Keras config: written on the way in, expected leftovers on the way out
    # while they hold that value
    computed: tuple[Computed, ...] = ()
    # the (mean, deviation) per channel by which KerasHub's backbone normalizes its images itself, where
    # transformers' processor does so before its model: the forward check feeds transformers the pixels normalized
    normalizes_images: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def source_name(self, target: str, names: Container[str]) -> str:
        """``target`` as a transformers source spells it: itself, else its saved form where the source has that."""
        if target in names or not self.saved:
            return target
        renamed = target
        for pattern, replacement in self.saved:
            renamed = re.sub(pattern, replacement, renamed)
        return renamed if renamed in names else target

    def layer_stacks(self, keras: Config | None = None) -> tuple[Stack, ...]:
        """Every indexed layer class with the entries of one of its layers, ``layer`` first (where the family's
        own entries have any; with ``keras``, its variant's of that config too)."""
        own = tuple(e for e in (self.entries if keras is None else self.entries_for(keras)) if "{i}" in e.target)
        return (
            (Stack(self.layer, own, scope=self.scope, head_dim_of=self.head_dim_of), *self.stacks)
            if own
            else self.stacks
        )

    def entries_for(self, keras: Config) -> tuple[Entry, ...]:
        """The family's entries for a backbone of this Keras config."""
        return self.entries + (self.variant(keras) if self.variant is not None else ())

    def keras_only(self, keras: Config) -> tuple[Entry, ...]:
        """The preset variables transformers has no tensor for."""
        return tuple(e for e in self.entries_for(keras) if not e.target)


def scoped(config: Config, path: str) -> Config:
    """The nested config at a ``"/"``-path of keys (``""``: ``config`` itself)."""
    for key in filter(None, path.split("/")):
        config = config[key]
    return config


def snake(name: str) -> str:
    """A class name as Keras names its instances and modules (``DistilBertBackbone`` -> ``distil_bert_backbone``)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def policy(name: str) -> Config:
    """A serialized Keras ``DTypePolicy``."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name}, "registered_name": None}


def refuse(config: Config, why: str, hint: str) -> UsageError:
    """The error for a transformers config a KerasHub backbone cannot express."""
    return UsageError(
        f"This {config.get('model_type')} model cannot be written as a KerasHub preset", detail=why, hint=hint
    )


def require(config: Config, checks: tuple[tuple[str, Any, str], ...], *, unset_ok: bool = False) -> None:
    """Refuse a transformers config whose ``key`` is not ``want`` (absent: the default, taken as ``want``; with
    ``unset_ok``, a key saved as null too): each check is ``(key, want, why the backbone needs it)``."""
    for key, want, why in checks:
        value = config.get(key, want)
        if value != want and not (unset_ok and value is None):
            raise refuse(config, f"{key} {value}", why)


def bert_embeddings(position: str = "layers/position_embedding/vars/0") -> tuple[Entry, ...]:
    """The embedding variables of KerasHub's BERT-shaped encoders (token, position and segment tables and their
    layer norm) and their transformers names."""
    return (
        Entry("layers/reversible_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry(position, "embeddings.position_embeddings.weight"),
        Entry("layers/embedding/vars/0", "embeddings.token_type_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "embeddings.LayerNorm.weight"),
        Entry("layers/layer_normalization/vars/1", "embeddings.LayerNorm.bias"),
    )


_ENCODER_ATTENTION = "_self_attention_layer"  # KerasHub TransformerEncoder's attention, inside each block


def bert_layer_tail(stem: str = "encoder.layer.{i}") -> tuple[Entry, ...]:
    """A KerasHub ``TransformerEncoder`` block's norms and feed-forward under BERT's transformers names."""
    return (
        Entry(f"{_ENCODER_ATTENTION}_norm/vars/0", f"{stem}.attention.output.LayerNorm.weight"),
        Entry(f"{_ENCODER_ATTENTION}_norm/vars/1", f"{stem}.attention.output.LayerNorm.bias"),
        Entry("_feedforward_intermediate_dense/vars/0", f"{stem}.intermediate.dense.weight", "dense"),
        Entry("_feedforward_intermediate_dense/vars/1", f"{stem}.intermediate.dense.bias"),
        Entry("_feedforward_output_dense/vars/0", f"{stem}.output.dense.weight", "dense"),
        Entry("_feedforward_output_dense/vars/1", f"{stem}.output.dense.bias"),
        Entry("_feedforward_layer_norm/vars/0", f"{stem}.output.LayerNorm.weight"),
        Entry("_feedforward_layer_norm/vars/1", f"{stem}.output.LayerNorm.bias"),
    )


def bert_layer(stem: str = "encoder.layer.{i}") -> tuple[Entry, ...]:
    """A whole KerasHub ``TransformerEncoder`` block (its einsum attention kernels, then :func:`bert_layer_tail`)
    under BERT's transformers names."""
    return (
        *(
            Entry(f"{_ENCODER_ATTENTION}/{k}_dense/vars/{v}", f"{stem}.attention.self.{k}.{p}", kind)
            for k in ("query", "key", "value")
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ENCODER_ATTENTION}/output_dense/vars/0", f"{stem}.attention.output.dense.weight", "heads_out"),
        Entry(f"{_ENCODER_ATTENTION}/output_dense/vars/1", f"{stem}.attention.output.dense.bias"),
        *bert_layer_tail(stem),
    )


def text_classifier(c: Config) -> Config:
    """A ``*TextClassifier``'s own config keys from a ``*ForSequenceClassification`` config."""
    labels = c.get("id2label")  # transformers 5 saves the labels, not num_labels
    return {
        "num_classes": len(labels) if isinstance(labels, dict) and labels else c.get("num_labels", 2),
        "activation": "linear",
        "dropout": c.get("classifier_dropout") or c.get("hidden_dropout_prob", 0.1),
    }
