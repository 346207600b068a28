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
WORDS = "bert/embeddings/word_embeddings"


def _pad_index(vocab: Path) -> int:
    return vocab.read_text().splitlines().index("[PAD]")


def _tf_table(tf, prefix: Path) -> np.ndarray:
    return tf.train.load_variable(str(prefix), "bert/embeddings/word_embeddings")


@pytest.fixture(scope="module")
def pad_one_bert(tf, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second google-research BERT, written here by TensorFlow's Saver: other shapes and values than the example
    (hidden 8, vocab 30, one layer) and `[PAD]` on vocab.txt's second line (pad id 1, as RoBERTa's)."""
    import sys

    sys.path.insert(0, str(REPO / "examples"))
    try:
        from make_tiny_bert import bert_variables, write_tf1_checkpoint
    finally:
        sys.path.remove(str(REPO / "examples"))
    config = {"hidden_size": 8, "intermediate_size": 12, "max_position_embeddings": 16, "num_attention_heads": 2,
              "num_hidden_layers": 1, "type_vocab_size": 2, "vocab_size": 30, "hidden_act": "gelu"}  # fmt: skip
    folder = tmp_path_factory.mktemp("pad-one")
    values = bert_variables(config, np.random.default_rng(5))
    write_tf1_checkpoint(folder / "bert_model.ckpt", values, adam=False, step=1)
    (folder / "bert_config.json").write_text(json.dumps(config))
    vocab = ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{k}" for k in range(25)]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return folder


@pytest.mark.parametrize("where", ["shared", "example", "pad_one"])
def test_google_research_bert_pad_row_is_reported_and_explained(where, request, tf):
    if where == "shared":
        folder = request.getfixturevalue("shared_fixtures") / "keras-bert-tiny-tf1"
    else:
        folder = EXAMPLE if where == "example" else request.getfixturevalue("pad_one_bert")
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


@pytest.mark.parametrize("where", ["example", "pad_one"])
def test_convert_keeps_the_row_and_the_transformers_copy_reports_it(where, request, tmp_path, tf):
    from safetensors.numpy import load_file

    source_dir = EXAMPLE if where == "example" else request.getfixturevalue("pad_one_bert")
    pad = _pad_index(source_dir / "vocab.txt")
    out = tmp_path / "pt"
    payload = json.loads(run_cli("convert", str(source_dir), "--to", "pytorch", "-o", str(out), "--json"))
    assert any(
        f"padding row {pad} of bert/embeddings/word_embeddings" in n and "never zeroes" in n for n in payload["notes"]
    )
    source = _tf_table(tf, source_dir / "bert_model.ckpt")
    written = load_file(str(out / "model.safetensors"))["bert.embeddings.word_embeddings.weight"]
    assert np.array_equal(written, source) and np.any(written[pad] != 0)
    # the converted transformers checkpoint: pad id from its config.json, tied (cls.predictions.* present)
    (row,) = json.loads(run_cli("inspect", str(out), "--stats", "--json"))["pad_rows"]
    assert row["table"] == "bert.embeddings.word_embeddings.weight" and row["pad_token_id"] == pad
    assert row["pad_token_id_from"] == "config.json"
    assert row["norm"] == pytest.approx(float(np.linalg.norm(source[pad].astype(np.float64))))
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


def _large_vocab_checkpoint(tf, folder: Path, vocab_size: int) -> np.ndarray:
    """The example's variables with a word-embedding table of ``vocab_size`` rows, written by TF's own Saver."""
    v1 = tf.compat.v1
    prefix = str(EXAMPLE / "bert_model.ckpt")
    values = {name: tf.train.load_variable(prefix, name) for name, _ in tf.train.list_variables(prefix)}
    table = np.random.default_rng(0).standard_normal((vocab_size, values[WORDS].shape[1])).astype(np.float32)
    values[WORDS], values["cls/predictions/output_bias"] = table, np.zeros(vocab_size, np.float32)
    with tf.Graph().as_default():
        variables = {
            name: v1.Variable(tf.constant(value), name=f"v{i}") for i, (name, value) in enumerate(values.items())
        }
        saver = v1.train.Saver(var_list=variables)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            saver.save(session, str(folder / "bert_model.ckpt"), write_meta_graph=False)
    config = json.loads((EXAMPLE / "bert_config.json").read_text())
    (folder / "bert_config.json").write_text(json.dumps({**config, "vocab_size": vocab_size}))
    (folder / "vocab.txt").write_text((EXAMPLE / "vocab.txt").read_text())
    return table


def test_check_notes_the_pad_row_of_a_large_table_from_a_bounded_sample(tmp_path, tf):
    """check reads the pad row and a sample of a large table (not all of it) and says so; --stats reads it all."""
    import dataclasses

    from bridge import load
    from bridge.core import pad_rows as pad_rows_module
    from bridge.core.model import Checkpoint
    from bridge.rules import packs

    table = _large_vocab_checkpoint(tf, tmp_path, vocab_size=100_000)  # 6.4 MB, over the sampling threshold
    assert table.nbytes > pad_rows_module.SAMPLE_BYTES * pad_rows_module.FULL_READ_FACTOR
    norms = np.linalg.norm(table.astype(np.float64), axis=1)

    (row,) = json.loads(run_cli("check", str(tmp_path), "--to", "pytorch", "--json"))["pad_rows"]
    assert row["norm"] == pytest.approx(norms[0], rel=1e-12)  # the pad row itself is read, exactly
    assert row["median_of"].startswith("a sample of ") and row["median_norm"] == pytest.approx(np.median(norms), 0.02)
    assert "sampled rows" in run_cli("check", str(tmp_path), "--to", "pytorch")
    (full,) = json.loads(run_cli("inspect", str(tmp_path), "--stats", "--json"))["pad_rows"]
    assert full["median_of"] == "every row" and full["median_norm"] == pytest.approx(np.median(norms), rel=1e-12)

    # Bytes read for check's note, counted at the record API: the whole-value loader is never called.
    read = {"rows": 0, "whole": 0}

    def counted(record):
        def whole():
            read["whole"] += record.nbytes
            return record.numpy()

        def rows(start, stop):
            out = record.row_reader(start, stop)
            read["rows"] += out.nbytes
            return out

        return dataclasses.replace(record, loader=whole, row_reader=rows if record.row_reader else None)

    with load(str(tmp_path)) as ckpt:
        wrapped = Checkpoint(
            [counted(r) for r in ckpt.values()], format=ckpt.format, path=ckpt.path, framework=ckpt.framework
        )
        (sampled,) = pad_rows_module.pad_rows(wrapped, packs(), sample=True)
    row_bytes = table.nbytes // len(table)
    assert read["whole"] == 0 and 0 < read["rows"] <= pad_rows_module.SAMPLE_BYTES + row_bytes
    assert row["median_of"] == f"a sample of {sampled.sampled_rows} rows"
