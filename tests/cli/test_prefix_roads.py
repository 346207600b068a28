"""``--strip-prefix`` / ``--add-prefix`` on every road: check, convert, verify's values and verify's forward, PyTorch
-> TF and TF -> PyTorch, on files written by real torch/safetensors/TensorFlow.  The prefix-applied names are the
ones the pack's ties see: a ``module.``-prefixed pre-training state dict whose tied decoder is stored as its own
equal tensor is "tied ... stored once", as it is without the prefix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
DDP_PRETRAINING = FIXTURES / "bert-ddp-pretraining"  # BertForPreTraining, every key `module.`, decoder stored apart
DDP = FIXTURES / "bert-ddp"  # BertModel, every key `module.`
BASE_NAMES = FIXTURES / "hf-tf-bert-pt"  # BertModel saved by save_pretrained: no `bert.` prefix
TINY = REPO / "examples" / "tiny-bert"  # google-research TF1 checkpoint

# (source, --to, extra convert args, prefix option, its value)
ROADS = {
    "pt-tf-strip-tied": (DDP_PRETRAINING, "tensorflow", ["--target", "google-bert"], "--strip-prefix", "module."),
    "pt-tf-strip-tied-hf": (DDP_PRETRAINING, "tensorflow", ["--target", "hf-tf"], "--strip-prefix", "module."),
    "pt-tf-strip-base": (DDP, "tensorflow", [], "--strip-prefix", "module."),
    "pt-tf-add": (BASE_NAMES, "tensorflow", [], "--add-prefix", "bert."),
    "tf-pt-strip": (TINY, "pytorch", ["--target", "BertModel"], "--strip-prefix", "bert."),
    "tf-pt-add": (TINY, "pytorch", ["--target", "BertForPreTraining"], "--add-prefix", "bert."),
}


@pytest.mark.parametrize("road", list(ROADS))
def test_check_applies_the_prefix_option(road):
    source, to, extra, option, value = ROADS[road]
    report = json.loads(run_cli("check", str(source), "--to", to, *extra, option, value, "--json"))
    assert report["ok"], report
    strip, add = (value, "") if option == "--strip-prefix" else ("", value)
    assert f"names aligned as asked: strip {strip!r}, add {add!r}" in report["notes"]
    assert [u["name"] for u in report["unused"] if u["kind"] == "model" and not u["expected"]] == []
    assert not report["missing"] or all(m["expected"] for m in report["missing"])


@pytest.mark.parametrize("layout", ["google-bert", "hf-tf"])
def test_prefixed_tied_decoder_is_stored_once_like_the_unprefixed_one(layout):
    """The layout's tie (decoder -> word embeddings) is matched under the stripped names: an expected leftover whose
    owner is the file's own `module.` name, the same verdict as the file without the prefix."""
    args = ["check", str(DDP_PRETRAINING), "--to", "tensorflow", "--target", layout, "--strip-prefix", "module."]
    text = run_cli(*args)
    if layout == "google-bert":  # hf-tf keeps the decoder bias as its own tensor; google-bert stores both once
        assert (
            "module.cls.predictions.decoder.weight [64, 16]: tied to `module.bert.embeddings.word_embeddings.weight`: "
            "stored once on the target side"
        ) in text
    assert "verdict: OK" in text and "! module." not in text


def _dropped(extra: list[str]) -> list[str]:
    """`--target BertModel` leaves the source's pre-training heads out on purpose: verify is told so."""
    return ["--dropped-heads"] if extra[-1:] == ["BertModel"] else []


@pytest.mark.parametrize("road", list(ROADS))
def test_convert_then_verify_values_with_the_prefix_option(road, tmp_path):
    source, to, extra, option, value = ROADS[road]
    out = tmp_path / "out"
    run_cli("convert", str(source), "--to", to, *extra, option, value, "-o", str(out), "-q")
    if to == "pytorch":  # safetensors' own reader: the names the target class loads, the option applied once
        from safetensors import safe_open

        with safe_open(str(out / "model.safetensors"), "np") as f:
            names = set(f.keys())
        assert names and not any(n.startswith(("bert.bert.", "module.")) for n in names)
        assert ("embeddings.word_embeddings.weight" in names) == (option == "--strip-prefix")
    report = json.loads(
        run_cli("verify", str(source), str(out), option, value, *_dropped(extra), "--no-forward", "--json")
    )
    assert report["ok"] and report["values"]["compared"] > 0, report
    assert report["values"]["bit_exact"] == report["values"]["compared"] and not report["plan_gaps"]
    if value == "module.":  # no automatic alignment strips it: without the option the same output does not verify
        plain = json.loads(run_cli("verify", str(source), str(out), "--no-forward", "--json", code=1))
        assert not plain["ok"]


@pytest.fixture(scope="module")
def frameworks(torch):
    pytest.importorskip("transformers")
    return pytest.importorskip("tensorflow")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("road", "outputs"),
    [
        ("pt-tf-strip-tied", {"sequence_output", "pooled_output", "mlm_logits", "nsp_logits"}),
        ("tf-pt-strip", {"sequence_output", "pooled_output"}),
    ],
)
def test_verify_forward_uses_the_strip_prefix_option(frameworks, road, outputs, tmp_path):
    """Only --strip-prefix given: the forward check reads the PyTorch side under the stripped names (transformers
    would not find its own names in a `module.` file) and compares every output, heads included."""
    source, to, extra, option, value = ROADS[road]
    out = tmp_path / "out"
    run_cli("convert", str(source), "--to", to, *extra, option, value, "-o", str(out), "-q")
    report = json.loads(run_cli("verify", str(source), str(out), option, value, *_dropped(extra), "--json"))
    assert report["ok"], report
    assert {o["name"] for o in report["outputs"]} == outputs
    assert all(o["ok"] for o in report["outputs"])
    assert not any("no forward check" in n or "skipped" in n for n in report["notes"])
