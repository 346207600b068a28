"""google-research/albert TF1 checkpoints (written by TensorFlow's Saver, tests/families/albert/make_fixtures.py)
against the state dicts transformers 4.57's ``load_tf_weights_in_albert`` made of them (committed, oracle/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import bridge
from tests.conftest import run_cli

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PRETRAINING = FIXTURES / "albert-tf1"
HUB_CLASSIFIER = FIXTURES / "albert-hub-classifier-tf1"


def _values(path: Path) -> dict[str, np.ndarray]:
    with bridge.load(path) as ckpt:
        return {r.name: r.numpy().copy() for r in ckpt.values() if r.kind == "model"}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    ("source", "target", "oracle", "prefix"),
    [
        (PRETRAINING, "AlbertForPreTraining", "AlbertForPreTraining", ""),
        (PRETRAINING, "AlbertForMaskedLM", "AlbertForPreTraining", ""),
        (PRETRAINING, "AlbertModel", "AlbertForPreTraining", "albert."),
        (HUB_CLASSIFIER, "AlbertForSequenceClassification", "AlbertForSequenceClassification", ""),
    ],
)
@pytest.mark.slow
def test_convert_equals_transformers_4_loader_and_loads_in_5(transformers, source, target, oracle, prefix, tmp_path):
    """Bit for bit the 4.57 loader's tensors (for AlbertForMaskedLM and AlbertModel, which that loader cannot
    fill from a pretraining checkpoint, the same tensors of its AlbertForPreTraining); transformers 5 loads the
    output with no missing or unexpected keys, ties the decoder itself, and verify passes (values only)."""
    out = tmp_path / target
    run_cli("convert", str(source), "--to", "pytorch", "--target", target, "-o", str(out), "--quiet")
    expected = {k.removeprefix(prefix): v for k, v in _values(source / "oracle" / f"{oracle}.safetensors").items()}
    written = _values(out / "model.safetensors")
    assert written and all(_same(v, expected[k]) for k, v in written.items())

    model, info = getattr(transformers, target).from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    # Every tensor of the loaded model, the tied decoder included, is the 4.57 loader's.
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    assert state.keys() <= expected.keys()
    assert all(_same(v, expected[k]) for k, v in state.items())
    assert model.config.hidden_act == "gelu_new"  # google-research's tanh gelu

    # a class chosen without some of the source's heads: verify fails on exactly those, every value exact
    dropped = target != oracle
    report = json.loads(run_cli("verify", str(source), str(out), "--json", code=1 if dropped else 0))
    assert report["values"]["bit_exact"] == report["values"]["compared"] == len(written)
    assert bool(report["plan_gaps"]) == dropped and all("not in the output" in g for g in report["plan_gaps"])
    assert any("no forward check for the albert rules" in n for n in report["notes"])


def test_detected_and_optimizer_state_classified():
    plan = json.loads(run_cli("check", str(PRETRAINING), "--to", "pytorch", "--json"))
    assert plan["rules"] == "albert" and plan["target"]["class"] == "AlbertForPreTraining"
    kinds = {u["kind"] for u in plan["unused"]}
    assert kinds == {"optimizer", "counter"} and all(u["expected"] for u in plan["unused"])
    assert len([u for u in plan["unused"] if u["kind"] == "optimizer"]) == 2 * len(plan["matched"])


def test_hub_module_layout_defaults_to_its_classifier():
    plan = json.loads(run_cli("check", str(HUB_CLASSIFIER), "--to", "pytorch", "--json"))
    assert plan["rules"] == "albert" and plan["target"]["class"] == "AlbertForSequenceClassification"
    sources = {m["target"]: m["source"] for m in plan["matched"]}
    assert sources["albert.encoder.albert_layer_groups.1.albert_layers.1.ffn_output.weight"] == (
        "module/bert/encoder/transformer/group_1/inner_group_1/ffn_1/intermediate/output/dense/kernel"
    )
    assert sources["classifier.weight"] == "output_weights"


def test_inferred_config_says_what_it_assumed(tmp_path):
    for f in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        (tmp_path / f).write_bytes((HUB_CLASSIFIER / f).read_bytes())
    plan = json.loads(run_cli("check", str(tmp_path), "--to", "pytorch", "--json"))
    config = plan["target"]["config"]
    assert (config["num_hidden_groups"], config["inner_group_num"], config["embedding_size"]) == (2, 2, 8)
    assert config["num_labels"] == 3
    assert any("num_hidden_layers assumed 12" in n for n in plan["notes"])
