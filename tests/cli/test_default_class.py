"""Without --target, a PyTorch source becomes the class that saved it: its config.json's `architectures`, else the
class its head names belong to; never a smaller class whose missing heads are called "expected"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

TINY = dict(
    vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=32,
)  # fmt: skip


@pytest.mark.parametrize(
    "class_name", ["BertForPreTraining", "BertForMaskedLM", "BertForQuestionAnswering", "BertForTokenClassification"]
)
def test_the_class_that_saved_it(transformers, torch, tmp_path: Path, class_name: str) -> None:
    model = getattr(transformers, class_name)(transformers.BertConfig(**TINY))
    model.save_pretrained(tmp_path / "saved")  # config.json names the class
    (tmp_path / "bare").mkdir()
    torch.save(model.state_dict(), tmp_path / "bare" / "pytorch_model.bin")  # no config: the names decide
    with_config = json.loads(run_cli("check", str(tmp_path / "saved"), "--to", "pytorch", "--json"))
    assert with_config["target"]["class"] == class_name
    assert not [u for u in with_config["unused"] if not u["expected"]] and with_config["ok"]
    bare = json.loads(run_cli("check", str(tmp_path / "bare"), "--to", "pytorch", "--json"))
    # token classification and sequence classification share one head shape: only the config tells them apart
    expected = "BertForSequenceClassification" if class_name == "BertForTokenClassification" else class_name
    assert bare["target"]["class"] == expected


@pytest.mark.parametrize(("class_name", "expected"), [("RobertaModel", "RobertaModel"), ("RobertaForMaskedLM", None)])
def test_a_prefixless_state_dict_of_another_family_gets_its_own_class(
    transformers, torch, tmp_path, class_name, expected
):
    """A RoBERTa state dict saved without `roberta.` (config.json names the model type, not the class): the class of
    that type that takes every tensor, never BertModel with did-you-means at the pooler."""
    import safetensors.torch

    config = transformers.RobertaConfig(**TINY)
    model = getattr(transformers, class_name)(config)
    prefix = f"{model.base_model_prefix}."
    state = {k.removeprefix(prefix): v.contiguous() for k, v in model.state_dict().items()}
    state.pop("lm_head.decoder.weight", None)  # tied to the word embeddings: stored once, as save_pretrained does
    state.pop("lm_head.decoder.bias", None)
    (tmp_path / "sd").mkdir()
    safetensors.torch.save_file(state, tmp_path / "sd" / "model.safetensors")
    config.save_pretrained(tmp_path / "sd")  # architectures: None (a config, not a model, was saved)
    assert json.loads((tmp_path / "sd" / "config.json").read_text()).get("architectures") is None
    plan = json.loads(run_cli("check", str(tmp_path / "sd"), "--to", "pytorch", "--json"))
    assert plan["target"]["class"] == (expected or class_name)
    assert plan["ok"] and not [u for u in plan["unused"] if not u["expected"]]
