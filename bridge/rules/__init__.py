"""Rule packs, one module per family: ``bert`` (google-research BERT), ``hf_tf`` (transformers' TF layout),
``hf_tf_generic`` (the same layout for other transformers families),
``seq2seq`` (TF-Hub BERT seq2seq), ``keras`` (Keras layers against a PyTorch twin), and ``user`` (rule files).

A rule is data: a regular expression matched in full against a TF-side name, a ``str.format`` template for the
PyTorch-side name, and a named transform (:mod:`bridge.core.transforms`).  The pack's shape is
:class:`bridge.core.packs.RulePack`; its names are re-exported here for rule files (``from bridge.rules import
Rule, RulePack``).
"""

from __future__ import annotations

from bridge.core.packs import Buffer, Copy, Head, Incompatible, Optional_, Output, Rule, RulePack, WordEmbeddings

__all__ = [
    "Buffer",
    "Copy",
    "Head",
    "Incompatible",
    "Optional_",
    "Output",
    "Rule",
    "RulePack",
    "WordEmbeddings",
    "get_pack",
    "packs",
]


def packs() -> list[RulePack]:
    """Every pack, in the order detection breaks ties."""
    from bridge.rules import albert, bert, electra, gpt2, hf_tf, hf_tf_generic, keras, seq2seq, t5, xlnet

    return [
        bert.PACK,
        seq2seq.PACK,
        hf_tf.PACK,
        hf_tf_generic.PACK,
        albert.PACK,
        electra.PACK,
        gpt2.PACK,
        t5.PACK,
        xlnet.PACK,
        keras.PACK,
    ]


def get_pack(name: str) -> RulePack:
    from bridge.core.errors import UsageError

    for pack in packs():
        if pack.name == name:
            return pack
    raise UsageError(f"Unknown rule pack '{name}'", hint=f"Known packs: {', '.join(p.name for p in packs())}")
