"""A TF2 forward of a Mesh TensorFlow T5 / mT5 Bitransformer, for verification only.

Built from the checkpoint's variables by their Mesh TF names (``shared/embedding``,
``encoder|decoder/block_NNN/layer_NNN/...``), it computes what Mesh TF's T5 computes:

* pre-norm layers, each ``x + sublayer(rms_norm(x))``; RMS norm ``x * rsqrt(mean(x^2) + 1e-6) * scale``
  (no mean, no bias), and a final RMS norm per stack;
* attention without the ``1/sqrt(d_kv)`` scaling (T5 folds it into the initialisation), plus a relative
  position bias looked up in block 0's ``relative_attention_bias`` (``[heads, buckets]``) by log-spaced
  buckets (bidirectional in the encoder, causal in the decoder, max distance 128) and shared by every block;
  masked positions get -1e9; the decoder's cross-attention has no position bias;
* ``DenseReluDense``: ``relu(x @ wi) @ wo`` (v1.0) or ``(gelu_tanh(x @ wi_0) * (x @ wi_1)) @ wo`` (v1.1, mT5),
  with the activation the config names (``relu`` or Mesh TF's tanh ``gelu``; a ``gated-`` one multiplies);
* logits: with embeddings shared with the softmax, ``(y * d_model**-0.5) @ shared/embedding^T``; else
  ``y @ decoder/logits/kernel``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Weights = Callable[[str], np.ndarray]

EPS = 1e-6
MAX_DISTANCE = 128
NEG = -1e9


def _gelu_tanh(x: Any) -> Any:
    import tensorflow as tf

    return tf.nn.gelu(x, approximate=True)  # mtf.gelu is the tanh approximation


def _relu(x: Any) -> Any:
    import tensorflow as tf

    return tf.nn.relu(x)


# Mesh TF's DenseReluDense activations (``feed_forward_proj`` without ``gated-``).
_ACTIVATIONS: dict[str, Callable[[Any], Any]] = {"relu": _relu, "gelu": _gelu_tanh}


def position_buckets(qlen: int, klen: int, *, bidirectional: bool, num_buckets: int, max_distance: int) -> np.ndarray:
    """``[qlen, klen]`` bucket of each (query, memory) pair: exact for small distances, log-spaced beyond."""
    relative = np.arange(klen)[None, :] - np.arange(qlen)[:, None]  # memory - query
    n = -relative
    bucket = np.zeros_like(n)
    if bidirectional:
        num_buckets //= 2
        bucket += (n < 0).astype(n.dtype) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    exact = num_buckets // 2
    # log-spaced buckets for distances >= exact, up to max_distance (then the last bucket)
    far = exact + (
        np.log(np.maximum(n, 1).astype(np.float32) / exact) / math.log(max_distance / exact) * (num_buckets - exact)
    ).astype(n.dtype)
    far = np.minimum(far, num_buckets - 1)
    out: np.ndarray = bucket + np.where(n < exact, n, far)
    return out


def t5_forward(
    weights: Weights,
    config: dict[str, Any],
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    decoder_input_ids: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``encoder_last_hidden_state`` ``[batch, src, d_model]`` and, given decoder inputs, ``logits``."""
    import tensorflow as tf

    def w(name: str) -> Any:
        return tf.constant(np.asarray(weights(name), dtype=np.float32))

    heads, d_kv = config["num_heads"], config["d_kv"]
    buckets = config["relative_attention_num_buckets"]
    max_distance = config.get("relative_attention_max_distance", MAX_DISTANCE)
    proj = str(config.get("feed_forward_proj", "relu"))
    gated, act = proj.startswith("gated-"), _ACTIVATIONS[proj.removeprefix("gated-")]
    eps = config.get("layer_norm_epsilon", EPS)

    def rms_norm(x: Any, scope: str) -> Any:
        return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + eps) * w(f"{scope}/scale")

    def split(t: Any) -> Any:
        return tf.transpose(tf.reshape(t, [t.shape[0], t.shape[1], heads, d_kv]), [0, 2, 1, 3])

    def attention(x: Any, memory: Any, bias: Any, scope: str) -> Any:
        q, k, v = split(x @ w(f"{scope}/q")), split(memory @ w(f"{scope}/k")), split(memory @ w(f"{scope}/v"))
        scores = tf.matmul(q, k, transpose_b=True) + bias  # no 1/sqrt(d_kv): T5 folds it into the weights
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [x.shape[0], x.shape[1], heads * d_kv])
        return context @ w(f"{scope}/o")

    def position_bias(stack: str, qlen: int, klen: int) -> Any:
        table = w(f"{stack}/block_000/layer_000/SelfAttention/relative_attention_bias")  # [heads, buckets]
        ids = position_buckets(
            qlen, klen, bidirectional=stack == "encoder", num_buckets=buckets, max_distance=max_distance
        )
        return tf.gather(table, ids, axis=1)[None]  # [heads, buckets] -> [1, heads, q, k]

    def ffn(x: Any, scope: str) -> Any:
        if gated:
            return (act(x @ w(f"{scope}/wi_0/kernel")) * (x @ w(f"{scope}/wi_1/kernel"))) @ w(f"{scope}/wo/kernel")
        return act(x @ w(f"{scope}/wi/kernel")) @ w(f"{scope}/wo/kernel")

    embedding = w("shared/embedding")
    pad = (1.0 - tf.cast(attention_mask, tf.float32))[:, None, None, :] * NEG  # [batch, 1, 1, src]
    src = input_ids.shape[1]
    x = tf.gather(embedding, input_ids)
    enc_bias = position_bias("encoder", src, src) + pad
    for b in range(config["num_layers"]):
        block = f"encoder/block_{b:03d}"
        h = rms_norm(x, f"{block}/layer_000/rms_norm")
        x = x + attention(h, h, enc_bias, f"{block}/layer_000/SelfAttention")
        x = x + ffn(rms_norm(x, f"{block}/layer_001/rms_norm"), f"{block}/layer_001/DenseReluDense")
    memory = rms_norm(x, "encoder/rms_norm")
    out = {"encoder_last_hidden_state": memory.numpy()}
    if decoder_input_ids is None:
        return out

    tgt = decoder_input_ids.shape[1]
    causal = (1.0 - np.tril(np.ones((tgt, tgt), dtype=np.float32)))[None, None] * NEG
    dec_bias = position_bias("decoder", tgt, tgt) + causal
    y = tf.gather(embedding, decoder_input_ids)
    for b in range(config.get("num_decoder_layers") or config["num_layers"]):
        block = f"decoder/block_{b:03d}"
        h = rms_norm(y, f"{block}/layer_000/rms_norm")
        y = y + attention(h, h, dec_bias, f"{block}/layer_000/SelfAttention")
        y = y + attention(rms_norm(y, f"{block}/layer_001/rms_norm"), memory, pad, f"{block}/layer_001/EncDecAttention")
        y = y + ffn(rms_norm(y, f"{block}/layer_002/rms_norm"), f"{block}/layer_002/DenseReluDense")
    y = rms_norm(y, "decoder/rms_norm")
    if config.get("tie_word_embeddings", True):
        logits = tf.matmul(y * config["d_model"] ** -0.5, embedding, transpose_b=True)
    else:
        logits = y @ w("decoder/logits/kernel")
    out["logits"] = logits.numpy()
    return out
