"""Tiny TF-Hub-shaped "bertseq2seq" modules written with TensorFlow's TF1 Saver (test fixtures).

Names follow the bertseq2seq lineage: a prefix (two components in Hub modules; any depth, or
none), ``embeddings/`` without token types, ``encoder/layer_N`` and ``decoder/layer_N`` with
``attention/encdec*`` in the decoder role.  ``coupled=True`` writes one stack named ``encoder``
holding the ``encdec`` variables.  The module graph is not read by the bridge:
``tfhub_module.pb`` and ``saved_model.pb`` are placeholder bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIZES = {"vocab_size": 40, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2,
         "max_position_embeddings": 32}  # fmt: skip


def seq2seq_variables(
    *, coupled: bool, prefix: str = "module/bert", seed: int = 0, extra: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    scope = f"{prefix}/" if prefix else ""  # "": names start at embeddings/, encoder/, decoder/
    v, h, i, p = (SIZES[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "max_position_embeddings"))

    def rand(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.2, size=shape).astype(np.float32)

    def ln(scope: str) -> dict[str, np.ndarray]:
        return {f"{scope}/LayerNorm/gamma": 1 + rand(h), f"{scope}/LayerNorm/beta": rand(h)}

    def dense(scope: str, n_in: int, n_out: int) -> dict[str, np.ndarray]:
        return {f"{scope}/kernel": rand(n_in, n_out), f"{scope}/bias": rand(n_out)}

    out: dict[str, np.ndarray] = {
        f"{scope}embeddings/word_embeddings": rand(v, h),
        f"{scope}embeddings/position_embeddings": rand(p, h),
        **ln(f"{scope}embeddings"),
    }
    stacks = [("encoder", coupled)] + ([] if coupled else [("decoder", True)])
    for stack, cross in stacks:
        for n in range(SIZES["num_hidden_layers"]):
            layer = f"{scope}{stack}/layer_{n}"
            for proj in ("query", "key", "value"):
                out.update(dense(f"{layer}/attention/self/{proj}", h, h))
            out.update(dense(f"{layer}/attention/output/dense", h, h))
            out.update(ln(f"{layer}/attention/output"))
            if cross:
                for proj in ("query", "key", "value"):
                    out.update(dense(f"{layer}/attention/encdec/{proj}", h, h))
                out.update(dense(f"{layer}/attention/encdec_output/dense", h, h))
                out.update(ln(f"{layer}/attention/encdec_output"))
            out.update(dense(f"{layer}/intermediate/dense", h, i))
            out.update(dense(f"{layer}/output/dense", i, h))
            out.update(ln(f"{layer}/output"))
    for name in extra:
        out[name] = rand(3, 5)
    return out


def write_hub_module(folder: Path, values: dict[str, np.ndarray]) -> Path:
    """``folder/{tfhub_module.pb, saved_model.pb, variables/variables.*}`` with TF1's Saver."""
    import tensorflow as tf

    (folder / "variables").mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=value) for name, value in values.items()]
        variables.append(tf.compat.v1.get_variable("global_step", initializer=np.int64(0), trainable=False))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(folder / "variables" / "variables"), write_meta_graph=False, write_state=False)
    (folder / "tfhub_module.pb").write_bytes(b"\x08\x03")  # placeholder: the graph is not read
    (folder / "saved_model.pb").write_bytes(b"")
    return folder
