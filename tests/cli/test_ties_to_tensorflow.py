"""PyTorch -> TF of a masked-LM BERT: both TF layouts store the decoder as the word embeddings, so a conversion
is faithful only when the source's decoder holds the embeddings' values (a real tie), whatever its config says."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
UNTIED = REPO / "tests" / "fixtures" / "bert-untied"  # decoder differs from the embeddings, config ties them
EMBEDDINGS, DECODER = "bert.embeddings.word_embeddings.weight", "cls.predictions.decoder.weight"


@pytest.fixture(scope="module")
def transformers(torch):
    pytest.importorskip("tensorflow")  # verify's reference forward; after torch (conftest order)
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def nearly_tied(transformers, torch, tmp_path_factory) -> Path:
    """A second untied source, made here: a transformers 5 BertForMaskedLM of other shapes (vocab 40, hidden 8) whose
    decoder, saved by safetensors as its own tensor, equals the embeddings but for one element 2**-8 off."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    config = transformers.BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=12, max_position_embeddings=16)  # fmt: skip
    model = transformers.BertForMaskedLM(config)
    folder = tmp_path_factory.mktemp("nearly-tied")
    model.save_pretrained(folder)  # config.json (ties the decoder) and the weights without it
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    state[DECODER][-1, -1] += 2**-8
    (folder / "model.safetensors").unlink()
    save_file(state, folder / "model.safetensors")
    return folder


@pytest.mark.parametrize("layout", ["google-bert", "hf-tf"])
@pytest.mark.parametrize(
    ("source", "shape", "diff"), [("bert-untied", "[64, 16]", "1"), ("nearly_tied", "[40, 8]", "0.00391")]
)
def test_untied_decoder_is_refused_and_nothing_is_written(request, tmp_path, layout, source, shape, diff):
    folder = UNTIED if source == "bert-untied" else request.getfixturevalue(source)
    out = tmp_path / "tf"
    text = run_cli("convert", str(folder), "--to", "tensorflow", "--target", layout, "-o", str(out), code=1)
    assert "conversion plan has gaps" in text
    assert f"`{DECODER}` {shape} left over: differs from `{EMBEDDINGS}` (max abs diff {diff})" in text
    assert f"the values of `{DECODER}` would be lost" in text
    assert not out.exists() and list(tmp_path.iterdir()) == []
    report = json.loads(run_cli("check", str(folder), "--to", "tensorflow", "--target", layout, "--json", code=1))
    assert not report["ok"]
    assert [u["name"] for u in report["unused"] if not u["expected"]] == [DECODER]


@pytest.fixture(scope="module")
def tied_bert(transformers, torch, tmp_path_factory) -> tuple[dict[str, Path], np.ndarray]:
    """A transformers 5 BertForMaskedLM (tied decoder) saved three ways: save_pretrained (the decoder left out),
    torch.save of its state dict (decoder and embeddings share one storage), and a safetensors file of separate,
    equal copies (the tie held by the values only)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_act="gelu_new",
    )
    model = transformers.BertForMaskedLM(config)
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    root = tmp_path_factory.mktemp("tied")
    model.save_pretrained(root / "save_pretrained")
    state = model.state_dict()
    for kind in ("shared_storage", "equal_copies"):
        (root / kind).mkdir()
        (root / kind / "config.json").write_text((root / "save_pretrained" / "config.json").read_text())
    torch.save(state, root / "shared_storage" / "pytorch_model.bin")
    copies = {k: v.detach().clone().contiguous() for k, v in state.items()}
    save_file(copies, root / "equal_copies" / "model.safetensors")
    kinds = ("save_pretrained", "shared_storage", "equal_copies")
    return {kind: root / kind for kind in kinds}, model.cls.predictions.decoder.weight.detach().numpy().copy()


@pytest.mark.parametrize("kind", ["save_pretrained", "shared_storage", "equal_copies"])
def test_tied_decoder_converts_to_google_bert_stored_once(tied_bert, tmp_path, kind):
    import tensorflow as tf

    (sources, decoder), out = tied_bert, tmp_path / "tf"
    source = sources[kind]
    check = run_cli("check", str(source), "--to", "tensorflow", "--target", "google-bert")
    if kind != "save_pretrained":  # save_pretrained leaves the tied decoder out: nothing to explain
        assert f"{DECODER} [64, 16]: tied to `{EMBEDDINGS}`: stored once on the target side" in check
    assert "verdict: OK" in check
    run_cli("convert", str(source), "--to", "tensorflow", "--target", "google-bert", "-o", str(out), "-q")
    # TensorFlow's own reader: the one matrix the TF MLM head multiplies with is the PyTorch model's decoder.
    reader = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
    np.testing.assert_array_equal(reader.get_tensor("bert/embeddings/word_embeddings"), decoder)
    report = json.loads(run_cli("verify", str(source), str(out), "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"]
    assert {o["name"] for o in report["outputs"]} >= {"mlm_logits"}


@pytest.mark.parametrize("kind", ["shared_storage", "equal_copies"])
def test_tied_decoder_converts_to_hf_tf_stored_once(tied_bert, tmp_path, kind):
    (sources, decoder), out = tied_bert, tmp_path / "tf"
    source = sources[kind]
    run_cli("convert", str(source), "--to", "tensorflow", "--target", "hf-tf", "-o", str(out), "-q")
    # h5py, not this project's reader: the embeddings and the masked-LM head's copy are the decoder.
    with h5py.File(out / "tf_model.h5", "r") as f:
        for group in ("bert", "mlm___cls"):
            value = f[f"{group}/tf_bert_for_masked_lm/bert/embeddings/word_embeddings/weight:0"][()]
            np.testing.assert_array_equal(value, decoder)
    report = json.loads(run_cli("verify", str(source), str(out), "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"]
