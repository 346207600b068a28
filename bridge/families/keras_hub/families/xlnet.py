"""XLNet: ``XLNetBackbone`` <-> ``XLNetModel`` (relative attention with its content, position and segment biases,
segment encodings and the mask embedding; every kernel ``[hidden, heads, head_dim]`` in both libraries).

KerasHub's backbone computes bidirectional attention (``attn_type`` "bi") over the sequence alone: no memory, no
``bi_data`` streams, no clamped or same-length positions; configs asking for those are refused.  Its padding mask is
turned into the attention mask by a reshape of ``[batch, seq]`` to ``[seq, batch]`` (not a transpose): a batch of
one row, or rows padded alike, is masked as transformers masks it; other padded batches differ.
"""

from __future__ import annotations

from bridge.families.keras_hub.table import Config, Entry, Family, Writing, refuse, require

_EPSILON = 1e-12  # KerasHub's XLNet layer norms


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "xlnet",
        "vocab_size": c["vocabulary_size"],
        "d_model": c["hidden_dim"],
        "n_layer": c["num_layers"],
        "n_head": c["num_heads"],
        "d_head": c["hidden_dim"] // c["num_heads"],
        "d_inner": c["intermediate_dim"],
        "ff_activation": c.get("activation", "gelu"),
        "dropout": c.get("dropout", 0.0),
        "layer_norm_eps": _EPSILON,
        "attn_type": "bi",
        "bi_data": False,
        "clamp_len": -1,
        "same_length": False,
        "mem_len": None,
        "reuse_len": None,
        "untie_r": True,
        "pad_token_id": 5,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def _to_keras(c: Config) -> Config:
    require(
        c,
        (
            ("attn_type", "bi", "KerasHub's XLNet attends bidirectionally"),
            ("bi_data", False, "KerasHub's XLNet runs one positional stream"),
            ("same_length", False, "KerasHub's XLNet attends over every position"),
            ("layer_norm_eps", _EPSILON, "KerasHub's XLNet layer norms use 1e-12"),
            ("ff_activation", "gelu", "KerasHub's XLNet feed-forward is built here with the exact gelu"),
        ),
    )
    if int(c.get("clamp_len", -1) or -1) > 0:
        raise refuse(c, f"clamp_len {c['clamp_len']}", "KerasHub's XLNet does not clamp relative positions")
    if c["d_model"] != c["n_head"] * c.get("d_head", c["d_model"] // c["n_head"]):
        raise refuse(c, f"d_head {c['d_head']}", "KerasHub's XLNet heads are d_model / n_head wide")
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["n_layer"],
        "num_heads": c["n_head"],
        "hidden_dim": c["d_model"],
        "intermediate_dim": c["d_inner"],
        "dropout": c.get("dropout", 0.1),
        "activation": "gelu",
    }


def _notes(c: Config) -> list[str]:
    if c.get("mem_len") is None:
        return []
    return [f"mem_len {c['mem_len']}: KerasHub's XLNet keeps no memory (the hidden states of one call agree)"]


_WB = ((0, "weight"), (1, "bias"))
_STEM = "layer.{i}"
XLNET = Family(
    backbone="XLNetBackbone",
    model_type="xlnet",
    base_class="XLNetModel",
    base_prefix="transformer",
    layer="xl_net_encoder",
    entries=(
        Entry("layers/content_and_query_embedding/word_embed/vars/0", "word_embedding.weight"),
        Entry("layers/xl_net_attention_mask_layer/vars/0", "mask_emb"),
        *(
            Entry(f"relative_attention/{k}_dense/vars/0", f"{_STEM}.rel_attn.{name}")
            for k, name in (("query", "q"), ("key", "k"), ("value", "v"), ("output", "o"), ("_encoding", "r"))
        ),
        *(
            Entry(f"vars/{v}", f"{_STEM}.rel_attn.{name}")
            for v, name in enumerate(("r_w_bias", "r_r_bias", "r_s_bias", "seg_embed"))
        ),
        *(Entry(f"layer_norm/vars/{v}", f"{_STEM}.rel_attn.layer_norm.{p}") for v, p in _WB),
        *(Entry(f"layer_norm_ff/vars/{v}", f"{_STEM}.ff.layer_norm.{p}") for v, p in _WB),
        Entry("feedforward_intermediate_dense/vars/0", f"{_STEM}.ff.layer_1.weight", "dense"),
        Entry("feedforward_intermediate_dense/vars/1", f"{_STEM}.ff.layer_1.bias"),
        Entry("feedforward_output_dense/vars/0", f"{_STEM}.ff.layer_2.weight", "dense"),
        Entry("feedforward_output_dense/vars/1", f"{_STEM}.ff.layer_2.bias"),
    ),
    config=_to_transformers,
    writing=Writing(
        "keras_hub.src.models.xlnet", _to_keras, (), notes=_notes, files={"XLNetBackbone": "xlnet_backbone"}
    ),
)
