"""What prove_original_back.py found, once, with transformers 4.57.6 (its own load_tf_weights_in_<family> reading
the checkpoints bridge writes back): the state dict converted from, tensor for tensor.  CI has no 4.57: the
script's results are committed and read here; the script itself is kept beside them to run again."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = json.loads(Path(__file__).with_name("original_back_457.json").read_text())


def test_transformers_457_reads_every_layout_back_into_the_same_state_dict():
    assert RESULTS["transformers"] == "4.57.6"
    cases = {k: v for k, v in RESULTS.items() if isinstance(v, dict)}
    assert {c["layout"] for c in cases.values()} == {"albert", "electra", "xlnet", "t5"}
    for name, case in cases.items():
        assert case["same"] and not case["differ"] and not case["not_stored_untied"], name
        assert case["compared"] > 0, name
    # the only tensor 4.57 leaves alone is one the fine-tuned layout never holds
    assert {k for c in cases.values() for k in c["not_in_layout_left_at_init"]} == {"transformer.mask_emb"}


def test_transformers_457_reads_both_electra_networks_from_the_one_checkpoint():
    """discriminator/ + generator/ into one checkpoint: 4.57's loader reads each network back out of it."""
    pair = {k: RESULTS[k] for k in ("electra-pair-discriminator", "electra-pair-generator")}
    assert [c["class"] for c in pair.values()] == ["ElectraForPreTraining", "ElectraForMaskedLM"]
    assert all(c["same"] and c["compared"] == RESULTS[k.replace("pair-", "")]["compared"] for k, c in pair.items())
