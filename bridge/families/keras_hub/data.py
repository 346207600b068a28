"""Per-family tables: KerasHub preset variable paths -> transformers 5 names, and config mappings.

A variable path is ``layers/<snake_case class>[_<k>]/<attribute path>/vars/<i>`` (Keras 3 numbers a model's second
layer of a class ``_1``); ``{i}`` in a target is the layer's index (no suffix: 0).  A transform kind says how the
value changes: ``dense`` (Keras ``[in, out]`` -> torch ``[out, in]``), ``heads_in`` (an einsum kernel
``[hidden, heads, head_dim]`` -> ``[heads * head_dim, hidden]``), ``heads_out`` (``[heads, head_dim, hidden]`` ->
``[hidden, heads * head_dim]``), ``heads_bias`` (``[heads, head_dim]`` -> ``[heads * head_dim]``), ``same``;
``heads_first_in`` (Gemma's ``[heads, hidden, head_dim]`` -> ``[heads * head_dim, hidden]``);
``conv_heads_in`` / ``conv_heads_out`` keep Keras' ``[in, out]`` order (a transformers Conv1D's) and only merge the
head axes.  A kind ending ``@k/n`` makes the value block ``k`` of ``n`` that the writer joins along the target's last
axis (GPT-2's query, key and value side by side in one ``c_attn``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

Config = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One variable: a regex (fullmatch) over the path, the transformers name (``{i}``: layer index), the kind."""

    source: str
    target: str
    kind: str = "same"


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
    task_entries: tuple[Entry, ...] = ()  # over ``task/``-prefixed paths
    generates: bool = False
    tokenizer: str = ""  # transformers' tokenizer class reading the preset's vocabulary, where it has one


def _bert_config(c: Config) -> Config:
    return {
        "model_type": "bert",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_heads"],
        "intermediate_size": c["intermediate_dim"],
        "hidden_act": "gelu_new",  # KerasHub BERT uses the tanh approximation (gelu_approximate)
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "type_vocab_size": c.get("num_segments", 2),
        "hidden_dropout_prob": c.get("dropout", 0.1),
        "attention_probs_dropout_prob": c.get("dropout", 0.1),
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
    }


_ATTN_BERT = "_self_attention_layer"
BERT = Family(
    backbone="BertBackbone",
    model_type="bert",
    base_class="BertModel",
    base_prefix="bert",
    layer="transformer_encoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry("layers/position_embedding/vars/0", "embeddings.position_embeddings.weight"),
        Entry("layers/embedding/vars/0", "embeddings.token_type_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "embeddings.LayerNorm.weight"),
        Entry("layers/layer_normalization/vars/1", "embeddings.LayerNorm.bias"),
        Entry("layers/dense/vars/0", "pooler.dense.weight", "dense"),
        Entry("layers/dense/vars/1", "pooler.dense.bias"),
        *(
            Entry(f"{_ATTN_BERT}/{k}_dense/vars/{v}", f"encoder.layer.{{i}}.attention.self.{k}.{p}", kind)
            for k in ("query", "key", "value")
            for v, p, kind in ((0, "weight", "heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN_BERT}/output_dense/vars/0", "encoder.layer.{i}.attention.output.dense.weight", "heads_out"),
        Entry(f"{_ATTN_BERT}/output_dense/vars/1", "encoder.layer.{i}.attention.output.dense.bias"),
        Entry(f"{_ATTN_BERT}_norm/vars/0", "encoder.layer.{i}.attention.output.LayerNorm.weight"),
        Entry(f"{_ATTN_BERT}_norm/vars/1", "encoder.layer.{i}.attention.output.LayerNorm.bias"),
        Entry("_feedforward_intermediate_dense/vars/0", "encoder.layer.{i}.intermediate.dense.weight", "dense"),
        Entry("_feedforward_intermediate_dense/vars/1", "encoder.layer.{i}.intermediate.dense.bias"),
        Entry("_feedforward_output_dense/vars/0", "encoder.layer.{i}.output.dense.weight", "dense"),
        Entry("_feedforward_output_dense/vars/1", "encoder.layer.{i}.output.dense.bias"),
        Entry("_feedforward_layer_norm/vars/0", "encoder.layer.{i}.output.LayerNorm.weight"),
        Entry("_feedforward_layer_norm/vars/1", "encoder.layer.{i}.output.LayerNorm.bias"),
    ),
    config=_bert_config,
    tokenizer="BertTokenizer",
    tasks={"BertTextClassifier": "BertForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "classifier.bias"),
    ),
)


def _decoder_config(model_type: str, **extra: Any) -> Callable[[Config], Config]:
    """The config mapping of a Llama-shaped decoder (RMSNorm, rotary, SwiGLU, grouped-query attention)."""

    def mapping(c: Config) -> Config:
        out = {
            "model_type": model_type,
            "vocab_size": c["vocabulary_size"],
            "hidden_size": c["hidden_dim"],
            "num_hidden_layers": c["num_layers"],
            "num_attention_heads": c["num_query_heads"],
            "num_key_value_heads": c["num_key_value_heads"],
            "intermediate_size": c["intermediate_dim"],
            "hidden_act": "silu",
            "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
            "rope_theta": c.get("rope_max_wavelength", 10000),
            "max_position_embeddings": 2048,
            "tie_word_embeddings": bool(c.get("tie_word_embeddings", False)),
        }
        if c.get("head_dim"):
            out["head_dim"] = c["head_dim"]
        return out | {k: (c[v] if isinstance(v, str) and v in c else v) for k, v in extra.items()}

    return mapping


_ATTN = "_self_attention_layer"


def _decoder(backbone: str, model_type: str, stem: str, norm: str, qkv_bias: bool, config: Config) -> Family:
    """A Llama-shaped KerasHub decoder: ``<stem>_transformer_decoder`` layers, the final norm ``norm``."""
    prefix = backbone.removesuffix("Backbone")
    return Family(
        backbone=backbone,
        model_type=model_type,
        base_class=f"{prefix}Model",
        base_prefix="model",
        layer=f"{stem}_transformer_decoder",
        entries=(
            Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
            Entry("layers/reversible_embedding/vars/1", "lm_head.weight", "dense"),
            Entry(f"layers/{norm}/vars/0", "norm.weight"),
            *(
                Entry(f"{_ATTN}/_{k}_dense/vars/0", f"layers.{{i}}.self_attn.{p}_proj.weight", "heads_in")
                for k, p in (("query", "q"), ("key", "k"), ("value", "v"))
            ),
            *(
                Entry(f"{_ATTN}/_{k}_dense/vars/1", f"layers.{{i}}.self_attn.{p}_proj.bias", "heads_bias")
                for k, p in (("query", "q"), ("key", "k"), ("value", "v"))
                if qkv_bias
            ),
            Entry(f"{_ATTN}/_output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
            Entry("_self_attention_layernorm/vars/0", "layers.{i}.input_layernorm.weight"),
            Entry("_feedforward_layernorm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
            Entry("_feedforward_gate_dense/vars/0", "layers.{i}.mlp.gate_proj.weight", "dense"),
            Entry("_feedforward_intermediate_dense/vars/0", "layers.{i}.mlp.up_proj.weight", "dense"),
            Entry("_feedforward_output_dense/vars/0", "layers.{i}.mlp.down_proj.weight", "dense"),
        ),
        config=_decoder_config(model_type, **config),
        tokenizer=f"{prefix}Tokenizer",
        tasks={f"{prefix}CausalLM": f"{prefix}ForCausalLM"},
        generates=True,
    )


LLAMA = _decoder(
    "LlamaBackbone", "llama", "llama", "llama_layer_norm", False, {"attention_bias": False, "mlp_bias": False}
)
MISTRAL = replace(
    _decoder(
        "MistralBackbone",
        "mistral",
        "mistral",
        "mistral_layer_normalization",
        False,
        {"sliding_window": "sliding_window"},
    ),
    tokenizer="LlamaTokenizer",  # transformers reads Mistral's SentencePiece vocabulary with Llama's tokenizer
)
QWEN2 = replace(
    _decoder(
        "QwenBackbone",
        "qwen2",
        "qwen",
        "qwen_layer_norm",
        True,
        {"use_sliding_window": "use_sliding_window_attention", "sliding_window": "sliding_window_size"},
    ),
    base_class="Qwen2Model",
    tasks={"QwenCausalLM": "Qwen2ForCausalLM"},
    tokenizer="Qwen2Tokenizer",
)


def _gpt2_config(c: Config) -> Config:
    return {
        "model_type": "gpt2",
        "vocab_size": c["vocabulary_size"],
        "n_embd": c["hidden_dim"],
        "n_layer": c["num_layers"],
        "n_head": c["num_heads"],
        "n_inner": c["intermediate_dim"],
        "n_positions": c.get("max_sequence_length", 1024),
        "activation_function": "gelu_new",  # KerasHub: gelu_approximate, the tanh form
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": c.get("dropout", 0.1),
        "embd_pdrop": c.get("dropout", 0.1),
        "attn_pdrop": c.get("dropout", 0.1),
        "tie_word_embeddings": True,
    }


_ATTN_GPT2 = "_self_attention_layer"
GPT2 = Family(
    backbone="GPT2Backbone",
    model_type="gpt2",
    base_class="GPT2Model",
    base_prefix="transformer",
    layer="transformer_decoder",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "wte.weight"),
        Entry("layers/position_embedding/vars/0", "wpe.weight"),
        Entry("layers/layer_normalization/vars/0", "ln_f.weight"),
        Entry("layers/layer_normalization/vars/1", "ln_f.bias"),
        *(
            Entry(f"{_ATTN_GPT2}/{k}_dense/vars/{v}", f"h.{{i}}.attn.c_attn.{p}", f"{kind}@{n}/3")
            for n, k in enumerate(("query", "key", "value"))
            for v, p, kind in ((0, "weight", "conv_heads_in"), (1, "bias", "heads_bias"))
        ),
        Entry(f"{_ATTN_GPT2}/output_dense/vars/0", "h.{i}.attn.c_proj.weight", "conv_heads_out"),
        Entry(f"{_ATTN_GPT2}/output_dense/vars/1", "h.{i}.attn.c_proj.bias"),
        Entry(f"{_ATTN_GPT2}_norm/vars/0", "h.{i}.ln_1.weight"),
        Entry(f"{_ATTN_GPT2}_norm/vars/1", "h.{i}.ln_1.bias"),
        Entry("_feedforward_layer_norm/vars/0", "h.{i}.ln_2.weight"),
        Entry("_feedforward_layer_norm/vars/1", "h.{i}.ln_2.bias"),
        Entry("_feedforward_intermediate_dense/vars/0", "h.{i}.mlp.c_fc.weight"),
        Entry("_feedforward_intermediate_dense/vars/1", "h.{i}.mlp.c_fc.bias"),
        Entry("_feedforward_output_dense/vars/0", "h.{i}.mlp.c_proj.weight"),
        Entry("_feedforward_output_dense/vars/1", "h.{i}.mlp.c_proj.bias"),
    ),
    config=_gpt2_config,
    tokenizer="GPT2Tokenizer",
    tasks={"GPT2CausalLM": "GPT2LMHeadModel"},
    generates=True,
)


def _distilbert_config(c: Config) -> Config:
    return {
        "model_type": "distilbert",
        "vocab_size": c["vocabulary_size"],
        "dim": c["hidden_dim"],
        "n_layers": c["num_layers"],
        "n_heads": c["num_heads"],
        "hidden_dim": c["intermediate_dim"],
        "max_position_embeddings": c.get("max_sequence_length", 512),
        "activation": "gelu",
        "dropout": c.get("dropout", 0.1),
        "attention_dropout": c.get("dropout", 0.1),
        "sinusoidal_pos_embds": False,
        "pad_token_id": 0,
    }


def _encoder_layer(stem: str, names: dict[str, str], norms: tuple[str, str], ffn: tuple[str, str]) -> list[Entry]:
    """A KerasHub ``TransformerEncoder`` layer: ``names`` maps query/key/value/output to the attention modules under
    ``stem``; ``norms`` are the attention and feed-forward LayerNorms, ``ffn`` the two feed-forward Linears."""
    attn = "_self_attention_layer"
    out: list[Entry] = []
    for k in ("query", "key", "value"):
        out.append(Entry(f"{attn}/{k}_dense/vars/0", f"{stem}.{names[k]}.weight", "heads_in"))
        out.append(Entry(f"{attn}/{k}_dense/vars/1", f"{stem}.{names[k]}.bias", "heads_bias"))
    out.append(Entry(f"{attn}/output_dense/vars/0", f"{stem}.{names['output']}.weight", "heads_out"))
    out.append(Entry(f"{attn}/output_dense/vars/1", f"{stem}.{names['output']}.bias"))
    for source, target in ((f"{attn}_norm", norms[0]), ("_feedforward_layer_norm", norms[1])):
        out.append(Entry(f"{source}/vars/0", f"{stem}.{target}.weight"))
        out.append(Entry(f"{source}/vars/1", f"{stem}.{target}.bias"))
    for source, target in (("_feedforward_intermediate_dense", ffn[0]), ("_feedforward_output_dense", ffn[1])):
        out.append(Entry(f"{source}/vars/0", f"{stem}.{target}.weight", "dense"))
        out.append(Entry(f"{source}/vars/1", f"{stem}.{target}.bias"))
    return out


DISTILBERT = Family(
    backbone="DistilBertBackbone",
    model_type="distilbert",
    base_class="DistilBertModel",
    base_prefix="distilbert",
    layer="transformer_encoder",
    entries=(
        Entry("layers/token_and_position_embedding/token_embedding/vars/0", "embeddings.word_embeddings.weight"),
        Entry("layers/token_and_position_embedding/position_embedding/vars/0", "embeddings.position_embeddings.weight"),
        Entry("layers/layer_normalization/vars/0", "embeddings.LayerNorm.weight"),
        Entry("layers/layer_normalization/vars/1", "embeddings.LayerNorm.bias"),
        *_encoder_layer(
            "transformer.layer.{i}",
            {
                "query": "attention.q_lin",
                "key": "attention.k_lin",
                "value": "attention.v_lin",
                "output": "attention.out_lin",
            },
            ("sa_layer_norm", "output_layer_norm"),
            ("ffn.lin1", "ffn.lin2"),
        ),
    ),
    config=_distilbert_config,
    tokenizer="DistilBertTokenizer",
    tasks={"DistilBertTextClassifier": "DistilBertForSequenceClassification"},
    task_entries=(
        Entry("layers/dense/vars/0", "pre_classifier.weight", "dense"),
        Entry("layers/dense/vars/1", "pre_classifier.bias"),
        Entry("layers/dense_1/vars/0", "classifier.weight", "dense"),
        Entry("layers/dense_1/vars/1", "classifier.bias"),
    ),
)


def _gemma_config(c: Config) -> Config:
    return {
        "model_type": "gemma",
        "vocab_size": c["vocabulary_size"],
        "hidden_size": c["hidden_dim"],
        "intermediate_size": c["intermediate_dim"] // 2,  # KerasHub counts gate and up projections together
        "num_hidden_layers": c["num_layers"],
        "num_attention_heads": c["num_query_heads"],
        "num_key_value_heads": c["num_key_value_heads"],
        "head_dim": c["head_dim"],
        "hidden_activation": "gelu_pytorch_tanh",  # KerasHub: gelu(approximate=True)
        "rms_norm_eps": c.get("layer_norm_epsilon", 1e-6),
        "rope_theta": 10000.0,
        "max_position_embeddings": 8192,
        "tie_word_embeddings": True,
    }


_ATTN_GEMMA = "attention"
GEMMA = Family(
    backbone="GemmaBackbone",
    model_type="gemma",
    base_class="GemmaModel",
    base_prefix="model",
    layer="gemma_decoder_block",
    entries=(
        Entry("layers/reversible_embedding/vars/0", "embed_tokens.weight"),
        Entry("layers/rms_normalization/vars/0", "norm.weight"),
        *(
            Entry(f"{_ATTN_GEMMA}/{k}_dense/vars/0", f"layers.{{i}}.self_attn.{k[0]}_proj.weight", "heads_first_in")
            for k in ("query", "key", "value")
        ),
        Entry(f"{_ATTN_GEMMA}/output_dense/vars/0", "layers.{i}.self_attn.o_proj.weight", "heads_out"),
        Entry("pre_attention_norm/vars/0", "layers.{i}.input_layernorm.weight"),
        Entry("pre_ffw_norm/vars/0", "layers.{i}.post_attention_layernorm.weight"),
        Entry("gating_ffw/vars/0", "layers.{i}.mlp.gate_proj.weight", "dense"),
        Entry("gating_ffw_2/vars/0", "layers.{i}.mlp.up_proj.weight", "dense"),
        Entry("ffw_linear/vars/0", "layers.{i}.mlp.down_proj.weight", "dense"),
    ),
    config=_gemma_config,
    tokenizer="GemmaTokenizer",
    tasks={"GemmaCausalLM": "GemmaForCausalLM"},
    generates=True,
)

FAMILIES: tuple[Family, ...] = (BERT, LLAMA, MISTRAL, QWEN2, GPT2, DISTILBERT, GEMMA)
BY_BACKBONE: dict[str, Family] = {f.backbone: f for f in FAMILIES}
