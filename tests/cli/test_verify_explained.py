"""`bridge verify` of a faithful PyTorch -> google-bert conversion whose forward differs only by the activation:
transformers' `gelu` is the exact erf form, google-research's the tanh form.  The verdict says so, with the
matched-activation figure and both ways forward; a difference the activation does not explain stays a bare FAIL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def transformers(torch):
    pytest.importorskip("tensorflow")  # verify's reference forward; after torch (conftest order)
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def erf_bert(transformers, torch, tmp_path_factory) -> tuple[Path, Path]:
    """A transformers BertForPreTraining with exact `gelu`, converted to google-bert.  Weights drawn 10x larger
    than BERT's init put the intermediate activations where erf and tanh gelu differ by more than 1e-5 (as a
    trained bert-base does: about 1e-3)."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_act="gelu",
        initializer_range=0.2,
    )
    root = tmp_path_factory.mktemp("erf")
    transformers.BertForPreTraining(config).save_pretrained(root / "pt")
    run_cli("convert", str(root / "pt"), "--to", "tensorflow", "--target", "google-bert", "-o", str(root / "tf"), "-q")
    return root / "pt", root / "tf"


def test_activation_difference_is_explained_with_the_way_forward(erf_bert, tmp_path):
    pt, tf = erf_bert
    text = run_cli("verify", str(pt), str(tf), code=1)  # the two models do compute different things
    verdict = text.splitlines()[-1]
    assert verdict.startswith("verdict: FAIL (explained): values bit-exact; the forward differs by up to ")
    assert (
        "all of it from the activation: transformers' `gelu` (erf) on the PyTorch side vs google-research's "
        "tanh form on the TF side; with matched activations the outputs agree to "
    ) in verdict
    assert f'set "hidden_act": "gelu_new" in {pt / "config.json"}' in verdict
    report = json.loads(run_cli("verify", str(pt), str(tf), "--json", code=1))
    assert not report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"] == 46
    worst = max(o["max_abs"] for o in report["outputs"])
    assert worst > 1e-4  # well over atol: a real difference, not rounding
    forward = report["forward"]
    assert forward["status"] == "explained" and forward["cause"] == "activation"
    assert forward["matched_max_abs"] <= 1e-5
    assert worst <= forward["accept_atol"] < 2 * worst
    assert f"--atol {forward['accept_atol']:g}" in verdict

    # Both ways forward do what the verdict says.  --atol accepts the difference as it is:
    accepted = json.loads(run_cli("verify", str(pt), str(tf), "--atol", f"{forward['accept_atol']:g}", "--json"))
    assert accepted["ok"] and accepted["forward"] == {"status": "pass"}
    # The fix: transformers itself, computing the tanh form (gelu_new), agrees with the TF side at 1e-5.
    fixed = tmp_path / "pt"
    shutil.copytree(pt, fixed)
    config = json.loads((fixed / "config.json").read_text())
    (fixed / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu_new"}))
    after = json.loads(run_cli("verify", str(fixed), str(tf), "--json"))
    assert after["ok"] and after["forward"] == {"status": "pass"}


def test_a_difference_the_activation_does_not_cover_stays_fail(erf_bert):
    """At --atol 0 even matched activations differ (float rounding across frameworks): not explained."""
    pt, tf = erf_bert
    text = run_cli("verify", str(pt), str(tf), "--atol", "0", code=1)
    assert text.splitlines()[-1] == "verdict: FAIL"
    assert "the activation does not explain it all" in text
    report = json.loads(run_cli("verify", str(pt), str(tf), "--atol", "0", "--json", code=1))
    assert report["forward"] == {"status": "fail"}


def test_values_that_differ_are_never_explained_by_the_activation(erf_bert, tmp_path):
    """One source tensor changed after the conversion: values are not bit-exact, so the forward difference is not
    put on the activation, however small the change."""
    from safetensors.numpy import load_file, save_file

    pt, tf = erf_bert
    changed = tmp_path / "pt"
    shutil.copytree(pt, changed)
    state = load_file(changed / "model.safetensors")
    state["bert.pooler.dense.bias"] = state["bert.pooler.dense.bias"] + np.float32(1e-6)
    save_file(state, changed / "model.safetensors", metadata={"format": "pt"})
    report = json.loads(run_cli("verify", str(changed), str(tf), "--json", code=1))
    assert report["values"]["failures"] == ["bert.pooler.dense.bias -> bert/pooler/dense/bias: values differ"]
    assert report["forward"] == {"status": "fail"}
    text = run_cli("verify", str(changed), str(tf), code=1)
    assert text.splitlines()[-1] == "verdict: FAIL"
