"""Nothing lost: a conversion never drops a source model tensor without the user asking, and `verify` fails an output
that lacks one.  Sources are written by TensorFlow's Saver and transformers' save_pretrained."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from bridge.api import load
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


def _example_without(folder: Path, *scopes: str) -> Path:
    """The example's model tensors but those under ``scopes``, saved by TensorFlow's TF1 Saver."""
    sys.path.insert(0, str(REPO / "examples"))
    try:
        from make_tiny_bert import write_tf1_checkpoint
    finally:
        sys.path.remove(str(REPO / "examples"))
    with load(EXAMPLE) as ckpt:
        values = {
            r.name: r.numpy().copy() for r in ckpt.values() if r.kind == "model" and not r.name.startswith(scopes)
        }
    folder.mkdir()
    write_tf1_checkpoint(folder / "bert_model.ckpt", values, adam=False, step=3)
    shutil.copyfile(EXAMPLE / "bert_config.json", folder / "bert_config.json")
    return folder


@pytest.mark.parametrize("command", ["check", "convert"])
def test_tf_source_to_its_own_tf_layout_is_refused_with_the_command(tmp_path, command):
    """`--to tensorflow` on a google-research checkpoint once wrote 37 of its 46 model tensors with exit 0."""
    out = tmp_path / "out"
    extra = ["-o", str(out)] if command == "convert" else []
    text = run_cli(command, str(EXAMPLE), "--to", "tensorflow", *extra, code=2)
    assert "already a TensorFlow checkpoint in the google-bert layout" in text and "Pass --to pytorch" in text
    assert "gelu" not in text and not out.exists()
    text = run_cli(command, str(EXAMPLE), "--to", "tensorflow", "--target", "hf-tf", *extra, code=2)
    assert "not rewritten into the hf-tf layout directly" in text
    assert "--to pytorch, then convert that output with --to tensorflow --target hf-tf" in text
    assert not out.exists()


def test_verify_fails_an_output_that_lacks_source_tensors(tf, tmp_path):
    """A TF output without the pooler and the pre-training heads (what the TF -> TF road wrote): values that are
    there are exact, and verify still fails, naming each tensor the output lacks (text and --json)."""
    out = _example_without(tmp_path / "out", "bert/pooler/", "cls/")
    text = run_cli("verify", str(EXAMPLE), str(out), "--no-forward", code=1)
    assert "values: 37/37 tensors bit-exact" in text and "plan: 9 gap(s)" in text
    assert "`bert/pooler/dense/kernel` [16, 16]: not in the output (pooler dropped)" in text
    assert "verdict: FAIL" in text and "PASS" not in text
    report = json.loads(run_cli("verify", str(EXAMPLE), str(out), "--no-forward", "--json", code=1))
    assert not report["ok"] and {g.split("`")[1] for g in report["plan_gaps"]} == {
        "bert/pooler/dense/bias",
        "bert/pooler/dense/kernel",
        "cls/predictions/output_bias",
        "cls/predictions/transform/LayerNorm/beta",
        "cls/predictions/transform/LayerNorm/gamma",
        "cls/predictions/transform/dense/bias",
        "cls/predictions/transform/dense/kernel",
        "cls/seq_relationship/output_bias",
        "cls/seq_relationship/output_weights",
    }


def test_default_class_keeps_a_pooler_beside_the_masked_lm_head(tf, tmp_path):
    """A checkpoint with the pooler and the masked-LM head but no next-sentence head: the class bridge picks keeps
    both (BertForMaskedLM has no pooler), where it once dropped the pooler as expected."""
    source = _example_without(tmp_path / "src", "cls/seq_relationship/")
    plan = json.loads(run_cli("check", str(source), "--to", "pytorch", "--json"))
    assert plan["target"]["class"] == "BertForPreTraining"
    assert not [x for x in plan["unused"] if x["kind"] == "model"]
    # named by the user, a class without the pooler drops it knowingly
    plan = json.loads(run_cli("check", str(source), "--to", "pytorch", "--target", "BertForMaskedLM", "--json"))
    assert {x["name"] for x in plan["unused"] if x.get("head") == "pooler"} == {
        "bert/pooler/dense/bias",
        "bert/pooler/dense/kernel",
    }
    assert plan["ok"]


def test_a_class_bridge_picks_that_drops_a_head_is_a_gap(transformers, tmp_path):
    """A BertForPreTraining state dict whose config.json names BertModel: bridge's pick (the saved class) would
    drop both pre-training heads, which BertForPreTraining keeps; named with --target, the drop is the user's."""
    transformers.set_seed(0)
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32
    )
    transformers.BertForPreTraining(config).save_pretrained(tmp_path / "src")
    saved = json.loads((tmp_path / "src" / "config.json").read_text())
    (tmp_path / "src" / "config.json").write_text(json.dumps({**saved, "architectures": ["BertModel"]}))
    text = run_cli("check", str(tmp_path / "src"), "--to", "pytorch", code=1)
    assert "BertModel, the class bridge chose, has none" in text and "pass --target BertForPreTraining" in text
    out = tmp_path / "out"
    run_cli("convert", str(tmp_path / "src"), "--to", "pytorch", "-o", str(out), code=1)
    assert not out.exists()
    plan = json.loads(run_cli("check", str(tmp_path / "src"), "--to", "pytorch", "--target", "BertModel", "--json"))
    assert plan["ok"] and len([x for x in plan["unused"] if x.get("head")]) == 7


def test_heads_dropped_on_purpose_pass_only_when_verify_is_told(tmp_path):
    """`convert --target BertModel` drops the pre-training heads because the user asked; its `next:` line tells
    verify so (`--dropped-heads`), and a verify without it fails and names the option."""
    out = tmp_path / "base"
    printed = run_cli("convert", str(EXAMPLE), "--to", "pytorch", "--target", "BertModel", "-o", str(out))
    assert printed.splitlines()[-1].endswith("--dropped-heads")
    failed = json.loads(run_cli("verify", str(EXAMPLE), str(out), "--no-forward", "--json", code=1))
    assert len(failed["plan_gaps"]) == 7 and all("dropped)" in gap for gap in failed["plan_gaps"])
    assert "--dropped-heads" in run_cli("verify", str(EXAMPLE), str(out), "--no-forward", code=1)
    passed = run_cli("verify", str(EXAMPLE), str(out), "--no-forward", "--dropped-heads")
    assert "verdict: PASS" in passed
    assert "dropped on purpose (--dropped-heads): masked-LM head (cls/predictions), next-sentence head" in passed
