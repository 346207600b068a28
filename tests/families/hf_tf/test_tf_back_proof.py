"""The one-time proof with transformers 4.57 (``prove_tf_back.py``) covers every class bridge writes back: each
fixture class of a family in ``WRITTEN_BACK`` (but the classes ``NOT_WRITTEN`` refuses) loaded clean into 4.57's own
TF class from bridge's ``tf_model.h5``, its outputs within 1e-5 of the 4.57 model's."""

from __future__ import annotations

import json

from tests.families.hf_tf.prove_tf_back import MAX_DIFF, PROOF, written_classes


def test_every_class_written_back_is_proven_with_transformers_4_57() -> None:
    proof = json.loads(PROOF.read_text())
    classes = written_classes()
    assert classes and sorted(proof) == sorted(classes)  # a family added to WRITTEN_BACK needs the proof rerun
    for tf_class in classes:
        assert proof[tf_class]["loaded_clean"], tf_class
        assert proof[tf_class]["max_abs_diff"] <= MAX_DIFF, tf_class
