"""Mesh TensorFlow T5 / mT5 checkpoints (google-research/text-to-text-transfer-transformer) <-> transformers
``T5*`` / ``MT5*`` classes.

Names are Mesh TensorFlow's ``Bitransformer`` with ``make_layer_stack.block_scope``:
``shared/embedding``, ``encoder|decoder/block_NNN/layer_NNN/...`` (layer 0 self-attention, then the decoder's
``EncDecAttention``, then ``DenseReluDense``), each layer's pre-norm ``rms_norm/scale``, the stacks' final
``encoder|decoder/rms_norm/scale``, and T5 v1.1 / mT5's untied ``decoder/logits/kernel``.  Attention weights
``q``, ``k``, ``v`` are ``[d_model, heads * d_kv]`` and ``o`` the reverse, dense kernels ``[in, out]``: all are
transposed for ``torch.nn.Linear``; ``relative_attention_bias`` is ``[heads, buckets]``, transformers'
embedding ``[buckets, heads]``.  Block numbers are zero-padded (``block_007``): the rules' ``0*(\\d+)`` drops
the padding.  Adafactor's ``*_slot_vc|vr|v`` are optimizer state (:mod:`bridge.core.naming`).

The config comes from the run's ``operative_config.gin`` beside the checkpoint where there is one (gin macros
and bindings, read without gin), else from shapes: the relative-attention table gives the heads and buckets.
The way back (``--target t5``) writes the Mesh TF names, block numbers padded to three digits, and an
``operative_config.gin`` with the bindings :func:`config_from_gin` reads.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from typing import Any

from bridge.core.packs import (
    ConfigHooks,
    Docs,
    Head,
    Incompatible,
    Matching,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
)
from bridge.families.t5 import hooks
from bridge.rules import writers
from bridge.rules.layouts import Layout, class_layouts

_STACK = r"(encoder|decoder)"
_LAYER = _STACK + r"/block_0*(\d+)/layer_0*(\d+)"  # zero-padded numbers: `0*` leaves at least one digit

RULES = (
    Rule(r"shared/embedding", "shared.weight"),
    Rule(_LAYER + r"/(SelfAttention|EncDecAttention)/(q|k|v|o)", "{1}.block.{2}.layer.{3}.{4}.{5}.weight", "transpose"),
    Rule(_LAYER + r"/SelfAttention/relative_attention_bias",
         "{1}.block.{2}.layer.{3}.SelfAttention.relative_attention_bias.weight", "transpose"),
    Rule(_LAYER + r"/rms_norm/scale", "{1}.block.{2}.layer.{3}.layer_norm.weight"),
    Rule(_LAYER + r"/DenseReluDense/(wi|wi_0|wi_1|wo)/kernel", "{1}.block.{2}.layer.{3}.DenseReluDense.{4}.weight",
         "transpose"),
    Rule(_STACK + r"/rms_norm/scale", "{1}.final_layer_norm.weight"),
    Rule(r"decoder/logits/kernel", "lm_head.weight", "transpose"),
)  # fmt: skip

HEADS = (
    Head("LM head (decoder/logits)", r"decoder/logits/kernel", "lm_head."),
    Head("decoder stack", r"decoder/.+", "decoder."),
)

INCOMPATIBLE = (
    Incompatible(
        r"block_0*[1-9]\d*/layer_\d+/SelfAttention/relative_attention_bias$",
        "a relative-attention table in a block after the first (Mesh TF relative_attention_type='bias'): "
        "transformers' T5 computes the position bias once, in block 0, and shares it with every block",
    ),
    Incompatible(
        r"/EncDecAttention/relative_attention_bias$",
        "a relative-attention table on cross-attention: transformers' T5 cross-attention has no position bias",
    ),
)

# class -> (model_type, has a decoder and LM head)
CLASSES: dict[str, tuple[str, bool]] = {
    "T5ForConditionalGeneration": ("t5", True),
    "T5EncoderModel": ("t5", False),
    "MT5ForConditionalGeneration": ("mt5", True),
    "MT5EncoderModel": ("mt5", False),
}


def _stack(side: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """One T5Stack's parameters (transformers names, without the embedding it shares)."""
    d, heads, ff = config["d_model"], config["num_heads"], config["d_ff"]
    inner = heads * config["d_kv"]
    layers = config["num_layers"] if side == "encoder" else config.get("num_decoder_layers") or config["num_layers"]
    gated = str(config.get("feed_forward_proj", "relu")).startswith("gated-")
    out: dict[str, tuple[int, ...]] = {}
    for b in range(layers):
        block = f"{side}.block.{b}.layer"
        attentions = ["SelfAttention"] + (["EncDecAttention"] if side == "decoder" else [])
        for n, kind in enumerate(attentions):
            for proj in ("q", "k", "v"):
                out[f"{block}.{n}.{kind}.{proj}.weight"] = (inner, d)
            out[f"{block}.{n}.{kind}.o.weight"] = (d, inner)
            if kind == "SelfAttention" and b == 0:
                out[f"{block}.{n}.SelfAttention.relative_attention_bias.weight"] = (
                    config["relative_attention_num_buckets"],
                    heads,
                )
            out[f"{block}.{n}.layer_norm.weight"] = (d,)
        ffn = f"{block}.{len(attentions)}"
        for wi in ("wi_0", "wi_1") if gated else ("wi",):
            out[f"{ffn}.DenseReluDense.{wi}.weight"] = (ff, d)
        out[f"{ffn}.DenseReluDense.wo.weight"] = (d, ff)
        out[f"{ffn}.layer_norm.weight"] = (d,)
    out[f"{side}.final_layer_norm.weight"] = (d,)
    return out


def _class_layout(class_name: str, config: dict[str, Any]) -> Layout:
    model_type, seq2seq = CLASSES[class_name]
    v, d = config["vocab_size"], config["d_model"]
    out: Layout = {"shared.weight": ((v, d), None)}
    for side in ("encoder", "decoder") if seq2seq else ("encoder",):
        out[f"{side}.embed_tokens.weight"] = ((v, d), "shared.weight")
        out.update({name: (shape, None) for name, shape in _stack(side, config).items()})
    if seq2seq:
        # transformers 5's MT5 never scales the decoder output by d_model**-0.5 as a tied T5 does: its LM head
        # is always a projection of its own, which a tied (v1.0) checkpoint has no tensor for.
        tied = config.get("tie_word_embeddings", True) and model_type == "t5"
        out["lm_head.weight"] = ((v, d), "shared.weight" if tied else None)
    return out


def default_target(names: Iterable[str]) -> str:
    """The encoder-decoder with its LM head, or the encoder alone for an encoder-only checkpoint."""
    return "T5ForConditionalGeneration" if any(n.startswith("decoder/") for n in names) else "T5EncoderModel"


def _blocks(shapes: dict[str, tuple[int, ...]], side: str) -> int:
    found = [int(m.group(1)) for n in shapes if (m := re.match(side + r"/block_(\d+)/", n))]
    return 1 + max(found) if found else 0


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """A T5Config dict from shapes: the relative-attention table gives heads and buckets, ``q`` the head size."""
    vocab, d_model = shapes["shared/embedding"]
    heads, buckets = shapes["encoder/block_000/layer_000/SelfAttention/relative_attention_bias"]
    inner = shapes["encoder/block_000/layer_000/SelfAttention/q"][1]
    gated = "encoder/block_000/layer_001/DenseReluDense/wi_0/kernel" in shapes
    wi = "wi_0" if gated else "wi"
    encoder, decoder = _blocks(shapes, "encoder"), _blocks(shapes, "decoder")
    tied = "decoder/logits/kernel" not in shapes
    config: dict[str, Any] = {
        "vocab_size": vocab,
        "d_model": d_model,
        "d_kv": inner // heads,
        "num_heads": heads,
        "d_ff": shapes[f"encoder/block_000/layer_001/DenseReluDense/{wi}/kernel"][1],
        "num_layers": encoder,
        "num_decoder_layers": decoder or encoder,
        "relative_attention_num_buckets": buckets,
        "feed_forward_proj": "gated-gelu" if gated else "relu",
        "tie_word_embeddings": tied,
    }
    version = "T5 v1.1 / mT5 layout" if gated else "T5 v1.0 layout"
    notes = [
        f"t5: {version}: {encoder} encoder block(s), {decoder} decoder block(s); "
        + (
            "embeddings tied to the softmax (logits = decoder output * d_model**-0.5 @ shared/embedding)"
            if tied
            else "untied decoder/logits/kernel -> lm_head.weight"
        ),
        f"config inferred from tensor shapes (no operative_config.gin beside the checkpoint): "
        f"num_heads {heads} and relative_attention_num_buckets {buckets} from relative_attention_bias; "
        f"feed_forward_proj assumed {config['feed_forward_proj']} (the activation is not in the shapes: "
        + ("T5 v1.1 and mT5 use gated-gelu" if gated else "T5 v1.0 uses relu")
        + "); pass --config operative_config.gin if that is wrong",
    ]
    return config, notes


# ---------------------------------------------------------------------------------------------------- gin
_GIN_BINDING = re.compile(r"(?P<key>[A-Za-z_][\w./]*)\s*=\s*(?P<value>.+)", re.S)


def _gin_statements(text: str) -> list[str]:
    """Logical lines: comment lines dropped, ``\\`` continuations and open brackets joined."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        joined = pending + " " + line.strip() if pending else line.strip()
        if joined.endswith("\\"):
            pending = joined[:-1].rstrip()
            continue
        depth = sum(joined.count(c) for c in "([{") - sum(joined.count(c) for c in ")]}")
        if depth > 0:
            pending = joined
            continue
        pending = ""
        if joined:
            out.append(joined)
    if pending:
        raise ValueError(f"unterminated gin statement: {pending[:60]!r}")
    return out


def _gin_value(text: str, macros: dict[str, Any]) -> Any:
    text = text.strip()
    if text.startswith("%"):
        return macros.get(text[1:])
    if text.startswith("@"):
        return text  # a configurable reference: kept as written
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_gin(text: str) -> dict[str, Any]:
    """Bindings of a gin file (``scope/Configurable.param`` and macros) as Python values, ``%macro`` resolved.

    Only what T5's operative config uses: literals, macros, ``@references`` (kept as strings), imports skipped.
    """
    raw: dict[str, str] = {}
    for statement in _gin_statements(text):
        if statement.startswith(("import ", "from ")) or statement.startswith("include "):
            continue
        m = _GIN_BINDING.fullmatch(statement)
        if m is None:
            raise ValueError(f"not a gin binding: {statement[:60]!r}")
        raw[m["key"]] = m["value"]
    macros: dict[str, Any] = {}
    for key, value in raw.items():  # macros first (names without a `.`), in order: they may refer to earlier ones
        if "." not in key:
            macros[key] = _gin_value(value, macros)
    return {key: _gin_value(value, macros) for key, value in raw.items()}


def _lookup(bindings: dict[str, Any], *keys: str) -> Any:
    """The first binding found among ``keys``, each tried with the ``encoder/`` scope, bare, then any scope."""
    for key in keys:
        for candidate in (f"encoder/{key}", key):
            if bindings.get(candidate) is not None:
                return bindings[candidate]
        if "." in key:
            scoped = [v for k, v in bindings.items() if k.endswith("/" + key) and v is not None]
            if scoped:
                return scoped[0]
    return None


def _activation(value: Any) -> str | None:
    """Mesh TF's ``DenseReluDense.activation`` as transformers' ``feed_forward_proj``."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[1] == "linear":
        return f"gated-{value[0]}"  # Mesh TF multiplies act(x @ wi_0) by the linear x @ wi_1
    return None


def config_from_gin(text: str) -> tuple[dict[str, Any], list[str]]:
    """The T5Config keys an ``operative_config.gin`` sets (sizes, layers, buckets, activation)."""
    bindings = parse_gin(text)
    found = {
        "d_model": _lookup(bindings, "d_model"),
        "d_ff": _lookup(bindings, "DenseReluDense.hidden_size", "d_ff"),
        "d_kv": _lookup(bindings, "SelfAttention.key_value_size", "d_kv"),
        "num_heads": _lookup(bindings, "SelfAttention.num_heads", "num_heads"),
        "num_layers": _lookup(bindings, "make_layer_stack.num_layers", "num_layers"),
        "num_decoder_layers": bindings.get("decoder/make_layer_stack.num_layers") or bindings.get("num_layers"),
        "relative_attention_num_buckets": _lookup(bindings, "SelfAttention.relative_attention_num_buckets"),
        "feed_forward_proj": _activation(_lookup(bindings, "DenseReluDense.activation")),
    }
    config = {k: v for k, v in found.items() if v is not None}
    bad = {k: v for k, v in config.items() if k != "feed_forward_proj" and not isinstance(v, int)}
    if bad:
        raise ValueError(f"gin values that are not integers: {bad}")
    unset = sorted(k for k, v in found.items() if v is None)
    notes = [
        "t5: operative_config.gin read: "
        + ", ".join(f"{k}={v}" for k, v in config.items())
        + (f"; not in it, from shapes: {', '.join(unset)}" if unset else "")
    ]
    return config, notes


# ---------------------------------------------------------------------------------------------------- PyTorch side
_T5_KEYS = (
    "vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_decoder_layers", "num_heads",
    "relative_attention_num_buckets", "feed_forward_proj", "tie_word_embeddings",
)  # fmt: skip
# T5's sentencepiece vocabularies (T5 and mT5 alike): pad 0, eos 1; the decoder starts from pad.
_TOKENS = {"pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0}


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json``.  A config that is already transformers' keeps what it says."""
    model_type = CLASSES.get(class_name, ("t5", True))[0]
    if "model_type" in config:
        return dict(config, architectures=[class_name]), []
    out: dict[str, Any] = {k: config[k] for k in _T5_KEYS if k in config}
    out.update(
        {
            "architectures": [class_name],
            "model_type": model_type,
            "is_encoder_decoder": True,
            "relative_attention_max_distance": 128,  # Mesh TF's fixed max_distance
            "layer_norm_epsilon": 1e-6,  # Mesh TF's rms_norm epsilon
            "dropout_rate": 0.1,
            **_TOKENS,
            "dtype": "float32",
        }
    )
    notes = [
        "dtype float32: Mesh TF stores bfloat16, written as stored unless --dtype is given; transformers "
        "loads them into float32 (exact, as transformers 4.57's load_tf_weights_in_t5 upcast them)",
        "token ids pad 0, eos 1, decoder_start 0: T5's vocabulary convention (the checkpoint stores none)",
    ]
    if CLASSES.get(class_name, ("t5", True))[1] and not _symmetric(config):
        notes.append(
            f"generation_config.json: use_cache false: transformers 5 sizes generate()'s cache by num_layers "
            f"({config.get('num_layers')}), not the decoder's {config.get('num_decoder_layers')} blocks"
        )
    if out.get("feed_forward_proj") == "gated-gelu":
        notes.append("feed_forward_proj gated-gelu: Mesh TF's gelu is the tanh form, transformers' gelu_new")
    return out, notes


def generation_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """``generation_config.json`` for the classes that generate (from the ``config.json`` written)."""
    class_name = (config.get("architectures") or [""])[0]
    if not CLASSES.get(class_name, ("t5", True))[1]:
        return None
    tokens = {k: config.get(k, v) for k, v in _TOKENS.items()}
    extra = {} if _symmetric(config) else {"use_cache": False}
    return {**tokens, **extra, "_from_model_config": False}


def _symmetric(config: dict[str, Any]) -> bool:
    return config.get("num_decoder_layers") in (None, config.get("num_layers"))


# ---------------------------------------------------------------------------------------------------- the way back
def tf_layout(config: dict[str, Any], heads: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Mesh TF variable names and shapes for ``config`` (heads: ``decoder``, ``logits``: the untied softmax)."""
    heads = set(heads)
    v, d, h, ff = config["vocab_size"], config["d_model"], config["num_heads"], config["d_ff"]
    inner = h * config["d_kv"]
    gated = str(config.get("feed_forward_proj", "relu")).startswith("gated-")
    out: dict[str, tuple[int, ...]] = {"shared/embedding": (v, d)}
    for side in ("encoder", "decoder") if "decoder" in heads else ("encoder",):
        blocks = config["num_layers"] if side == "encoder" else config.get("num_decoder_layers") or config["num_layers"]
        attentions = ["SelfAttention"] + (["EncDecAttention"] if side == "decoder" else [])
        for b in range(blocks):
            for n, kind in enumerate(attentions):
                layer = f"{side}/block_{b:03d}/layer_{n:03d}"
                out[f"{layer}/rms_norm/scale"] = (d,)
                out.update({f"{layer}/{kind}/{p}": (d, inner) for p in "qkv"})
                out[f"{layer}/{kind}/o"] = (inner, d)
                if kind == "SelfAttention" and b == 0:
                    out[f"{layer}/SelfAttention/relative_attention_bias"] = (
                        h,
                        config["relative_attention_num_buckets"],
                    )
            layer = f"{side}/block_{b:03d}/layer_{len(attentions):03d}"
            out[f"{layer}/rms_norm/scale"] = (d,)
            out.update(
                {f"{layer}/DenseReluDense/{wi}/kernel": (d, ff) for wi in (("wi_0", "wi_1") if gated else ("wi",))}
            )
            out[f"{layer}/DenseReluDense/wo/kernel"] = (ff, d)
        out[f"{side}/rms_norm/scale"] = (d,)
    if "logits" in heads:
        out["decoder/logits/kernel"] = (d, v)
    return out


def source_heads(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list[str], int | None]:
    """The decoder, where the PyTorch model has one, and its softmax, where it is not the shared embedding."""
    heads = ["decoder"] if any(n.startswith("decoder.") for n in shapes) else []
    if heads and "lm_head.weight" in shapes and not config.get("tie_word_embeddings", True):
        heads.append("logits")
    return heads, None


def _gin_activation(feed_forward_proj: str) -> str:
    """transformers' ``feed_forward_proj`` as Mesh TF's ``DenseReluDense.activation`` (gated: ``[act, 'linear']``)."""
    if feed_forward_proj.startswith("gated-"):
        return repr([feed_forward_proj.removeprefix("gated-"), "linear"])
    return repr(feed_forward_proj)


def tf_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """The sizes ``operative_config.gin`` states (:func:`render_gin` writes them), from a transformers config."""
    keys = ("d_model", "d_ff", "d_kv", "num_heads", "num_layers", "relative_attention_num_buckets", "vocab_size")
    out: dict[str, Any] = {k: config[k] for k in keys}
    out["num_decoder_layers"] = config.get("num_decoder_layers") or config["num_layers"]
    out["feed_forward_proj"] = str(config.get("feed_forward_proj", "relu"))
    out["tie_word_embeddings"] = bool(config.get("tie_word_embeddings", True))
    notes = []
    if out["feed_forward_proj"] in ("gated-gelu", "gelu"):
        notes.append("feed_forward_proj: Mesh TF's gelu is the tanh form (transformers gelu_new)")
    if config.get("relative_attention_max_distance", 128) != 128:
        notes.append(
            f"relative_attention_max_distance {config['relative_attention_max_distance']}: Mesh TF's is fixed at 128"
        )
    return out, notes


def render_gin(config: dict[str, Any]) -> str:
    """An ``operative_config.gin`` in Mesh TF's own format for :func:`tf_config`'s sizes."""
    act = _gin_activation(config["feed_forward_proj"])
    tied = config["tie_word_embeddings"]
    lines = [
        "# Macros:",
        "# " + "=" * 78,
        f"d_ff = {config['d_ff']}",
        f"d_kv = {config['d_kv']}",
        f"d_model = {config['d_model']}",
        f"num_heads = {config['num_heads']}",
        f"num_layers = {config['num_layers']}",
        "",
        "# Parameters for Bitransformer:",
        "# " + "=" * 78,
        "Bitransformer.shared_embedding = True",
        "",
        "# Parameters for Unitransformer:",
        "# " + "=" * 78,
        f"Unitransformer.shared_embedding_and_softmax_weights = {tied}",
    ]
    for side in ("decoder", "encoder"):
        layers = config["num_decoder_layers"] if side == "decoder" else "%num_layers"
        if side == "decoder" and layers == config["num_layers"]:
            layers = "%num_layers"
        lines += [
            "",
            f"# Parameters for {side}/DenseReluDense:",
            "# " + "=" * 78,
            f"{side}/DenseReluDense.activation = {act}",
            f"{side}/DenseReluDense.hidden_size = %d_ff",
            f"{side}/DenseReluDense.use_bias = False",
            "",
            f"# Parameters for {side}/make_layer_stack:",
            "# " + "=" * 78,
            f"{side}/make_layer_stack.block_scope = True",
            f"{side}/make_layer_stack.num_layers = {layers}",
            "",
            f"# Parameters for {side}/SelfAttention:",
            "# " + "=" * 78,
            f"{side}/SelfAttention.key_value_size = %d_kv",
            f"{side}/SelfAttention.num_heads = %num_heads",
            f"{side}/SelfAttention.relative_attention_num_buckets = {config['relative_attention_num_buckets']}",
            f"{side}/SelfAttention.relative_attention_type = 'bias_shared'",
        ]
    return "\n".join(lines) + "\n"


FORWARD_CHECK = hooks.forward_check

PACK = RulePack(
    name="t5",
    description="Mesh TensorFlow T5 / mT5 checkpoints <-> transformers T5* / MT5* classes",
    config=ConfigHooks(
        from_source=config_from_source,
        pytorch=pt_config,
        parsers={"operative_config.gin": config_from_gin, "*.gin": config_from_gin},
        generation=generation_config,
        tensorflow=tf_config,
    ),
    pt=PyTorchSide(targets=class_layouts(CLASSES, _class_layout), default_target=default_target),
    tf=TensorFlowSide(
        default=True,  # the family's own layout before the layouts many families share
        layout=tf_layout,
        source_heads=source_heads,
        output=Output(
            "t5",
            writers.write_tf1_checkpoint,
            "model.ckpt",
            "operative_config.gin",
            note="Mesh TF names; operative_config.gin states the sizes (gin bindings the forward direction reads)",
            render=render_gin,
        ),
    ),
    matching=Matching(rules=RULES, heads=HEADS, incompatible=INCOMPATIBLE),
    forward_check=FORWARD_CHECK,
    docs=Docs(model_types=("t5", "mt5"), layout="Mesh TensorFlow checkpoint"),
)
