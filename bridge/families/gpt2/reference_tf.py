"""A TF2 implementation of openai/gpt-2's forward pass, for verification only.

Built from a checkpoint's variables by name (openai ``src/model.py`` naming, values as stored: conv1d
kernels ``[1, nx, nf]``), it computes what the original code computes, so a converted PyTorch model can be
compared against it.  Math follows ``model.py``: LayerNorm over the last axis with epsilon 1e-5, ``conv1d`` is
``x @ w.reshape(nx, nf) + b``, the gelu is the tanh approximation, attention scores are scaled by
``1/sqrt(head_dim)`` and masked causally by ``w * b - 1e10 * (1 - b)``, and the logits are ``h @ wte^T``.
openai's model has no padding mask, so inputs are full rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Weights = Callable[[str], np.ndarray]


def gpt2_forward(
    weights: Weights, config: dict[str, Any], input_ids: np.ndarray, *, eps: float = 1e-5
) -> dict[str, np.ndarray]:
    """Run GPT-2 on a batch.

    Args:
        weights: name -> value (``lambda n: ckpt[n].numpy()``), openai names.
        config: ``n_head`` and ``n_layer`` (``hparams.json`` or a transformers GPT2Config).
        input_ids: ``[batch, seq]`` int array, ``seq`` at most ``n_ctx``.
        eps: the LayerNorm epsilon (openai: 1e-5).

    Returns:
        ``hidden`` (after ``ln_f``) and ``logits``.
    """
    import tensorflow as tf

    def w(name: str) -> Any:
        return tf.constant(np.asarray(weights(name), dtype=np.float32))

    def norm(x: Any, scope: str) -> Any:
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + eps) * w(f"{scope}/g") + w(f"{scope}/b")

    def conv1d(x: Any, scope: str) -> Any:
        kernel = w(f"{scope}/w")
        nx, nf = kernel.shape[-2], kernel.shape[-1]
        flat = tf.matmul(tf.reshape(x, [-1, nx]), tf.reshape(kernel, [nx, nf])) + w(f"{scope}/b")
        return tf.reshape(flat, [*x.shape[:-1], nf])

    def gelu(x: Any) -> Any:
        return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))

    n_head = int(config.get("n_head", config.get("num_attention_heads", 0)))
    n_layer = int(config.get("n_layer", config.get("num_hidden_layers", 0)))
    batch, seq = input_ids.shape

    def split_heads(t: Any) -> Any:
        return tf.transpose(tf.reshape(t, [batch, seq, n_head, -1]), [0, 2, 1, 3])

    causal = tf.cast(tf.range(seq)[:, None] >= tf.range(seq)[None, :], tf.float32)
    h = tf.gather(w("model/wte"), input_ids) + w("model/wpe")[:seq][None]
    for layer in range(n_layer):
        scope = f"model/h{layer}"
        c = conv1d(norm(h, f"{scope}/ln_1"), f"{scope}/attn/c_attn")
        q, k, v = (split_heads(t) for t in tf.split(c, 3, axis=2))
        scores = tf.matmul(q, k, transpose_b=True) * tf.math.rsqrt(tf.cast(tf.shape(v)[-1], tf.float32))
        probs = tf.nn.softmax(scores * causal - 1e10 * (1.0 - causal), axis=-1)
        a = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [batch, seq, -1])
        h = h + conv1d(a, f"{scope}/attn/c_proj")
        m = gelu(conv1d(norm(h, f"{scope}/ln_2"), f"{scope}/mlp/c_fc"))
        h = h + conv1d(m, f"{scope}/mlp/c_proj")
    h = norm(h, "model/ln_f")
    logits = tf.matmul(tf.reshape(h, [batch * seq, -1]), w("model/wte"), transpose_b=True)
    return {"hidden": h.numpy(), "logits": tf.reshape(logits, [batch, seq, -1]).numpy()}
