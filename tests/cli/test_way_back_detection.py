"""The way back (PyTorch -> TensorFlow) reads a source with its own family's rules: the family comes from
config.json's `model_type`, a family no layout writes is refused by name with the way that works, every layout
name the docs print is one `--target` knows (`bridge layouts` lists them per direction), and a did-you-mean
offers only a tensor of the same role."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bridge.core.naming import role
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
TINY = {
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 20,
}


@pytest.fixture(scope="module")
def saved(transformers, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny models as transformers 5 saves them: RoBERTa (an MLM), MPNet (a sentence-transformers encoder), BERT,
    ESM (a family only KerasHub presets are written for), Nystromformer (a family no TF layout is written for)."""
    folder = tmp_path_factory.mktemp("way_back")
    made = {
        "roberta": transformers.RobertaForMaskedLM(transformers.RobertaConfig(**TINY)),
        "mpnet": transformers.MPNetModel(transformers.MPNetConfig(**TINY)),
        "bert": transformers.BertForMaskedLM(transformers.BertConfig(**TINY)),
        "esm": transformers.EsmModel(transformers.EsmConfig(**TINY, pad_token_id=1)),
        "nystromformer": transformers.NystromformerModel(
            transformers.NystromformerConfig(**TINY, num_landmarks=4, segment_means_seq_len=20)
        ),
        # a composite whose decoder type no fixture proves the way back of (BERT as a decoder, not GPT-2)
        "bert2bert": transformers.EncoderDecoderModel(
            config=transformers.EncoderDecoderConfig.from_encoder_decoder_configs(
                transformers.BertConfig(**TINY),
                transformers.BertConfig(**TINY, is_decoder=True, add_cross_attention=True),
            )
        ),
    }
    for name, model in made.items():
        model.save_pretrained(folder / name)
    return {name: folder / name for name in made}


@pytest.mark.parametrize("family", ["roberta", "mpnet"])
def test_a_family_the_generic_layout_writes_goes_back_to_tf_model_h5(saved, family: str) -> None:
    # issue 22: a RoBERTa saved by transformers 5 is written as TFRobertaForMaskedLM's tf_model.h5, a
    # sentence-transformers MPNet as TFMPNetModel's
    plan = json.loads(run_cli("check", str(saved[family]), "--to", "tensorflow", "--target", "hf-tf", "--json"))
    assert plan["ok"], plan


def test_a_composite_with_an_unproven_tower_is_refused_by_name(saved, tmp_path) -> None:
    """A decoder's square kernels could be written with either leaf: a tower type the fixtures do not prove is
    refused, never written with a guess."""
    out = run_cli("convert", str(saved["bert2bert"]), "--to", "tensorflow", "--target", "hf-tf", "-o",
                  str(tmp_path / "o"), code=2)  # fmt: skip
    assert "its decoder is bert" in out and "proven for gpt2 only" in out
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("target", [[], ["--target", "google-bert"]])
def test_a_family_no_layout_writes_is_refused_by_name(saved, target: list[str]) -> None:
    # Before, the source was read with BERT's rules: "42 of 42 model tensors unmatched", rules: google-bert.
    out = run_cli("check", str(saved["nystromformer"]), "--to", "tensorflow", *target, code=2)
    assert "No TensorFlow layout is written for the nystromformer family" in out
    assert "model_type is `nystromformer`" in out and "google-bert: bert" in out  # the layouts there are
    assert "keras-hub: bert" in out and "no pack converts nystromformer either way" in out
    assert "unmatched" not in out and "Traceback" not in out


def test_a_family_only_a_preset_is_written_for_takes_that_layout(saved) -> None:
    """ESM is written back as a KerasHub preset only: that is its default layout (this rotary-less ESM-1 shape is
    refused there by name), and another layout named for it is refused with the one that works."""
    out = run_cli("check", str(saved["esm"]), "--to", "tensorflow", code=2)
    assert "KerasHub preset" in out and "position_embedding_type absolute" in out
    out = run_cli("check", str(saved["esm"]), "--to", "tensorflow", "--target", "google-bert", code=2)
    assert "The google-bert layout is not written for the esm family" in out and "Use --target keras-hub" in out
    assert "unmatched" not in out and "Traceback" not in out


def test_the_family_picks_its_layout_and_a_layout_of_another_family_is_refused(saved) -> None:
    plan = json.loads(run_cli("check", str(saved["bert"]), "--to", "tensorflow", "--target", "hf-tf", "--json"))
    assert plan["ok"], plan
    out = run_cli("check", str(saved["bert"]), "--to", "tensorflow", "--target", "openai-gpt2", code=2)
    assert "The openai-gpt2 layout is not written for the bert family" in out
    assert "Use --target google-bert or hf-tf" in out


def test_every_layout_name_the_docs_print_is_known_and_listed(saved) -> None:
    listed = json.loads(run_cli("layouts", "--json"))
    read = {row["name"]: row for row in listed["tensorflow_to_pytorch"]}
    written = {row["name"]: row for row in listed["pytorch_to_tensorflow"]}
    assert "roberta" in read["hf-tf-generic"]["model_types"] and "mpnet" in read["hf-tf-generic"]["model_types"]
    assert written["google-bert"]["default"] and "bert" in written["hf-tf"]["model_types"]
    rows = [line for line in (REPO / "docs" / "families.md").read_text().splitlines() if line.startswith("| ")]
    printed = {name for row in rows[1:] for name in re.findall(r"`([a-z0-9-]+)`", row)}
    assert "hf-tf-generic" in printed and printed <= set(read) | set(written)
    text = run_cli("layouts")
    assert "PyTorch -> TensorFlow" in text and "hf-tf-generic" in text
    for name in sorted(printed):  # every printed name is a layout --target knows, written or read only
        writes_bert = name in written and "bert" in written[name]["model_types"]
        no_pooler = name == "keras-hub"  # a BertForMaskedLM lacks the pooler KerasHub's BertBackbone has
        code = 0 if writes_bert and not no_pooler else 2
        out = run_cli("check", str(saved["bert"]), "--to", "tensorflow", "--target", name, code=code)
        assert not no_pooler or "lacks tensors the KerasHub BertBackbone has: 2 missing: pooler" in out
        assert "Unknown TensorFlow layout" not in out, (name, out)
        if name not in written:
            assert f"{name} is read, TensorFlow -> PyTorch, only" in out


def test_a_hint_points_only_at_a_tensor_of_the_same_role(saved) -> None:
    # MPNet read with BERT's tf_model.h5 rules on purpose (--rules): before, `.../self/value/kernel:0` was offered
    # `encoder.layer.0.attention.attn.k.weight`, a key for a value.
    out = run_cli("check", str(saved["mpnet"]), "--to", "tensorflow", "--rules", "hf-tf", code=1)
    hints = re.findall(r"^! (\S+) .*\(did you mean `([^`]+)`", out, re.M)
    assert len(hints) >= 8, out  # q, k, v and o of the one layer, weight and bias, find their counterparts
    for name, offered in hints:
        assert role(name) == role(offered), (name, offered)
    assert ("bert/tf_bert_model/bert/encoder/layer_._0/attention/self/value/kernel:0",
            "encoder.layer.0.attention.attn.v.weight") in hints  # fmt: skip
