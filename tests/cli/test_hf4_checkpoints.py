"""PyTorch checkpoints as the hub holds them: written by transformers < 4.31 (a persistent ``position_ids`` buffer,
``tests/fixtures/make_hf4_position_ids.py``), alone without their config, compared PyTorch to PyTorch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bridge.api import load
from bridge.commands.check import check
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "tests" / "fixtures" / "bert-4x-position-ids"  # BertModel, sentence-transformers style names
PRETRAINING = REPO / "tests" / "fixtures" / "bert-4x-pretraining"  # BertForPreTraining, `bert.` prefix


@pytest.mark.parametrize(
    ("source", "buffer"), [(BASE, "embeddings.position_ids"), (PRETRAINING, "bert.embeddings.position_ids")]
)
@pytest.mark.parametrize("layout", ["google-bert", "hf-tf"])
def test_position_ids_is_an_expected_leftover(source, buffer, layout):
    with load(source) as ckpt:  # what 4.30 wrote: int64 arange over the positions, [1, max_position_embeddings]
        value = ckpt[buffer].numpy()
    assert value.dtype == np.int64 and value.tolist() == [list(range(32))]
    plan = check(source, to="tensorflow", target=layout)
    assert plan.ok, [g.reason for g in plan.gaps]
    (row,) = [u for u in plan.unused if u.name == buffer]
    assert row.expected and "constant buffer" in row.reason and "4.31" in row.reason


def test_edited_position_ids_is_a_gap(torch, tmp_path):
    """A buffer that does not hold what transformers rebuilds changed the model's positions: never expected."""
    state = torch.load(BASE / "pytorch_model.bin", weights_only=True)
    state["embeddings.position_ids"] = state["embeddings.position_ids"] + 2  # positions shifted by two
    shutil.copy(BASE / "config.json", tmp_path / "config.json")
    torch.save(state, tmp_path / "pytorch_model.bin")
    text = run_cli("check", str(tmp_path), "--to", "tensorflow", code=1)
    assert "! embeddings.position_ids [1, 32]: a constant buffer" in text
    assert "not the ones the target rebuilds" in text


def test_convert_and_verify_with_position_ids(torch, tmp_path):
    pytest.importorskip("tensorflow")  # verify's TF reference forward; after torch (conftest order)
    transformers = pytest.importorskip("transformers")
    out = tmp_path / "tf"
    text = run_cli("convert", str(BASE), "--to", "tensorflow", "-o", str(out))
    assert "wrote" in text and (out / "bert_model.ckpt.index").is_file()
    with load(out) as converted:
        assert not any("position_ids" in r.name for r in converted.values())
    text = run_cli("verify", str(BASE), str(out))
    assert "values: 39/39 tensors bit-exact" in text and "verdict: PASS" in text
    # transformers 5 loads the 4.x file and ignores the buffer (its own oracle of "expected leftover").
    model, info = transformers.BertModel.from_pretrained(BASE, output_loading_info=True)
    assert not info["missing_keys"] and set(info["unexpected_keys"]) <= {"embeddings.position_ids"}
    assert json.loads((out / "bert_config.json").read_text())["hidden_size"] == 16


def test_pytorch_to_pytorch_says_no_rules_were_used():
    """Both sides PyTorch: names are compared as they are, so the header names no rule pack as the mapping."""
    text = run_cli("check", str(PRETRAINING), "--to", "pytorch", "--target", "BertForPreTraining")
    header = text.splitlines()[0]
    assert "rules: google-bert" not in header
    assert "no rules: names compared as they are; google-bert lays out the target and explains leftovers" in header
    report = json.loads(run_cli("check", str(PRETRAINING), "--to", "pytorch", "--json"))
    assert report["rules_applied"] is False
    # A reference state dict as the target: the pack lays nothing out.
    text = run_cli("check", str(PRETRAINING), "--to", "pytorch", "--target", str(BASE / "pytorch_model.bin"))
    assert "google-bert explains leftovers)" in text.splitlines()[0]
    # Across frameworks the pack's rules do map the names.
    text = run_cli("check", str(PRETRAINING), "--to", "tensorflow")
    assert "(torch, rules: google-bert)" in text.splitlines()[0]
    assert "rules_applied" not in json.loads(run_cli("check", str(PRETRAINING), "--to", "tensorflow", "--json"))


@pytest.mark.parametrize("source", [BASE, PRETRAINING])
def test_lone_bin_infers_its_config_from_pytorch_names(source, tmp_path):
    """A `pytorch_model.bin` copied without its config.json: the sizes come from the PyTorch names' shapes and
    agree with the config.json transformers wrote beside it; the report names what shapes cannot tell."""
    shutil.copy(source / "pytorch_model.bin", tmp_path / "pytorch_model.bin")
    lone = tmp_path / "pytorch_model.bin"
    written = json.loads((source / "config.json").read_text())
    for to, target in (("pytorch", "BertModel"), ("tensorflow", "google-bert"), ("tensorflow", "hf-tf")):
        text = run_cli("check", str(lone), "--to", to, "--target", target)
        assert "Cannot infer" not in text and "verdict: OK" in text
        assert "config inferred from tensor shapes (no config.json beside the checkpoint)" in text
        assert "assumed num_attention_heads = hidden_size/64 = 1, hidden_act `gelu` (exact)" in text
        plan = check(lone, to=to, target=target)
        config = plan.target.config
        for key in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
                    "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps"):  # fmt: skip
            assert config[key] == written[key], key
    out = tmp_path / "tf"
    run_cli("convert", str(lone), "--to", "tensorflow", "-o", str(out))
    bert_config = json.loads((out / "bert_config.json").read_text())
    assert bert_config["num_hidden_layers"] == 2 and bert_config["vocab_size"] == 64


def test_lone_tf_model_h5_infers_its_config(tmp_path):
    """transformers' tf_model.h5 without config.json: the sizes come through the hf-tf rules."""
    source = REPO / "tests" / "fixtures" / "hf-tf-bert"
    shutil.copy(source / "tf_model.h5", tmp_path / "tf_model.h5")
    plan = check(tmp_path / "tf_model.h5", to="pytorch")
    assert plan.ok and plan.pack == "hf-tf"
    written = json.loads((source / "config.json").read_text())
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "max_position_embeddings"):
        assert plan.target.config[key] == written[key], key
