"""T5: ``T5Backbone`` <-> ``T5Model``, ``T5Seq2SeqLM`` <-> ``T5ForConditionalGeneration``.  KerasHub numbers
the encoder's and the decoder's blocks in one layer class (``t5_transformer_layer`` ``0..N-1`` encode, ``N..2N-1``
decode), and only each stack's first block holds the relative attention table; the embeddings are shared by both
stacks.  transformers 5's T5 always ties its output projection to the embeddings (a saved ``tie_word_embeddings:
false``, T5 1.1's, only turns off the ``d_model ** -0.5`` scaling of the decoder's output: its config's
``scale_decoder_outputs``), while KerasHub's untied T5 has a projection of its own and no scaling: only the tied,
scaled form is the same model on both sides."""

from __future__ import annotations

from bridge.families.keras_hub.table import (
    Config,
    Entry,
    Family,
    LoraOrder,
    LoraSite,
    LoraStack,
    Stack,
    Writing,
    refuse,
    require,
)

_LAYER = "t5_transformer_layer"
_ACTIVATIONS = {"keras_hub>gelu_approximate": "gelu_new", "gelu_approximate": "gelu_new"}


def _feed_forward_proj(c: Config) -> str:
    """transformers' ``feed_forward_proj`` of KerasHub's ``activation`` and ``use_gated_activation``."""
    activation = c.get("activation", "relu")
    if isinstance(activation, dict):  # a registered function (KerasHub's gelu_approximate), serialized
        activation = activation.get("config")
    name = _ACTIVATIONS.get(activation, activation) if isinstance(activation, str) else "relu"
    if not c.get("use_gated_activation"):
        return name
    # transformers reads "gated-gelu" as the tanh form (T5 v1.1's): KerasHub's exact gelu is "gelu_python" there
    return "gated-gelu_python" if name == "gelu" else f"gated-{name}"


# transformers' activation (``feed_forward_proj`` less ``gated-``) -> the Keras activation computing it
_KERAS_ACTIVATIONS: dict[str, str | Config] = {
    "relu": "relu",
    "gelu": "gelu",  # both exact
    "gelu_python": "gelu",
    "gelu_new": {  # both the tanh form: KerasHub's own function, as Keras serializes it
        "module": "builtins",
        "class_name": "function",
        "config": "keras_hub>gelu_approximate",
        "registered_name": "function",
    },
    "silu": "silu",
}


def _to_keras(c: Config) -> Config:
    """The ``T5Backbone`` config of a transformers T5 config, refusing what KerasHub's T5 cannot compute."""
    proj = str(c.get("feed_forward_proj", "relu"))
    gated = proj.startswith("gated-")
    name = "gelu_new" if proj == "gated-gelu" else proj.removeprefix("gated-")  # transformers' own reading
    if name not in _KERAS_ACTIVATIONS:
        raise refuse(
            c, f"feed_forward_proj {proj}", "KerasHub's T5 feed-forward computes " + ", ".join(_KERAS_ACTIVATIONS)
        )
    fixed = "KerasHub's T5 attention buckets relative positions into 32 buckets up to distance 128"
    require(
        c,
        (
            ("num_decoder_layers", c["num_layers"], "KerasHub's T5 has as many decoder blocks as encoder blocks"),
            ("relative_attention_num_buckets", 32, fixed),
            ("relative_attention_max_distance", 128, fixed),
            (
                "tie_word_embeddings",
                True,
                "transformers 5 ties T5's output projection but does not scale it, "
                "KerasHub's untied T5 has a projection of its own",
            ),
            ("scale_decoder_outputs", True, "KerasHub's tied T5 scales the decoder's output by d_model ** -0.5"),
        ),
        unset_ok=True,
    )
    return {
        "vocabulary_size": c["vocab_size"],
        "num_layers": c["num_layers"],
        "num_heads": c["num_heads"],
        "hidden_dim": c["d_model"],
        "intermediate_dim": c["d_ff"],
        "key_value_dim": c["d_kv"],
        "dropout": c.get("dropout_rate", 0.1),
        "activation": _KERAS_ACTIVATIONS[name],
        "use_gated_activation": gated,
        "layer_norm_epsilon": c.get("layer_norm_epsilon", 1e-6),
        "tie_embedding_weights": True,
    }


def _to_transformers(c: Config) -> Config:
    return {
        "model_type": "t5",
        "vocab_size": c["vocabulary_size"],
        "d_model": c["hidden_dim"],
        "d_kv": c.get("key_value_dim") or c["hidden_dim"] // c["num_heads"],
        "d_ff": c["intermediate_dim"],
        "num_layers": c["num_layers"],
        "num_decoder_layers": c["num_layers"],
        "num_heads": c["num_heads"],
        "relative_attention_num_buckets": 32,  # KerasHub's T5 attention: fixed
        "relative_attention_max_distance": 128,
        "dropout_rate": c.get("dropout", 0.1),
        "layer_norm_epsilon": c.get("layer_norm_epsilon", 1e-6),
        "feed_forward_proj": _feed_forward_proj(c),
        "tie_word_embeddings": c.get("tie_embedding_weights", True),
        "is_encoder_decoder": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "decoder_start_token_id": 0,
    }


def _attention(keras: str, torch: str) -> tuple[Entry, ...]:
    """A KerasHub T5 attention layer and its norm as transformers' ``SelfAttention`` / ``EncDecAttention``."""
    return (
        *(Entry(f"{keras}/{k}_projector/vars/0", f"{torch}.{k[0]}.weight", "dense") for k in ("query", "key", "value")),
        Entry(f"{keras}/output_projector/vars/0", f"{torch}.o.weight", "dense"),
    )


def _feed_forward(stem: str) -> tuple[Entry, ...]:
    """The block's feed-forward (``wi`` or the gated ``wi_0`` and ``wi_1``, ``wo``) and its norm."""
    return (
        Entry("input_projector/vars/0", f"{stem}.DenseReluDense.wi.weight", "dense"),
        Entry("output_projector/vars/0", f"{stem}.DenseReluDense.wo.weight", "dense"),
        Entry("layer_norm/vars/0", f"{stem}.layer_norm.weight"),
    )


def _gated(stem: str) -> tuple[Entry, ...]:
    return (
        Entry("input_projector/vars/0", f"{stem}.DenseReluDense.wi_0.weight", "dense"),
        Entry("gate_projector/vars/0", f"{stem}.DenseReluDense.wi_1.weight", "dense"),
        Entry("output_projector/vars/0", f"{stem}.DenseReluDense.wo.weight", "dense"),
        Entry("layer_norm/vars/0", f"{stem}.layer_norm.weight"),
    )


def _bias(stem: str) -> tuple[Entry, ...]:
    return (Entry("self_attention/vars/0", f"{stem}.layer.0.SelfAttention.relative_attention_bias.weight"),)


def _stacks(gated: bool) -> tuple[Stack, Stack]:
    ffn = _gated if gated else _feed_forward
    enc, dec = "encoder.block.{i}.layer", "decoder.block.{i}.layer"
    encoder = Stack(
        _LAYER,
        (
            *_attention("self_attention", f"{enc}.0.SelfAttention"),
            Entry("self_attention_layer_norm/vars/0", f"{enc}.0.layer_norm.weight"),
            *ffn(f"{enc}.1"),
        ),
        first=_bias("encoder.block.0"),
    )
    decoder = Stack(
        _LAYER,
        (
            *_attention("self_attention", f"{dec}.0.SelfAttention"),
            Entry("self_attention_layer_norm/vars/0", f"{dec}.0.layer_norm.weight"),
            *_attention("cross_attention", f"{dec}.1.EncDecAttention"),
            Entry("cross_attention_layer_norm/vars/0", f"{dec}.1.layer_norm.weight"),
            *ffn(f"{dec}.2"),
        ),
        start_key="num_layers",
        first=_bias("decoder.block.0"),
    )
    return encoder, decoder


def _gated_config(c: Config) -> bool:
    return str(c.get("feed_forward_proj", "relu")).startswith("gated")


def _lora_block(stem: str, ffn: int, attentions: tuple[tuple[int, str], ...]) -> tuple[LoraSite | None, ...]:
    """A T5 block's LoRA order: its feed-forward (a gate where gated), then its attention layers, last-built
    first; every kernel a plain ``Dense``."""

    def dense(keras: str, module: str, held: bool | None = None) -> LoraSite:
        when = None if held is None else (_gated_config if held else lambda c: not _gated_config(c))
        return LoraSite(keras, f"{stem}.{module}", kind="dense", held=when)

    mlp = f"layer.{ffn}.DenseReluDense"
    out: list[LoraSite | None] = [None, None]  # the block, the feed-forward's norm
    out += [dense("output_projector", f"{mlp}.wo"), dense("gate_projector", f"{mlp}.wi_1", True)]
    out += [dense("input_projector", f"{mlp}.wi_0", True), dense("input_projector", f"{mlp}.wi", False)]
    for n, name in attentions:
        out += [None, None]  # the attention's norm, the attention layer
        out += [dense(f"{k}_projector", f"layer.{n}.{name}.{k[0]}") for k in ("output", "value", "key", "query")]
    return tuple(out)


_LORA = LoraOrder(
    1,  # the shared token embedding
    _lora_block("encoder.block.{i}", 1, ((0, "SelfAttention"),)),
    ("num_layers", "num_heads", "num_heads"),
    stacks=(
        LoraStack(
            1,  # the encoder's final norm
            _lora_block("decoder.block.{i}", 2, ((1, "EncDecAttention"), (0, "SelfAttention"))),
            ("num_decoder_layers", "num_heads", "num_heads"),
        ),
    ),
)


def _family(gated: bool) -> Family:
    return Family(
        backbone="T5Backbone",
        model_type="t5",
        base_class="T5Model",
        base_prefix="transformer",
        layer=_LAYER,
        entries=(
            Entry("layers/reversible_embedding/vars/0", "shared.weight"),
            Entry("layers/t5_layer_norm/vars/0", "encoder.final_layer_norm.weight"),
            Entry("layers/t5_layer_norm_1/vars/0", "decoder.final_layer_norm.weight"),
        ),
        stacks=_stacks(gated),
        config=_to_transformers,
        tokenizer="T5Tokenizer",
        vocabulary="spiece",
        tasks={"T5Seq2SeqLM": "T5ForConditionalGeneration"},
        writing=Writing(
            "keras_hub.src.models.t5",
            _to_keras,
            ("Seq2SeqLM",),
            tokenizer="T5Tokenizer",
            files={"T5Seq2SeqLM": "t5_seq_2_seq_lm"},
        ),
        # transformers 5's T5 always ties its output projection to the embeddings: an untied preset is not read
        claims=lambda c: bool(c.get("use_gated_activation")) == gated and c.get("tie_embedding_weights", True),
        lora=_LORA,  # one order for both: a gated model's sites are held only where the config is gated
    )


T5 = _family(gated=False)
T5_GATED = _family(gated=True)  # T5 1.1, Flan-T5: a gated feed-forward (``wi_0``, ``wi_1``)
