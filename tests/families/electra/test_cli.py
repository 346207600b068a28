"""google-research/electra TF1 pretraining checkpoint (written by TensorFlow's Saver, tests/families/electra/
make_fixtures.py) against the state dicts transformers 4.57's ``load_tf_weights_in_electra`` made of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bridge
from tests.conftest import run_cli

SOURCE = Path(__file__).resolve().parents[2] / "fixtures" / "electra-tf1"


def _values(path: Path) -> dict[str, np.ndarray]:
    with bridge.load(path) as ckpt:
        return {r.name: r.numpy().copy() for r in ckpt.values() if r.kind == "model"}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    ("target", "oracle", "prefix", "hidden"),
    [
        ("ElectraForPreTraining", "ElectraForPreTraining", "", 16),
        ("ElectraModel", "ElectraForPreTraining", "electra.", 16),  # 4.57 loads nothing into ElectraModel
        ("ElectraForMaskedLM", "ElectraForMaskedLM", "", 4),  # the generator, its own sizes
    ],
)
def test_convert_equals_transformers_4_loader_and_loads_in_5(transformers, target, oracle, prefix, hidden, tmp_path):
    out = tmp_path / target
    run_cli("convert", str(SOURCE), "--to", "pytorch", "--target", target, "-o", str(out), "--quiet")
    expected = {k.removeprefix(prefix): v for k, v in _values(SOURCE / "oracle" / f"{oracle}.safetensors").items()}
    written = _values(out / "model.safetensors")
    assert written and all(_same(v, expected[k]) for k, v in written.items())

    model, info = getattr(transformers, target).from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert state.keys() <= expected.keys() and all(_same(v, expected[k]) for k, v in state.items())
    assert model.config.hidden_size == hidden and model.config.hidden_act == "gelu"  # electra's erf gelu

    # ElectraModel was chosen without the discriminator's head: verify fails naming what the output lacks (the
    # generator, a second network, is no loss for any target)
    report = json.loads(run_cli("verify", str(SOURCE), str(out), "--json", code=1 if target == "ElectraModel" else 0))
    assert report["values"]["bit_exact"] == report["values"]["compared"] == len(written)
    lacked = {gap.split("`")[1] for gap in report["plan_gaps"]}
    assert report["ok"] == (not lacked) and all(n.startswith("discriminator_predictions/") for n in lacked)
    assert bool(lacked) == (target == "ElectraModel")
    assert any("no forward check for the electra rules" in n for n in report["notes"])


def test_default_target_is_the_discriminator_and_slots_are_optimizer_state():
    plan = json.loads(run_cli("check", str(SOURCE), "--to", "pytorch", "--json"))
    assert plan["rules"] == "electra" and plan["target"]["class"] == "ElectraForPreTraining"
    assert plan["target"]["config"]["generator"]["hidden_size"] == 4
    model = [u for u in plan["unused"] if u["kind"] == "model"]
    assert model and all(u["expected"] and "generator" in u["reason"] for u in model)
    assert {u["kind"] for u in plan["unused"]} == {"model", "optimizer", "counter"}
    assert all(u["expected"] for u in plan["unused"])
    sources = {m["target"]: (m["source"], m["transform"]) for m in plan["matched"]}
    assert sources["discriminator_predictions.dense_prediction.weight"] == (
        "discriminator_predictions/dense_1/kernel",
        "transpose",
    )


def test_generator_takes_the_shared_embeddings():
    plan = json.loads(run_cli("check", str(SOURCE), "--to", "pytorch", "--target", "ElectraForMaskedLM", "--json"))
    sources = {m["target"]: m["source"] for m in plan["matched"]}
    assert sources["electra.embeddings.word_embeddings.weight"] == "electra/embeddings/word_embeddings"
    assert sources["electra.embeddings_project.weight"] == "generator/embeddings_project/kernel"
    assert sources["generator_lm_head.bias"] == "generator_predictions/output_bias"
    assert {t["name"]: t["tied_to"] for t in plan["tied"]} == {
        "generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"
    }
