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
