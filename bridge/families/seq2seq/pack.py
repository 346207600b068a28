"""TF-Hub "bertseq2seq" checkpoints (Rothe et al. 2020) -> transformers ``EncoderDecoderModel``.

The TF side is a TF1 Hub module (``tfhub_module.pb`` + ``variables/``) or a plain TF1
checkpoint with a prefix of any depth (``module/bert/`` in Hub modules, ``bert/`` under a one-component
scope, or none; found, not assumed) before ``embeddings/``, ``encoder/layer_N/`` and ``decoder/layer_N/``.
Plain BERT names look the same under ``bert/``: the cross-attention (``attention/encdec``) is what tells
this family apart, so the pack claims nothing without it (:data:`SIGNATURE`).  A decoder layer has
``attention/self``, ``attention/output``, the cross-attention ``attention/encdec`` and
``attention/encdec_output``, then ``intermediate`` and ``output``.  The shared
("coupled") variant names the decoder stack ``encoder`` too: one stack serves both
sides and holds the ``encdec`` variables.

The PyTorch side is ``EncoderDecoderModel(BertGenerationEncoder, BertGenerationDecoder)``.

Choices, where the checkpoints leave one open:

* the embeddings are one scope, read by both sides: the decoder's
  ``decoder.bert.embeddings.*`` are written as copies of the encoder's;
* shared models: transformers 5 has no working ``tie_encoder_decoder`` (the config key is
  kept for information), so the shared stack is written to both sides as copies;
* the decoder's output projection is the (shared) word-embedding table with no bias (as
  in the same lineage's BigBird ``EmbeddingLayer.linear``): ``decoder.lm_head.decoder.weight``
  is tied by transformers to the decoder word embeddings and ``decoder.lm_head.bias`` is
  written as zeros.  A checkpoint with a ``PREFIX/decoder/output_bias`` variable fills it
  instead (a name not seen in a real module: an assumption).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bridge.core.packs import ConfigHooks, Detection, Docs, Matching, Optional_, PyTorchSide, Rule, RulePack
from bridge.core.vocab import read_vocab
from bridge.families.seq2seq import hooks

CLASS = "EncoderDecoderModel"
_P = r"((?:[^/]+/)*?)"  # the prefix, any depth (module/bert/, bert/, none), captured and dropped
# Only an encoder-decoder has cross-attention: without it these names are a plain BERT's.
SIGNATURE = r"(^|/)(encoder|decoder)/layer_\d+/attention/encdec(_output)?/"
_EMB = _P + r"embeddings/"


RULES = (
    Rule(_EMB + r"(word|position)_embeddings", "encoder.embeddings.{2}_embeddings.weight"),
    Rule(_EMB + r"LayerNorm/gamma", "encoder.embeddings.LayerNorm.weight"),
    Rule(_EMB + r"LayerNorm/beta", "encoder.embeddings.LayerNorm.bias"),
    # Cross-attention: in the decoder role whichever stack holds it (``encoder`` when coupled).
    Rule(_P + r"(?:encoder|decoder)/layer_(\d+)/attention/encdec/(query|key|value)/kernel",
         "decoder.bert.encoder.layer.{2}.crossattention.self.{3}.weight", "transpose"),
    Rule(_P + r"(?:encoder|decoder)/layer_(\d+)/attention/encdec/(query|key|value)/bias",
         "decoder.bert.encoder.layer.{2}.crossattention.self.{3}.bias"),
    Rule(_P + r"(?:encoder|decoder)/layer_(\d+)/attention/encdec_output/dense/kernel",
         "decoder.bert.encoder.layer.{2}.crossattention.output.dense.weight", "transpose"),
    Rule(_P + r"(?:encoder|decoder)/layer_(\d+)/attention/encdec_output/dense/bias",
         "decoder.bert.encoder.layer.{2}.crossattention.output.dense.bias"),
    Rule(_P + r"(?:encoder|decoder)/layer_(\d+)/attention/encdec_output/LayerNorm/gamma",
         "decoder.bert.encoder.layer.{2}.crossattention.output.LayerNorm.weight"),
    Rule(_P + r"(?:encoder|decoder)/layer_(\d+)/attention/encdec_output/LayerNorm/beta",
         "decoder.bert.encoder.layer.{2}.crossattention.output.LayerNorm.bias"),
    Rule(_P + r"encoder/layer_(\d+)/(.+)/LayerNorm/gamma", "encoder.encoder.layer.{2}.{3}.LayerNorm.weight"),
    Rule(_P + r"encoder/layer_(\d+)/(.+)/LayerNorm/beta", "encoder.encoder.layer.{2}.{3}.LayerNorm.bias"),
    Rule(_P + r"encoder/layer_(\d+)/(.+)/kernel", "encoder.encoder.layer.{2}.{3}.weight", "transpose"),
    Rule(_P + r"encoder/layer_(\d+)/(.+)/bias", "encoder.encoder.layer.{2}.{3}.bias"),
    Rule(_P + r"decoder/layer_(\d+)/(.+)/LayerNorm/gamma", "decoder.bert.encoder.layer.{2}.{3}.LayerNorm.weight"),
    Rule(_P + r"decoder/layer_(\d+)/(.+)/LayerNorm/beta", "decoder.bert.encoder.layer.{2}.{3}.LayerNorm.bias"),
    Rule(_P + r"decoder/layer_(\d+)/(.+)/kernel", "decoder.bert.encoder.layer.{2}.{3}.weight", "transpose"),
    Rule(_P + r"decoder/layer_(\d+)/(.+)/bias", "decoder.bert.encoder.layer.{2}.{3}.bias"),
    Rule(_P + r"decoder/output_bias", "decoder.lm_head.bias"),
)  # fmt: skip

OPTIONAL = (
    Optional_(r"decoder\.lm_head\.bias", "the decoder projects with the embedding table and no bias: written as zeros"),
)


def find_prefix(names: Iterable[str]) -> str | None:
    """The prefix (``module/bert/``, ``bert/`` or ``""``) before the cross-attention's stack, where the word
    embeddings are too; None when no such pair is there."""
    names = set(names)
    found = Counter(
        m.group(1) for n in names if (m := re.match(r"(.*?)(?:encoder|decoder)/layer_\d+/attention/encdec", n))
    )
    for prefix, _ in found.most_common():
        if f"{prefix}embeddings/word_embeddings" in names:
            return prefix
    return None


def _layer(h: int, i: int, cross: bool) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for proj in ("query", "key", "value"):
        out[f"attention.self.{proj}.weight"] = (h, h)
        out[f"attention.self.{proj}.bias"] = (h,)
    out["attention.output.dense.weight"] = (h, h)
    out["attention.output.dense.bias"] = (h,)
    out["attention.output.LayerNorm.weight"] = (h,)
    out["attention.output.LayerNorm.bias"] = (h,)
    if cross:
        for proj in ("query", "key", "value"):
            out[f"crossattention.self.{proj}.weight"] = (h, h)
            out[f"crossattention.self.{proj}.bias"] = (h,)
        out["crossattention.output.dense.weight"] = (h, h)
        out["crossattention.output.dense.bias"] = (h,)
        out["crossattention.output.LayerNorm.weight"] = (h,)
        out["crossattention.output.LayerNorm.bias"] = (h,)
    out["intermediate.dense.weight"] = (i, h)
    out["intermediate.dense.bias"] = (i,)
    out["output.dense.weight"] = (h, i)
    out["output.dense.bias"] = (h,)
    out["output.LayerNorm.weight"] = (h,)
    out["output.LayerNorm.bias"] = (h,)
    return out


def copies(config: dict[str, Any], class_name: str = CLASS) -> dict[str, str | None]:
    """Target tensors convert writes itself: name -> the target tensor it copies, or None for zeros.

    transformers ties none of these, so they must be in the weights file.
    """
    out: dict[str, str | None] = {}
    for part in ("word_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias"):
        out[f"decoder.bert.embeddings.{part}"] = f"encoder.embeddings.{part}"
    if config.get("tie_encoder_decoder"):
        h, i = config["hidden_size"], config["intermediate_size"]
        for n in range(_layers(config, "decoder")):
            for name in _layer(h, i, cross=False):
                out[f"decoder.bert.encoder.layer.{n}.{name}"] = f"encoder.encoder.layer.{n}.{name}"
    if not config.get("has_output_bias"):
        out["decoder.lm_head.bias"] = None
    return out


def _layers(config: dict[str, Any], side: str) -> int:
    return int(config.get(f"{side}_num_hidden_layers", config["num_hidden_layers"]))


def layout(config: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str | None]]:
    """``EncoderDecoderModel(BertGenerationEncoder, BertGenerationDecoder)`` state dict, torch-free.

    ``tied_to`` marks both transformers' own ties (the LM head) and the copies convert writes.
    """
    h, i, v, p = (config[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "max_position_embeddings"))
    out: dict[str, tuple[tuple[int, ...], str | None]] = {}
    ties = {k: t for k, t in copies(config).items() if t is not None}
    for side, base in (("encoder", "encoder"), ("decoder", "decoder.bert")):
        emb = {
            "word_embeddings.weight": (v, h),
            "position_embeddings.weight": (p, h),
            "LayerNorm.weight": (h,),
            "LayerNorm.bias": (h,),
        }
        for name, shape in emb.items():
            key = f"{base}.embeddings.{name}"
            out[key] = (shape, ties.get(key))
        for n in range(_layers(config, side)):
            for name, shape in _layer(h, i, cross=side == "decoder").items():
                key = f"{base}.encoder.layer.{n}.{name}"
                out[key] = (shape, ties.get(key))
    out["decoder.lm_head.bias"] = ((v,), None)
    out["decoder.lm_head.decoder.weight"] = ((v, h), "decoder.bert.embeddings.word_embeddings.weight")
    out["decoder.lm_head.decoder.bias"] = ((v,), "decoder.lm_head.bias")
    return out


def default_target(names: Iterable[str]) -> str:
    return CLASS


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """A config inferred from shapes: sizes, layer counts, whether the stacks are shared."""
    prefix = find_prefix(shapes)
    if prefix is None:
        raise KeyError("PREFIX/embeddings/word_embeddings beside PREFIX/decoder/layer_N/attention/encdec")
    vocab, hidden = shapes[f"{prefix}embeddings/word_embeddings"]

    def count(stack: str) -> int:
        rx = re.compile(re.escape(prefix) + f"{stack}/layer_(\\d+)/")
        found = [int(m.group(1)) for n in shapes if (m := rx.match(n))]
        return 1 + max(found) if found else 0

    coupled = count("decoder") == 0
    enc = count("encoder")
    config: dict[str, Any] = {
        "vocab_size": vocab,
        "hidden_size": hidden,
        "num_hidden_layers": enc,
        "decoder_num_hidden_layers": enc if coupled else count("decoder"),
        "intermediate_size": shapes[f"{prefix}encoder/layer_0/intermediate/dense/kernel"][1],
        "max_position_embeddings": shapes[f"{prefix}embeddings/position_embeddings"][0],
        "num_attention_heads": max(1, hidden // 64),
        "hidden_act": "gelu",
        "tie_encoder_decoder": coupled,
        "has_output_bias": f"{prefix}decoder/output_bias" in shapes,
        "prefix": prefix,
    }
    stacks = (
        "one shared stack (`encoder`, coupled) serves encoder and decoder"
        if coupled
        else ("separate encoder and decoder stacks")
    )
    found = f"prefix `{prefix}` found" if prefix else "no prefix (names start at `embeddings/`)"
    notes = [
        f"bertseq2seq: {found}; {enc} encoder layer(s), {config['decoder_num_hidden_layers']} "
        f"decoder layer(s); {stacks}",
        "bertseq2seq: `embeddings/*` -> encoder embeddings, copied to the decoder's; `*/attention/self|output`, "
        "`intermediate`, `output` -> encoder or decoder layers; `attention/encdec*` -> decoder cross-attention",
        "config inferred from tensor shapes; num_attention_heads assumed hidden_size/64 = "
        f"{config['num_attention_heads']}: pass --config config.json if that is wrong (shapes cannot tell)",
    ]
    if coupled:
        notes.append(
            "bertseq2seq: shared model: the shared stack is written to both sides (transformers 5 does "
            "not tie encoder and decoder); config tie_encoder_decoder=true"
        )
    if not config["has_output_bias"]:
        notes.append("bertseq2seq: the LM head is the decoder word-embedding table (tied) with a zero bias")
    return config, notes


def _side_config(config: dict[str, Any], layers: int, decoder: bool) -> dict[str, Any]:
    act = config.get("hidden_act", "gelu")
    out: dict[str, Any] = {
        "model_type": "bert-generation",
        "vocab_size": config["vocab_size"],
        "hidden_size": config["hidden_size"],
        "num_hidden_layers": layers,
        "num_attention_heads": config["num_attention_heads"],
        "intermediate_size": config["intermediate_size"],
        "hidden_act": "gelu_new" if act == "gelu" else act,  # BERT's gelu is the tanh approximation
        "hidden_dropout_prob": config.get("hidden_dropout_prob", 0.1),
        "attention_probs_dropout_prob": config.get("attention_probs_dropout_prob", 0.1),
        "max_position_embeddings": config["max_position_embeddings"],
        "initializer_range": config.get("initializer_range", 0.02),
        "layer_norm_eps": 1e-12,
        "is_decoder": decoder,
        "add_cross_attention": decoder,
        "tie_word_embeddings": True,
    }
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if key in config:
            out[key] = config[key]
    return out


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """``EncoderDecoderModel`` config.json: encoder and decoder BertGeneration configs."""
    out: dict[str, Any] = {
        "architectures": [CLASS],
        "model_type": "encoder-decoder",
        "is_encoder_decoder": True,
        "tie_encoder_decoder": bool(config.get("tie_encoder_decoder")),
        "encoder": _side_config(config, _layers(config, "encoder"), False),
        "decoder": _side_config(config, _layers(config, "decoder"), True),
        "dtype": "float32",
    }
    notes = ["hidden_act: BERT `gelu` is the tanh approximation -> transformers `gelu_new`"]
    missing = []
    for key in ("decoder_start_token_id", "pad_token_id", "eos_token_id"):
        if key in config:
            out[key] = config[key]
        else:
            missing.append(key)
    if missing:
        notes.append(
            f"{', '.join(missing)} unknown (the checkpoint does not store them and no vocabulary was found beside "
            "it: assets/vocab.txt or a sentencepiece .model): set them in config.json and generation_config.json "
            "before generate(), from the tokenizer of the model"
        )
    return out, notes


# The special tokens generate() needs, by the vocabulary's spelling: WordPiece (bert24_*), then sentencepiece.
_TOKEN_SETS = (
    {"decoder_start_token_id": "[CLS]", "eos_token_id": "[SEP]", "pad_token_id": "[PAD]"},
    {"decoder_start_token_id": "<s>", "eos_token_id": "</s>", "pad_token_id": "<pad>"},
)
_GENERATION_KEYS = ("decoder_start_token_id", "eos_token_id", "pad_token_id")


def _vocabularies(folder: Path) -> list[Path]:
    """Vocabulary files a Hub module (``assets/``) or a checkpoint folder ships, most likely first."""
    found = [folder / "assets" / "vocab.txt", folder / "vocab.txt"]
    for where in (folder / "assets", folder):
        found += sorted(where.glob("*.model")) if where.is_dir() else []
    return [p for p in found if p.is_file()]


def special_tokens(folder: Path) -> tuple[dict[str, Any], list[str]]:
    """``decoder_start_token_id``, ``eos_token_id`` and ``pad_token_id`` from the vocabulary beside the module:
    ``[CLS]``/``[SEP]``/``[PAD]`` of a WordPiece vocabulary (BERT's own start and end), else ``<s>``/``</s>``/``<pad>``
    of a sentencepiece one; the notes say which tokens were used, or why none were."""
    for path in _vocabularies(folder):
        where = path.relative_to(folder).as_posix()
        try:
            ids = {token: i for i, token in reversed(list(enumerate(read_vocab(path))))}  # the first of duplicates
        except (OSError, ValueError, UnicodeDecodeError) as e:
            return {}, [f"bertseq2seq: {where} is not a readable vocabulary ({e}): generate() tokens not set"]
        for tokens in _TOKEN_SETS:
            if all(t in ids for t in tokens.values()):
                found = {key: ids[token] for key, token in tokens.items()}
                used = ", ".join(f"{key} {found[key]} `{token}`" for key, token in tokens.items())
                return found, [f"bertseq2seq: generate() tokens from {where}: {used}"]
        spelled = " nor ".join("/".join(t.values()) for t in _TOKEN_SETS)
        return {}, [f"bertseq2seq: {where} has neither {spelled}: generate() tokens not set"]
    return {}, []


def generation_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """``generation_config.json`` for the written ``config.json``: the tokens ``generate()`` starts, ends and pads
    with; None when they are unknown."""
    if not all(key in config for key in _GENERATION_KEYS):
        return None
    return {key: config[key] for key in _GENERATION_KEYS}


PACK = RulePack(
    name="bertseq2seq",
    description="TF-Hub bertseq2seq (BERT encoder-decoder) -> transformers EncoderDecoderModel(BertGeneration*)",
    detection=Detection(signature=SIGNATURE),
    config=ConfigHooks(
        from_source=config_from_source, pytorch=pt_config, from_files=special_tokens, generation=generation_config
    ),
    pt=PyTorchSide(targets={CLASS: layout}, default_target=default_target, copies=copies),
    matching=Matching(rules=RULES, optional=OPTIONAL),
    forward_check=hooks.forward_check,
    docs=Docs(model_types=("encoder-decoder",), layout="TF-Hub BERT seq2seq module"),
)
