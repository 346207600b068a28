"""`bridge convert` + `bridge verify` both ways, on files written by TensorFlow and transformers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import bridge
from bridge.commands.convert import PlanHasGaps, convert
from bridge.core.atomic import OutputExists
from bridge.core.transforms import parse
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


@pytest.fixture(scope="module")
def transformers(torch):
    pytest.importorskip("tensorflow")  # verify's reference forward; after torch (conftest order)
    return pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def pt_bert(transformers, torch, tmp_path_factory) -> Path:
    """A transformers BertForPreTraining written by save_pretrained (safetensors + config.json)."""
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
    folder = tmp_path_factory.mktemp("pt") / "bert"
    transformers.BertForPreTraining(config).save_pretrained(folder)
    return folder


def _model_values(path: Path) -> dict[str, np.ndarray]:
    with bridge.load(path) as ckpt:
        return {r.name: r.numpy().copy() for r in ckpt.values() if r.kind == "model"}


def test_tf_to_pytorch_loads_cleanly_and_verifies(transformers, tmp_path):
    out = tmp_path / "torch"
    text = run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out))
    assert "dropped 52.5 KiB of optimizer state" in text
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vocab.txt"]
    model, info = transformers.BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    assert info["mismatched_keys"] == set()
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    report = json.loads(run_cli("verify", str(EXAMPLE), str(out), "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"] == 46
    assert {o["name"] for o in report["outputs"]} == {"sequence_output", "pooled_output", "mlm_logits", "nsp_logits"}
    assert max(o["max_abs"] for o in report["outputs"]) <= 1e-5


@pytest.mark.parametrize("target", ["BertModel", "BertForMaskedLM", "BertForSequenceClassification"])
def test_tf_to_other_classes(transformers, tmp_path, target):
    out = tmp_path / target
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "--target", target, "-o", str(out), "--quiet")
    cls = getattr(transformers, target)
    _, info = cls.from_pretrained(out, output_loading_info=True)
    allowed = {"classifier.weight", "classifier.bias"} if target == "BertForSequenceClassification" else set()
    assert info["missing_keys"] == allowed and info["unexpected_keys"] == set()
    # the class was chosen without some of the source's heads: every value written is exact, and verify still
    # fails, naming each source tensor the output lacks
    report = json.loads(run_cli("verify", str(EXAMPLE), str(out), "--json", code=1))
    assert not report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"]
    lacked = {gap.split("`")[1]: gap for gap in report["plan_gaps"]}
    assert len(lacked) == 46 - report["values"]["compared"]
    assert all(n.startswith(("bert/pooler/", "cls/")) and "not in the output" in gap for n, gap in lacked.items())


def test_pytorch_to_tf_is_read_by_tensorflow_and_verifies(pt_bert, tmp_path, torch):
    import tensorflow as tf

    out = tmp_path / "tf"
    run_cli("convert", str(pt_bert), "--to", "tensorflow", "--target", "google-bert", "-o", str(out))
    reader = tf.train.load_checkpoint(str(out / "bert_model.ckpt"))
    shapes = reader.get_variable_to_shape_map()
    assert len(shapes) == 46 and shapes["bert/encoder/layer_1/intermediate/dense/kernel"] == [16, 32]
    state = {k: v for k, v in _model_values(pt_bert).items()}
    np.testing.assert_array_equal(
        reader.get_tensor("bert/encoder/layer_0/attention/self/query/kernel"),
        state["bert.encoder.layer.0.attention.self.query.weight"].T,
    )
    assert json.loads((out / "bert_config.json").read_text())["hidden_act"] == "gelu"
    report = json.loads(run_cli("verify", str(pt_bert), str(out), "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == 46


def test_forward_uses_the_models_layer_norm_eps(transformers, torch, tmp_path):
    """A model whose LayerNorm epsilon is not google-research's 1e-12 is compared with its own epsilon."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        hidden_act="gelu_new",
        layer_norm_eps=0.5,
    )
    transformers.BertModel(config).save_pretrained(tmp_path / "pt")
    run_cli("convert", str(tmp_path / "pt"), "--to", "tensorflow", "-o", str(tmp_path / "tf"))
    report = json.loads(run_cli("verify", str(tmp_path / "pt"), str(tmp_path / "tf"), "--json"))
    assert report["ok"] and report["outputs"]
    assert max(o["max_abs"] for o in report["outputs"]) <= 1e-5


def test_round_trip_tf_pytorch_tf_is_bit_exact(transformers, tmp_path):
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "pt"), "-q")
    run_cli("convert", str(tmp_path / "pt"), "--to", "tensorflow", "-o", str(tmp_path / "tf"), "-q")
    before, after = _model_values(EXAMPLE), _model_values(tmp_path / "tf")
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], strict=True)


def test_round_trip_pytorch_tf_pytorch_is_bit_exact(pt_bert, tmp_path):
    run_cli("convert", str(pt_bert), "--to", "tensorflow", "-o", str(tmp_path / "tf"), "-q")
    run_cli("convert", str(tmp_path / "tf"), "--to", "pytorch", "-o", str(tmp_path / "pt"), "-q")
    before, after = _model_values(pt_bert), _model_values(tmp_path / "pt")
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name], strict=True)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_is_applied_and_loaded(transformers, tmp_path, dtype):
    out = tmp_path / dtype
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out), "--dtype", dtype, "-q")
    with bridge.load(out) as ckpt:
        assert {r.dtype for r in ckpt.values()} == {dtype}
    report = json.loads(run_cli("verify", str(EXAMPLE), str(out), "--no-forward", "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == 46


def test_sharded_output_has_an_index_transformers_reads(transformers, tmp_path):
    out = tmp_path / "sharded"
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out), "--max-shard-size", "10KB", "-q")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    _, info = transformers.BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()


def test_bin_output(transformers, torch, tmp_path):
    """Read by torch itself (safe mode) and by transformers 5, with the values of the safetensors output
    (read by safetensors' own reader) bit for bit."""
    from safetensors.torch import load_file

    out = tmp_path / "bin"
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out), "--format", "bin", "-q")
    run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "st"), "-q")
    state = torch.load(out / "pytorch_model.bin", weights_only=True)
    expected = load_file(tmp_path / "st" / "model.safetensors")
    assert state.keys() == expected.keys() and len(state) == 46
    for name, value in expected.items():
        assert state[name].dtype == value.dtype and torch.equal(state[name], value), name
    model, info = transformers.BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    loaded = model.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in state.items())
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    assert json.loads(run_cli("verify", str(EXAMPLE), str(out), "--no-forward", "--json"))["ok"]


def test_keep_optimizer_writes_slots_apart(tmp_path):
    out = tmp_path / "opt"
    convert(EXAMPLE, to="pytorch", out=out, keep_optimizer=True)
    with bridge.load(out / "optimizer.safetensors") as slots, bridge.load(EXAMPLE) as src:
        assert len(slots) == 92
        name = "bert/pooler/dense/kernel/adam_m"
        np.testing.assert_array_equal(slots[name].numpy(), src[name].numpy(), strict=True)


def test_same_input_gives_identical_bytes(tmp_path):
    for name in ("a", "b"):
        convert(EXAMPLE, to="pytorch", out=tmp_path / name)
    for f in ("model.safetensors", "config.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    text = run_cli("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out), code=2)
    assert "Output already exists" in text and "--force" in text
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(OutputExists):
        convert(EXAMPLE, to="pytorch", out=out)
    convert(EXAMPLE, to="pytorch", out=out, force=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_refuses_to_write_over_its_input(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    text = run_cli("convert", str(src), "--to", "pytorch", "-o", str(src), "--force", code=2)
    assert "Refusing to write over an input" in text
    assert sorted(p.name for p in src.iterdir()) == sorted(p.name for p in EXAMPLE.iterdir())


def test_interrupted_conversion_leaves_nothing(tmp_path):
    seen: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        if done > total // 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        convert(EXAMPLE, to="pytorch", out=tmp_path / "out", on_progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    assert seen[0][1] == 26888 and all(a < b for (a, _), (b, _) in zip(seen, seen[1:], strict=False))


def test_plan_with_gaps_is_refused_with_exit_1(tmp_path):
    config = json.loads((EXAMPLE / "bert_config.json").read_text()) | {"hidden_size": 32}
    (tmp_path / "c.json").write_text(json.dumps(config))
    text = run_cli(
        "convert",
        str(EXAMPLE),
        "--to",
        "pytorch",
        "-o",
        str(tmp_path / "o"),
        "--config",
        str(tmp_path / "c.json"),
        code=1,
    )
    assert "conversion plan has gaps" in text and "bridge check" in text
    assert not (tmp_path / "o").exists()
    with pytest.raises(PlanHasGaps):
        convert(EXAMPLE, to="pytorch", out=tmp_path / "o", config=tmp_path / "c.json")


def test_plan_transform_inverse_matches_writer(tmp_path):
    """Values written for PyTorch, transformed back, equal the TF source (the verify rule, spelled out)."""
    convert(EXAMPLE, to="pytorch", out=tmp_path / "pt")
    with bridge.load(EXAMPLE) as src, bridge.load(tmp_path / "pt") as out:
        kernel = out["bert.encoder.layer.0.output.dense.weight"].numpy()
        back = parse("transpose").inverse(kernel.shape).apply(kernel)
        np.testing.assert_array_equal(back, src["bert/encoder/layer_0/output/dense/kernel"].numpy(), strict=True)


def test_third_party_google_research_checkpoint_converts_and_verifies(transformers, shared_fixtures, tmp_path):
    """keras-bert's test checkpoint: written by google-research-style TF1 code (TF 1.1x), not by us."""
    source = shared_fixtures / "keras-bert-tiny-tf1"
    plan = json.loads(run_cli("check", str(source), "--to", "pytorch", "--json"))
    assert plan["ok"] and plan["coverage"] == {"source_consumed": 1.0, "target_filled": 1.0}
    assert plan["target"]["class"] == "BertForPreTraining"
    out = tmp_path / "keras-bert-tiny"
    run_cli("convert", str(source), "--to", "pytorch", "-o", str(out), "-q")
    _, info = transformers.BertForPreTraining.from_pretrained(out, output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()
    report = json.loads(run_cli("verify", str(source), str(out), "--json"))
    assert report["ok"] and len(report["outputs"]) == 4, report
