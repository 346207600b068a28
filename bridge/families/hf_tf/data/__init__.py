"""The data of the generic hf-tf road (``generic_pack.py``): what each transformers family's TF layout
needs beyond the generic rules, one module per group of families (``text``, ``seq2seq``, ``vision``), each a
``FAMILIES`` tuple of :class:`Family`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bridge.core.packs import Fill


def snake(class_name: str) -> str:
    """Keras' default layer name for a class (``to_snake_case``): TFDistilBertModel -> tf_distil_bert_model,
    TFGPT2LMHeadModel -> tfgpt2lm_head_model (digits do not start a word)."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def pt_levels(path: str) -> str:
    """transformers' own TF -> PyTorch level conventions beyond list indices: ``$1___$2`` is ``$2`` (MobileBERT's
    top layer ``predictions___cls`` is PyTorch's ``cls``), ``_._`` separates levels (XLM's ``pred_layer_._proj``
    is ``pred_layer.proj``)."""
    return re.sub(r"[^./]*___", "", path).replace("_._", ".")


@dataclass(frozen=True)
class BackFill:
    """PyTorch -> TF: a variable 4.57 saves that no PyTorch tensor holds (a buffer PyTorch does not save, a tie
    saved as a transposed copy), placed beside a placed variable and computed by convert."""

    beside: str  # regex (fullmatch) over a placed TF name
    name: str  # ``re.Match.expand`` template over it: the variable's name
    shape: Callable[[tuple[int, ...]], tuple[int, ...]]  # its shape, from the placed variable's
    target: str  # regex (fullmatch) over the names it gives: the optional target that says why and how
    why: str
    fill: Fill


@dataclass(frozen=True)
class Family:
    """What one transformers family's TF layout needs beyond the generic rules."""

    model_type: str  # config.json's model_type
    main: str  # the main layer's name (transformers' base_model_prefix): distilbert
    classes: tuple[str, ...]  # the PyTorch classes its TF classes became (TF + name)
    heads: tuple[str, ...] = ()  # top layers besides the main one (task heads), named as in PyTorch
    # (variable regex after the layer path, PyTorch template of its groups, transform): tried before the generic ones
    rules: tuple[tuple[str, str, str], ...] = ()
    scope_rx: str = field(init=False, default="")
    # transformers 5's renames of the 4.x PyTorch names the rules produce: (regex over the PyTorch class the
    # source's scope names, regex over the PyTorch name, replacement), applied in order (``re.sub``)
    renames: tuple[tuple[str, str, str], ...] = ()
    # target tensors no TF variable holds: (regex over PyTorch names, why, "zeros" when convert writes zeros)
    optional: tuple[tuple[str, str, str | None], ...] = ()
    # TF variables that are constant buffers PyTorch rebuilds: (regex over TF names, why, the value for a shape)
    buffers: tuple[tuple[str, str, Callable[[tuple[int, ...]], np.ndarray]], ...] = ()
    # parts of the main layer that some classes lack (MPNet's TF main layer always builds its pooler, which
    # MPNetForMaskedLM has not; TF's ESM builds `embeddings/position_embeddings` that a rotary ESM lacks): expected
    # leftovers for those classes, a TF layer path below `main`
    main_heads: tuple[str, ...] = ()
    # (variable path regex below the model scope, why): variables the TF class builds but its forward never reads
    # (ALBERT's MLM head adds `decoder/bias`, never `bias`): expected leftovers, mapped by no rule
    unread: tuple[tuple[str, str], ...] = ()
    # Variables saved outside the model scope, ``<top>/<layer>/<layer>/<variable>:0`` (T5's and BART's ``shared``
    # embedding, BART's ``final_logits_bias``), or whose PyTorch name is not their layer path (ESM's layer 0 rotary
    # frequencies are transformers 5's model-level buffer): (regex over the whole name, PyTorch template, transform)
    unscoped: tuple[tuple[str, str, str], ...] = ()
    # (regex over the whole name, the name it copies as a ``re.Match.expand`` template, why): a second copy of a
    # variable an unscoped rule maps (T5's encoder and decoder save ``shared`` again; every ESM layer its rotary
    # frequencies), expected only when byte-equal to the one it copies
    unscoped_copies: tuple[tuple[str, str, str], ...] = ()
    # top layers whose variables are all unscoped (``final_logits_bias/final_logits_bias:0``, TAPAS'
    # ``compute_token_logits/output/output_weights:0``), dropped by a class without them (BartModel from a
    # BartForConditionalGeneration file)
    unscoped_heads: tuple[str, ...] = ()
    # classes laid out by the pack itself (``PyTorchSide.targets``: config -> {name: (shape, tied_to)}) where the
    # class built on the meta device ties more than loading does (transformers 5 forces T5's and mT5's
    # tie_word_embeddings on, and unties on load where the checkpoint's lm_head differs)
    layouts: Mapping[str, Callable[[dict[str, Any]], dict[str, tuple[tuple[int, ...], str | None]]]] = field(
        default_factory=dict
    )

    # PyTorch -> TF: (regex over PyTorch names, the TF leaf) where the layer kind does not tell which leaf of several
    # the forward rules read alike transformers 4.57 saves (an embedding table as `weight` or `embeddings`)
    tf_leaves: tuple[tuple[str, str], ...] = ()
    # PyTorch -> TF: (head top layer, layer path below `main`) that 4.57 saves a second time under the head, the
    # head holding the main layer's sublayer (RoBERTa's lm_head decodes with the word embeddings)
    head_copies: tuple[tuple[str, str], ...] = ()
    # PyTorch -> TF: (regex, replacement) over the TF layer path computed from a PyTorch name, where 4.57's layer
    # names are not transformers' `_._N` list convention (BART's `layers.0`, CTRL's Sequential `ffn/0`)
    tf_paths: tuple[tuple[str, str], ...] = ()
    # PyTorch -> TF: (TF path below the model scope, the TF path it copies): a never-read variable 4.57 saves
    unread_copies: tuple[tuple[str, str], ...] = ()
    # PyTorch -> TF: variables no PyTorch tensor holds, computed (:class:`BackFill`)
    back_fills: tuple[BackFill, ...] = ()
    # PyTorch -> TF: (top layer, config.json key of its sub-config) of a composite's tower that PyTorch holds as a base
    # model, without its main layer's prefix (EncoderDecoderModel's `encoder.embeddings`): TF saves it under that
    # layer (`encoder/bert/embeddings`), named after the sub-config's model_type, which the forward rules drop unread
    towers: tuple[tuple[str, str], ...] = ()

    # other model_types whose TF classes are this family's (transformers' auto tables map gpt-sw3 to GPT2Config and
    # GPT-2's TF classes: such a file's config.json says gpt2): named in the family table, converted as this family
    also: tuple[str, ...] = ()
    # config values the PyTorch class computes with other than the TF class did: (config.json key, the only value
    # that converts, why), a file with another value refused by name (transformers 5's MPNet buckets relative
    # positions by 32 whatever `relative_attention_num_buckets` says); an absent key is the class default
    constraints: tuple[tuple[str, Any, str], ...] = ()

    def __post_init__(self) -> None:
        # the model scopes of exactly this family's classes (``tf_roberta`` also starts RoBERTa-PreLayerNorm's)
        object.__setattr__(self, "scope_rx", "(?:" + "|".join(snake("TF" + c) for c in self.classes) + ")")


# Families transformers 4.x had TF classes for and transformers 5 removed with their PyTorch classes: there is no
# class to convert into, a lasting refusal (model_type -> what the refusal says)
REMOVED_IN_5: dict[str, str] = {
    "transfo-xl": "transformers 5 has no class for it (TransfoXL was deprecated in 4.x and removed in 5)",
}

# Families whose tf_model.h5 is written back (PyTorch -> TF): those whose every fixture class round-trips bit for bit
# (tests/families/hf_tf/test_tf_back.py) but the classes ``back.NOT_WRITTEN`` refuses with the reason.  Every other
# family is refused by name, never written with names transformers 4.57 might not load.
WRITTEN_BACK = frozenset(
    {
        "albert",
        "bart",
        "blenderbot",
        "blenderbot-small",
        "blip",
        "camembert",
        "convbert",
        "convnext",
        "convnextv2",
        "clip",
        "ctrl",
        "data2vec-vision",
        "deberta",
        "deberta-v2",
        "deit",
        "distilbert",
        "dpr",
        "electra",
        "encoder-decoder",
        "flaubert",
        "funnel",
        "gpt2",
        "gptj",
        "groupvit",
        "hubert",
        "layoutlm",
        "layoutlmv3",
        "led",
        "longformer",
        "lxmert",
        "marian",
        "mbart",
        "mistral",
        "mobilebert",
        "mobilevit",
        "mpnet",
        "mt5",
        "openai-gpt",
        "opt",
        "pegasus",
        "regnet",
        "rembert",
        "resnet",
        "roberta",
        "roberta-prelayernorm",
        "roformer",
        "segformer",
        "swiftformer",
        "speech_to_text",
        "xglm",
        "sam",
        "swin",
        "t5",
        "tapas",
        "vit",
        "vit_mae",
        "vision-encoder-decoder",
        "vision-text-dual-encoder",
        "wav2vec2",
        "whisper",
        "xlm",
        "xlm-roberta",
        "xlnet",
    }
)
NOT_PROVEN_BACK = "its tf_model.h5 names are not yet proven against the files transformers 4.57 writes"
