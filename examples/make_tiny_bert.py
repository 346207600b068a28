"""Write examples/tiny-bert/: a tiny google-research-BERT-style pretraining checkpoint.

Written by TensorFlow's own TF1 ``Saver`` (the writer the google-research code used),
with the real variable names, Adam slots (``adam_m``/``adam_v``) and ``global_step``,
plus ``bert_config.json`` and ``vocab.txt``.  Deterministic values (seeded numpy).
The files are committed so that ``make demo`` needs no TensorFlow; rerun this script
(``python examples/make_tiny_bert.py``) only to regenerate them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CONFIG = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 32,
    "max_position_embeddings": 32,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "vocab_size": 64,
}


def bert_shapes(config: dict[str, int]) -> dict[str, tuple[int, ...]]:
    """google-research/bert variable names and shapes, pretraining heads included.

    The table lives in the google-bert rule pack; it is pinned there against a real
    google-research checkpoint (../shared/fixtures/keras-bert-tiny-tf1, tests/golden).
    """
    from bridge.families.google_bert.pack import tf_layout

    return tf_layout(config, ("pooler", "mlm", "nsp"))


def bert_variables(config: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded values for :func:`bert_shapes` (LayerNorm gammas near 1, the rest N(0, 0.02))."""
    out = {}
    for name, shape in bert_shapes(config).items():
        value = rng.normal(0.0, 0.02, size=shape).astype(np.float32)
        out[name] = value + 1 if name.endswith("/gamma") else value
    return out


def write_tf1_checkpoint(
    prefix: Path, values: dict[str, np.ndarray | tuple[int, ...]], *, adam: bool, step: int
) -> None:
    """Save variables (plus Adam slots and global_step) with TensorFlow's TF1 Saver.

    A value given as a shape is initialised inside the graph (random normal), so that
    large checkpoints do not put gigabytes of constants into the graph.
    """
    import tensorflow as tf

    rng = np.random.default_rng(1)
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, value in values.items():
            if isinstance(value, tuple):
                init = tf.compat.v1.random_normal_initializer(stddev=0.02)
                variables.append(tf.compat.v1.get_variable(name, shape=value, initializer=init))
                if adam:
                    for slot in ("adam_m", "adam_v"):
                        variables.append(tf.compat.v1.get_variable(f"{name}/{slot}", shape=value, initializer=init))
                continue
            variables.append(tf.compat.v1.get_variable(name, initializer=value))
            if adam:
                for slot in ("adam_m", "adam_v"):
                    slot_value = np.abs(rng.normal(0, 1e-3, size=value.shape)).astype(value.dtype)
                    variables.append(tf.compat.v1.get_variable(f"{name}/{slot}", initializer=slot_value))
        variables.append(tf.compat.v1.get_variable("global_step", initializer=np.int64(step)))
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(prefix), write_meta_graph=False, write_state=False)


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    values = bert_variables(CONFIG, np.random.default_rng(0))
    write_tf1_checkpoint(out_dir / "bert_model.ckpt", values, adam=True, step=1000)
    (out_dir / "bert_config.json").write_text(json.dumps(CONFIG, indent=2, sort_keys=True) + "\n")
    specials = ["[PAD]"] + [f"[unused{k}]" for k in range(3)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["the", "a", "##s", "##ed", "is", "of"]
    vocab = (specials + words + [f"##{k}" for k in range(64)])[: CONFIG["vocab_size"]]
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "tiny-bert")
