"""openai/gpt-2 TF1 checkpoints <-> transformers ``GPT2Model`` / ``GPT2LMHeadModel``.

Names from openai/gpt-2 ``src/model.py``: ``model/wte`` and ``model/wpe`` (token and position
embeddings), ``model/h{N}/ln_1|ln_2/g|b`` (LayerNorm gain and bias), ``model/h{N}/attn/c_attn``,
``attn/c_proj``, ``mlp/c_fc``, ``mlp/c_proj`` (each a ``w`` and a ``b``), ``model/ln_f``.  Its ``conv1d``
kernels are stored ``[1, nx, nf]`` and multiplied as ``x @ w[0]``; transformers' ``Conv1D`` keeps ``[nx, nf]``
and computes the same ``x @ w + b``, so a kernel only loses its leading axis (``squeeze(0)``): no transpose.
The language-model head is the token embedding (``logits = h @ wte^T``): transformers ties ``lm_head.weight``
to ``transformer.wte.weight``.  ``hparams.json`` beside the checkpoint (``n_vocab``, ``n_ctx``, ``n_embd``,
``n_head``, ``n_layer``) is the config; without it the sizes come from the shapes and ``n_head`` is assumed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bridge.core.packs import (
    ConfigHooks,
    Docs,
    Matching,
    Optional_,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
)
from bridge.families.gpt2 import hooks
from bridge.rules import writers
from bridge.rules.layouts import Layout, class_layouts, mapped, unprefixed

_BLOCK = r"model/h(\d+)/"
_CONV = r"(attn/c_attn|attn/c_proj|mlp/c_fc|mlp/c_proj)"

RULES = (
    Rule(r"model/(wte|wpe)", "transformer.{1}.weight"),
    Rule(_BLOCK + _CONV + r"/w", "transformer.h.{1}.{2}.weight", "squeeze(0)"),
    Rule(_BLOCK + _CONV + r"/b", "transformer.h.{1}.{2}.bias"),
    Rule(_BLOCK + r"(ln_1|ln_2)/g", "transformer.h.{1}.{2}.weight"),
    Rule(_BLOCK + r"(ln_1|ln_2)/b", "transformer.h.{1}.{2}.bias"),
    Rule(r"model/ln_f/g", "transformer.ln_f.weight"),
    Rule(r"model/ln_f/b", "transformer.ln_f.bias"),
)

# Task heads of the other GPT2* classes (laid out on the meta device): openai's checkpoints have none.
OPTIONAL = (
    Optional_(r"score\.weight", "task head: newly initialised, to be fine-tuned"),
    Optional_(r"(classifier|qa_outputs)\..+", "task head: newly initialised, to be fine-tuned"),
    Optional_(r"multiple_choice_head\..+", "task head: newly initialised, to be fine-tuned"),
)

CLASSES = ("GPT2Model", "GPT2LMHeadModel")
LM_HEAD = "lm_head.weight"
WTE = "transformer.wte.weight"


def sizes(config: dict[str, Any]) -> dict[str, int]:
    """The model's sizes from an openai ``hparams.json`` or a transformers ``GPT2Config`` (or both merged: the
    openai names, from the file beside the checkpoint, win over the transformers names inferred from shapes)."""

    def pick(*keys: str) -> int:
        for key in keys:
            if config.get(key) is not None:
                return int(config[key])
        raise KeyError(keys[0])

    embd = pick("n_embd", "hidden_size")
    return {
        "vocab": pick("n_vocab", "vocab_size"),
        "ctx": pick("n_ctx", "n_positions", "max_position_embeddings"),
        "embd": embd,
        "head": pick("n_head", "num_attention_heads"),
        "layer": pick("n_layer", "num_hidden_layers"),
        "inner": int(config.get("n_inner") or 4 * embd),  # openai's mlp is always 4 * n_embd wide
    }


def tf_layout(config: dict[str, Any], heads: Iterable[str] = ()) -> dict[str, tuple[int, ...]]:
    """openai/gpt-2 variable names and shapes for ``config``, in the order its graph creates them."""
    s = sizes(config)
    e, i = s["embd"], s["inner"]
    out: dict[str, tuple[int, ...]] = {"model/wpe": (s["ctx"], e), "model/wte": (s["vocab"], e)}
    for n in range(s["layer"]):
        h = f"model/h{n}"
        out.update({f"{h}/ln_1/g": (e,), f"{h}/ln_1/b": (e,)})
        out.update({f"{h}/attn/c_attn/w": (1, e, 3 * e), f"{h}/attn/c_attn/b": (3 * e,)})
        out.update({f"{h}/attn/c_proj/w": (1, e, e), f"{h}/attn/c_proj/b": (e,)})
        out.update({f"{h}/ln_2/g": (e,), f"{h}/ln_2/b": (e,)})
        out.update({f"{h}/mlp/c_fc/w": (1, e, i), f"{h}/mlp/c_fc/b": (i,)})
        out.update({f"{h}/mlp/c_proj/w": (1, i, e), f"{h}/mlp/c_proj/b": (e,)})
    out.update({"model/ln_f/g": (e,), "model/ln_f/b": (e,)})
    return out


def _class_layout(class_name: str, config: dict[str, Any]) -> Layout:
    out = mapped(tf_layout(config), PACK.map_name)
    if class_name == "GPT2Model":  # the base model itself: no `transformer.` prefix
        return unprefixed(out, "transformer.")
    tie = WTE if config.get("tie_word_embeddings", True) else None
    out[LM_HEAD] = (out[WTE][0], tie)
    return out


def default_target(names: Iterable[str]) -> str:
    """openai's model computes its logits from ``wte``: the LM head class keeps them."""
    return "GPT2LMHeadModel"


def config_from_source(shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], list[str]]:
    """Sizes from shapes, under transformers' names (an ``hparams.json`` beside the checkpoint wins over them)."""
    vocab, embd = shapes["model/wte"]
    blocks = [int(m.group(1)) for n in shapes if (m := re.match(r"model/h(\d+)/", n))]
    if not blocks:
        raise KeyError("model/h0/...")
    config: dict[str, Any] = {
        "vocab_size": vocab,
        "n_positions": shapes["model/wpe"][0],
        "n_embd": embd,
        "n_layer": 1 + max(blocks),
        "n_head": max(1, embd // 64),
        "n_inner": shapes["model/h0/mlp/c_fc/w"][-1],
    }
    notes = [
        "openai-gpt2: conv1d kernels `[1, nx, nf]` lose their leading axis (squeeze(0)): transformers' Conv1D "
        "computes the same `x @ w + b`, so nothing is transposed; openai's logits come from `wte` itself "
        "(transformers ties lm_head.weight to it)",
        "config inferred from tensor shapes (no hparams.json beside the checkpoint); "
        f"n_head assumed n_embd/64 = {config['n_head']}: pass --config hparams.json if that is wrong "
        "(shapes cannot tell)",
    ]
    return config, notes


def pt_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """transformers ``config.json`` for an openai ``hparams.json`` (a transformers config keeps its own keys)."""
    if "model_type" in config:
        return dict(config, architectures=[class_name]), []
    s = sizes(config)
    last = s["vocab"] - 1
    out: dict[str, Any] = {
        "architectures": [class_name],
        "model_type": "gpt2",
        "vocab_size": s["vocab"],
        "n_positions": s["ctx"],
        "n_embd": s["embd"],
        "n_head": s["head"],
        "n_layer": s["layer"],
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-5,
        "bos_token_id": last,
        "eos_token_id": last,
        "tie_word_embeddings": True,
        "dtype": "float32",
    }
    if s["inner"] != 4 * s["embd"]:
        out["n_inner"] = s["inner"]
    notes = [
        "openai gpt-2: gelu is the tanh form (transformers `gelu_new`), LayerNorm epsilon 1e-5, logits from `wte`",
        f"bos_token_id = eos_token_id = {last}: the last id, where openai's encoder puts <|endoftext|>",
    ]
    return out, notes


def tf_config(config: dict[str, Any], class_name: str) -> tuple[dict[str, Any], list[str]]:
    """openai ``hparams.json`` for a transformers GPT-2 ``config.json``."""
    s = sizes(config)
    out = {"n_vocab": s["vocab"], "n_ctx": s["ctx"], "n_embd": s["embd"], "n_head": s["head"], "n_layer": s["layer"]}
    notes = []
    act = config.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        notes.append(f"activation_function {act!r}: openai's model.py only computes the tanh gelu (gelu_new)")
    if config.get("layer_norm_epsilon", 1e-5) != 1e-5:
        notes.append(f"layer_norm_epsilon {config['layer_norm_epsilon']} differs from openai's fixed 1e-5")
    if s["inner"] != 4 * s["embd"]:
        notes.append(f"n_inner {s['inner']}: openai's model.py always uses 4 * n_embd; hparams.json cannot say it")
    return out, notes


def source_heads(shapes: dict[str, tuple[int, ...]], config: dict[str, Any]) -> tuple[list[str], int | None]:
    """openai's layout has no optional parts: the LM head is ``wte`` itself."""
    return [], None


FORWARD_CHECK = hooks.forward_check

PACK = RulePack(
    name="openai-gpt2",
    description="openai/gpt-2 TF1 checkpoints <-> transformers GPT2Model / GPT2LMHeadModel",
    config=ConfigHooks(
        from_source=config_from_source, pytorch=pt_config, tensorflow=tf_config, files=("hparams.json",)
    ),
    pt=PyTorchSide(
        targets=class_layouts(CLASSES, _class_layout), default_target=default_target, base_prefix="transformer"
    ),
    tf=TensorFlowSide(
        default=True,  # the family's own layout before the layouts many families share
        layout=tf_layout,
        source_heads=source_heads,
        output=Output("openai-gpt2", writers.write_tf1_checkpoint, "model.ckpt", "hparams.json"),
    ),
    matching=Matching(rules=RULES, optional=OPTIONAL),
    forward_check=FORWARD_CHECK,
    docs=Docs(model_types=("gpt2",), layout="openai/gpt-2 TF1 checkpoint"),
)
