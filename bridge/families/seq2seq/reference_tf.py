"""A TF2 forward of a TF-Hub "bertseq2seq" encoder-decoder, for verification only.

Built from the checkpoint's variables by name (``PREFIX/embeddings``, ``PREFIX/encoder/layer_N``,
``PREFIX/decoder/layer_N`` or, when coupled, the ``encoder`` stack in both roles).  Post-LN
BERT layers as in google-research ``modeling.py`` (tanh ``gelu``, LayerNorm epsilon 1e-12,
``-10000`` at masked positions); the decoder adds causal self-attention and cross-attention
(``attention/encdec``, ``attention/encdec_output``) after self-attention; logits are the decoder
output times the word-embedding table (plus ``output_bias`` where the checkpoint has one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bridge.families.google_bert.reference_tf import WeightOps, gelu_tanh

Weights = Callable[[str], np.ndarray]


def seq2seq_forward(
    weights: Weights,
    config: dict[str, Any],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    decoder_input_ids: np.ndarray,
    *,
    prefix: str,
    coupled: bool,
    output_bias: str | None = None,
) -> dict[str, np.ndarray]:
    """``encoder_last_hidden_state`` ``[batch, src, hidden]`` and ``logits`` ``[batch, tgt, vocab]``."""
    import tensorflow as tf

    ops = WeightOps(lambda name: weights(f"{prefix}{name}"), eps=config.get("layer_norm_eps", 1e-12))
    w, dense, layer_norm = ops.w, ops.dense, ops.layer_norm

    hidden = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    head_size = hidden // n_heads

    def split(t: Any) -> Any:
        b, s = t.shape[0], t.shape[1]
        return tf.transpose(tf.reshape(t, [b, s, n_heads, head_size]), [0, 2, 1, 3])

    def attention(x: Any, memory: Any, adder: Any, scope: str, out_scope: str) -> Any:
        q, k, v = (
            split(dense(x, f"{scope}/query")),
            split(dense(memory, f"{scope}/key")),
            split(dense(memory, f"{scope}/value")),
        )
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_size) + adder
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [x.shape[0], x.shape[1], hidden])
        return layer_norm(dense(context, f"{out_scope}/dense") + x, out_scope)

    def embed(ids: np.ndarray) -> Any:
        x = tf.gather(w("embeddings/word_embeddings"), ids) + w("embeddings/position_embeddings")[: ids.shape[1]][None]
        return layer_norm(x, "embeddings")

    def ffn(x: Any, scope: str) -> Any:
        return layer_norm(
            dense(gelu_tanh(dense(x, f"{scope}/intermediate/dense")), f"{scope}/output/dense") + x, f"{scope}/output"
        )

    enc_adder = (1.0 - tf.cast(attention_mask[:, None, None, :], tf.float32)) * -10000.0
    x = embed(input_ids)
    for i in range(config["num_hidden_layers"]):
        scope = f"encoder/layer_{i}"
        x = ffn(attention(x, x, enc_adder, f"{scope}/attention/self", f"{scope}/attention/output"), scope)
    memory = x

    tgt = decoder_input_ids.shape[1]
    causal = np.tril(np.ones((tgt, tgt), dtype=np.float32))
    dec_adder = tf.constant((1.0 - causal)[None, None] * -10000.0)
    stack = "encoder" if coupled else "decoder"
    y = embed(decoder_input_ids)
    for i in range(config.get("decoder_num_hidden_layers", config["num_hidden_layers"])):
        scope = f"{stack}/layer_{i}"
        y = attention(y, y, dec_adder, f"{scope}/attention/self", f"{scope}/attention/output")
        y = attention(y, memory, enc_adder, f"{scope}/attention/encdec", f"{scope}/attention/encdec_output")
        y = ffn(y, scope)
    logits = tf.matmul(y, w("embeddings/word_embeddings"), transpose_b=True)
    if output_bias is not None:
        logits += w(output_bias)
    return {"encoder_last_hidden_state": memory.numpy(), "logits": logits.numpy()}
