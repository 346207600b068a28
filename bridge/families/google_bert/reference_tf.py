"""A TF2 implementation of the google-research BERT forward pass, for verification only.

Built from a checkpoint's variables by name (google-research ``modeling.py``
naming), it computes what the original TF1 code computes, so a converted
PyTorch model can be compared against it.  Math follows ``modeling.py``:
``gelu`` is the tanh approximation, LayerNorm epsilon 1e-12, attention scores
scaled by ``1/sqrt(head_size)`` with ``-10000`` added at masked positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

Weights = Callable[[str], np.ndarray]


def gelu_tanh(x: Any) -> Any:
    import tensorflow as tf

    return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))


def gelu_erf(x: Any) -> Any:
    """The exact gelu: transformers' ``gelu`` (its TF models' too)."""
    import tensorflow as tf

    return 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0)))


_GELU = {"tanh": gelu_tanh, "erf": gelu_erf}


class WeightOps:
    """Dense and LayerNorm over checkpoint weights fetched by scope name (google-research math).

    ``eps`` is google-research's 1e-12 unless the model's config says otherwise
    (``layer_norm_eps``): the reference computes what the converted model's config asks for.
    """

    def __init__(self, weights: Weights, eps: float = 1e-12) -> None:
        self.weights = weights
        self.eps = eps

    def w(self, name: str) -> Any:
        import tensorflow as tf

        return tf.constant(np.asarray(self.weights(name), dtype=np.float32))

    def dense(self, x: Any, scope: str) -> Any:
        import tensorflow as tf

        return tf.matmul(x, self.w(f"{scope}/kernel")) + self.w(f"{scope}/bias")

    def layer_norm(self, x: Any, scope: str) -> Any:
        import tensorflow as tf

        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        gamma, beta = self.w(f"{scope}/LayerNorm/gamma"), self.w(f"{scope}/LayerNorm/beta")
        return (x - mean) * tf.math.rsqrt(var + self.eps) * gamma + beta


def bert_forward(
    weights: Weights,
    config: dict[str, Any],
    input_ids: np.ndarray,
    token_type_ids: np.ndarray,
    attention_mask: np.ndarray,
    *,
    heads: tuple[str, ...] = (),
    gelu: str = "tanh",
) -> dict[str, np.ndarray]:
    """Run BERT on a batch.

    Args:
        weights: name -> value (e.g. ``lambda n: ckpt[n].numpy()``), google-research names.
        config: ``bert_config.json`` contents.
        input_ids, token_type_ids, attention_mask: ``[batch, seq]`` int arrays.
        heads: any of ``pooler``, ``mlm``, ``nsp`` to compute beside the sequence output.
        gelu: ``tanh`` (google-research's ``gelu``) or ``erf`` (the exact one, transformers' ``gelu``).

    Returns:
        ``sequence_output`` and, as asked, ``pooled_output``, ``mlm_logits``, ``nsp_logits``.
    """
    import tensorflow as tf

    ops = WeightOps(weights, eps=config.get("layer_norm_eps", 1e-12))
    w, dense, layer_norm = ops.w, ops.dense, ops.layer_norm
    act = _GELU[gelu]

    hidden = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    head_size = hidden // n_heads
    batch, seq = input_ids.shape

    x = tf.gather(w("bert/embeddings/word_embeddings"), input_ids)
    x += tf.gather(w("bert/embeddings/token_type_embeddings"), token_type_ids)
    x += w("bert/embeddings/position_embeddings")[:seq][None]
    x = layer_norm(x, "bert/embeddings")

    adder = (1.0 - tf.cast(attention_mask[:, None, None, :], tf.float32)) * -10000.0

    def split(t: Any) -> Any:
        return tf.transpose(tf.reshape(t, [batch, seq, n_heads, head_size]), [0, 2, 1, 3])

    for i in range(config["num_hidden_layers"]):
        scope = f"bert/encoder/layer_{i}"
        q = split(dense(x, f"{scope}/attention/self/query"))
        k = split(dense(x, f"{scope}/attention/self/key"))
        v = split(dense(x, f"{scope}/attention/self/value"))
        scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_size) + adder
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [batch, seq, hidden])
        attn = layer_norm(dense(context, f"{scope}/attention/output/dense") + x, f"{scope}/attention/output")
        inter = act(dense(attn, f"{scope}/intermediate/dense"))
        x = layer_norm(dense(inter, f"{scope}/output/dense") + attn, f"{scope}/output")

    out = {"sequence_output": x.numpy()}
    if "pooler" in heads or "nsp" in heads:
        pooled = tf.tanh(dense(x[:, 0], "bert/pooler/dense"))
        out["pooled_output"] = pooled.numpy()
        if "nsp" in heads:
            logits = tf.matmul(pooled, w("cls/seq_relationship/output_weights"), transpose_b=True)
            out["nsp_logits"] = (logits + w("cls/seq_relationship/output_bias")).numpy()
    if "mlm" in heads:
        t = layer_norm(act(dense(x, "cls/predictions/transform/dense")), "cls/predictions/transform")
        logits = tf.matmul(t, w("bert/embeddings/word_embeddings"), transpose_b=True)
        out["mlm_logits"] = (logits + w("cls/predictions/output_bias")).numpy()
    return out
