"""Rule packs: the floor that lists them.  Each family's pack is ``bridge/families/<family>/pack.py``
(``google_bert``: google-research BERT, ``hf_tf``: transformers' TF layout, of BERT and, generically, of other
transformers families, ``seq2seq``: TF-Hub BERT seq2seq, ``keras``: Keras layers against a PyTorch twin, ...);
here live what they share (:mod:`bridge.rules.layouts`, :mod:`bridge.rules.writers`) and ``user`` (rule files).

A rule is data: a regular expression matched in full against a TF-side name, a ``str.format`` template for the
PyTorch-side name, and a named transform (:mod:`bridge.core.transforms`).  The pack's shape is
:class:`bridge.core.packs.RulePack`; its names and its parts (``Matching``, ``Detection``, ...) are re-exported here
for rule files (``from bridge.rules import Rule, RulePack``).
"""

from __future__ import annotations

from bridge.core.packs import (
    Buffer,
    ConfigHooks,
    Copy,
    Detection,
    Docs,
    Head,
    Incompatible,
    Matching,
    Optional_,
    Output,
    PyTorchSide,
    Rule,
    RulePack,
    TensorFlowSide,
    WordEmbeddings,
)

__all__ = [
    "Buffer",
    "ConfigHooks",
    "Copy",
    "Detection",
    "Docs",
    "Head",
    "Incompatible",
    "Matching",
    "Optional_",
    "Output",
    "PyTorchSide",
    "Rule",
    "RulePack",
    "TensorFlowSide",
    "WordEmbeddings",
    "get_pack",
    "packs",
]


def packs() -> list[RulePack]:
    """Every pack, in the order detection breaks ties."""
    from bridge.families.albert import pack as albert
    from bridge.families.electra import pack as electra
    from bridge.families.google_bert import pack as bert
    from bridge.families.gpt2 import pack as gpt2
    from bridge.families.hf_tf import generic_pack as hf_tf_generic
    from bridge.families.hf_tf import pack as hf_tf
    from bridge.families.keras import pack as keras
    from bridge.families.keras_hub import pack as keras_hub
    from bridge.families.seq2seq import pack as seq2seq
    from bridge.families.t5 import pack as t5
    from bridge.families.xlnet import pack as xlnet

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
        keras_hub.PACK,
        keras.PACK,
    ]


def get_pack(name: str) -> RulePack:
    from bridge.core.errors import UsageError

    for pack in packs():
        if pack.name == name:
            return pack
    raise UsageError(f"Unknown rule pack '{name}'", hint=f"Known packs: {', '.join(p.name for p in packs())}")
