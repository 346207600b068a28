"""The padding token's row of BERT's word-embedding table: inspect --stats, check and convert report it on real
checkpoints (non-zero rows explained), and not on a table whose pad row is zero."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


def _pad_index(vocab: Path) -> int:
    return vocab.read_text().splitlines().index("[PAD]")


def _tf_table(tf, prefix: Path) -> np.ndarray:
    return tf.train.load_variable(str(prefix), "bert/embeddings/word_embeddings")


@pytest.mark.parametrize("where", ["shared", "example"])
def test_google_research_bert_pad_row_is_reported_and_explained(where, shared_fixtures, tf):
    folder = shared_fixtures / "keras-bert-tiny-tf1" if where == "shared" else EXAMPLE
    table = _tf_table(tf, folder / "bert_model.ckpt")  # TensorFlow's own reader: the oracle
    pad = _pad_index(folder / "vocab.txt")
    norms = np.linalg.norm(table.astype(np.float64), axis=1)
    for command in (["inspect", str(folder), "--stats"], ["check", str(folder), "--to", "pytorch"]):
        payload = json.loads(run_cli(*command, "--json"))
        (row,) = payload["pad_rows"]
        assert row["table"] == "bert/embeddings/word_embeddings" and row["pad_token_id"] == pad
        assert row["pad_token_id_from"] == "vocab.txt"
        assert row["norm"] == pytest.approx(norms[pad], rel=1e-12) and row["norm"] > 0
        assert row["median_norm"] == pytest.approx(float(np.median(norms)), rel=1e-12)
        assert row["tied"] is True  # google-research's MLM head multiplies by this table
        assert "trained without padding_idx" in row["explanation"]
        text = run_cli(*command)
        assert f"padding row: bert/embeddings/word_embeddings[{pad}]" in text
        assert "why not zero:" in text and "decoder's gradient reaches every row" in text


def test_convert_keeps_the_row_and_the_transformers_copy_reports_it(tmp_path, tf):
    from safetensors.numpy import load_file

    out = tmp_path / "pt"
    payload = json.loads(run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out), "--json"))
    assert any(
        "padding row 0 of bert/embeddings/word_embeddings" in n and "never zeroes" in n for n in payload["notes"]
    )
    source = _tf_table(tf, EXAMPLE / "bert_model.ckpt")
    written = load_file(str(out / "model.safetensors"))["bert.embeddings.word_embeddings.weight"]
    assert np.array_equal(written[0], source[0]) and np.any(written[0] != 0)
    # the converted transformers checkpoint: pad id from its config.json, tied (cls.predictions.* present)
    (row,) = json.loads(run_cli("inspect", str(out), "--stats", "--json"))["pad_rows"]
    assert row["table"] == "bert.embeddings.word_embeddings.weight" and row["pad_token_id"] == 0
    assert row["pad_token_id_from"] == "config.json"
    assert row["norm"] == pytest.approx(float(np.linalg.norm(source[0].astype(np.float64))))
    assert row["tied"] is True and row["explanation"]


def test_a_zero_pad_row_gets_no_explanation(tmp_path, torch):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24, pad_token_id=3
    )
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config)  # nn.Embedding(padding_idx=3): row 3 initialised to zeros
    assert float(model.bert.embeddings.word_embeddings.weight[3].detach().norm()) == 0.0  # the oracle
    model.save_pretrained(tmp_path)
    (row,) = json.loads(run_cli("inspect", str(tmp_path), "--stats", "--json"))["pad_rows"]
    assert row["pad_token_id"] == 3 and row["pad_token_id_from"] == "config.json"
    assert row["zero"] is True and row["norm"] == 0.0 and row["explanation"] is None
    text = run_cli("inspect", str(tmp_path), "--stats")
    assert "padding row: bert.embeddings.word_embeddings.weight[3]" in text and ": zero;" in text
    assert "why not zero" not in text
    # without --stats nothing is read, and nothing is said
    assert "pad_rows" not in json.loads(run_cli("inspect", str(tmp_path), "--json"))
