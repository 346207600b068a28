"""Generate tests/fixtures/hf-tf-deberta-v2-unshared/ (run ONCE with the transformers 4.57 venv):

    /work/venv-tf4/bin/python tests/families/hf_tf/make_deberta_unshared.py

A tiny TFDebertaV2ForMaskedLM with ``share_att_key: false``, so its attention has its own position projections
(TF's ``pos_proj``/``pos_q_proj``, PyTorch's ``pos_key_proj``/``pos_query_proj``): tf/ (save_pretrained) and
io.npz (hf_tf_specs' fixed inputs, the TF model's logits on them, training=False).  No pt/: 4.57's own
TF -> PyTorch loader gets these two projections wrong (issue 22), so it is no oracle here; the TF forward is.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

HERE = Path(__file__).resolve().parent
OUT = HERE.parents[1] / "fixtures" / "hf-tf-deberta-v2-unshared"
CONFIG = dict(
    vocab_size=40, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
    max_position_embeddings=16, relative_attention=True, position_buckets=4, max_relative_positions=-1,
    pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=False, position_biased_input=False,
)  # fmt: skip


def main() -> None:
    import numpy as np
    import tensorflow as tf
    import transformers

    sys.path.insert(0, str(HERE))
    from hf_tf_specs import text_inputs

    assert transformers.__version__.startswith("4."), transformers.__version__
    tf.random.set_seed(0)
    config = transformers.DebertaV2Config(**CONFIG)
    model = transformers.TFDebertaV2ForMaskedLM.from_config(config)
    model(model.dummy_inputs)
    model.save_pretrained(str(OUT / "tf"))
    names = sorted(v.name for v in model.variables if "pos_" in v.name)
    assert any("pos_proj" in n for n in names) and any("pos_q_proj" in n for n in names), names
    inputs = text_inputs(config)
    logits = model(**{k: tf.constant(v) for k, v in inputs.items()}, training=False).logits.numpy()
    np.savez(OUT / "io.npz", **inputs, logits=logits)
    meta = {"class": "DebertaV2ForMaskedLM", "inputs": sorted(inputs), "outputs": ["logits"], "atol": 1e-5}
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    (OUT / "SOURCE.txt").write_text(
        f"Written by real transformers {transformers.__version__} (TensorFlow {tf.__version__}, tf-keras) code: "
        "tests/families/hf_tf/make_deberta_unshared.py. tf/: TFDebertaV2ForMaskedLM.from_config(tiny DebertaV2Config "
        "with share_att_key=False, relative_attention, position_buckets 4, pos_att_type p2c+c2p), built by a call on "
        "its dummy_inputs, save_pretrained. io.npz: fixed inputs and the TF logits on them (training=False).\n"
    )


if __name__ == "__main__":
    main()
