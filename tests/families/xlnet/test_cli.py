"""zihangdai/xlnet TF1 checkpoints -> transformers XLNet* classes: check, convert, verify, load, forward.

Oracles: ``tests/fixtures/xlnet-tf1/*/oracle-4.57.safetensors``, the state dicts transformers 4.57's own
``load_tf_weights_in_xlnet`` made from the same checkpoints (tests/families/xlnet/make_fixtures.py), and
transformers 5's loader (``output_loading_info``).  The real files are CyberZHG/keras-xlnet's test checkpoints in
``../shared/fixtures/keras-xlnet-tf1``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.commands.check import check

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "xlnet-tf1"
REAL = ("test_checkpoint_pre", "test_checkpoint_tune")


def _safetensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _converted(source: Path, out: Path) -> dict[str, np.ndarray]:
    result = bridge.convert(source, to="pytorch", out=out, force=True)
    assert result.ok
    return _safetensors(out / "model.safetensors")


@pytest.mark.parametrize(
    ("kind", "class_name"), [("pretrain", "XLNetLMHeadModel"), ("regression", "XLNetForSequenceClassification")]
)
def test_convert_equals_transformers_457_bit_for_bit(tmp_path, kind, class_name):
    ours = _converted(FIXTURES / kind, tmp_path / "out")
    oracle = _safetensors(FIXTURES / kind / "oracle-4.57.safetensors")
    assert ours.keys() <= oracle.keys()
    absent = set(oracle) - set(ours)
    if kind == "pretrain":
        # Tied to the lookup table: transformers ties it on load (4.57 held the same storage).
        assert absent == {"lm_loss.weight"}
        assert oracle["lm_loss.weight"].tobytes() == oracle["transformer.word_embedding.weight"].tobytes()
    else:
        assert absent == set()
    # A fine-tuned checkpoint has no mask_emb: 4.57 left its random initialisation, bridge writes zeros.
    unsourced = {"transformer.mask_emb"} if kind == "regression" else set()
    for name in unsourced:
        assert not ours[name].any()
    for name in set(ours) - unsourced:
        assert ours[name].dtype == oracle[name].dtype and ours[name].shape == oracle[name].shape, name
        assert ours[name].tobytes() == oracle[name].tobytes(), name
    plan = check(FIXTURES / kind, to="pytorch")
    assert plan.target.class_name == class_name


@pytest.mark.parametrize("kind", ["pretrain", "regression"])
def test_transformers_5_loads_with_nothing_missing(transformers, tmp_path, kind):
    out = tmp_path / "out"
    _converted(FIXTURES / kind, out)
    cls = transformers.XLNetLMHeadModel if kind == "pretrain" else transformers.XLNetForSequenceClassification
    model, info = cls.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info.get("mismatched_keys")
    # xlnet's gelu is the tanh approximation.
    assert model.config.ff_activation == "gelu_new"
    if kind == "regression":
        assert model.config.num_labels == 1


def test_optimizer_slots_and_step_are_not_weights():
    plan = check(FIXTURES / "pretrain", to="pytorch")
    assert plan.ok and plan.pack == "xlnet"
    slots = [u for u in plan.unused if u.kind == "optimizer"]
    assert {u.name.rsplit("/", 1)[1] for u in slots} == {"adam_m", "adam_v"}
    assert len(slots) == 2 * plan.source_model_tensors and all(u.expected for u in slots)
    assert [u.name for u in plan.unused if u.kind == "counter"] == ["global_step"]
    rows = {m.target: (m.source, m.transform) for m in plan.matched}
    assert rows["transformer.layer.1.rel_attn.r_w_bias"] == ("model/transformer/r_w_bias", "row(1)")
    assert rows["transformer.layer.0.rel_attn.seg_embed"] == ("model/transformer/seg_embed", "row(0)")
    assert rows["transformer.layer.0.rel_attn.q"] == ("model/transformer/layer_0/rel_attn/q/kernel", "identity")
    assert rows["transformer.layer.0.ff.layer_1.weight"][1] == "transpose"


@pytest.mark.parametrize("kind", ["pretrain", "regression"])
def test_verify_passes_values_only(tmp_path, kind):
    out = tmp_path / "out"
    _converted(FIXTURES / kind, out)
    result = CliRunner().invoke(cli, ["verify", str(FIXTURES / kind), str(out)])
    assert result.exit_code == 0, result.output
    assert "bit-exact" in result.output and "values only" in result.output


def test_config_inferred_from_shapes_without_xlnet_config(tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in (FIXTURES / "regression").glob("xlnet_model.ckpt.*"):
        shutil.copy(f, bare / f.name)
    plan = check(bare, to="pytorch")
    assert plan.ok
    assert any("config inferred from tensor shapes" in n and "ff_activation" in n for n in plan.notes)
    ours = _converted(bare, tmp_path / "out")
    with_config = _converted(FIXTURES / "regression", tmp_path / "with-config")
    assert {k: v.tobytes() for k, v in ours.items()} == {k: v.tobytes() for k, v in with_config.items()}
    written = json.loads((tmp_path / "out" / "config.json").read_text())
    expected = json.loads((tmp_path / "with-config" / "config.json").read_text())
    assert written == expected


def test_base_model_target_drops_the_heads():
    plan = check(FIXTURES / "regression", to="pytorch", target="XLNetModel")
    assert plan.ok
    dropped = {u.name: u.reason for u in plan.unused if u.kind == "model"}
    assert set(dropped) == {
        "model/sequnece_summary/summary/kernel",
        "model/sequnece_summary/summary/bias",
        "model/regression_sts-b/logit/kernel",
        "model/regression_sts-b/logit/bias",
    }
    assert all("expected" in r for r in dropped.values())
    assert "word_embedding.weight" in {m.target for m in plan.matched}


def _pretrain_values() -> dict[str, np.ndarray]:
    with bridge.load(FIXTURES / "pretrain" / "xlnet_model.ckpt") as ckpt:
        return {r.name: r.numpy() for r in ckpt.values() if r.kind == "model"}


def _write_tf1(tf, values: dict[str, np.ndarray], folder: Path) -> str:  # type: ignore[no-untyped-def]
    """A TF1 checkpoint of ``values`` under their names, by TensorFlow's own Saver."""
    v1 = tf.compat.v1
    folder.mkdir(parents=True, exist_ok=True)
    with tf.Graph().as_default():
        variables = {n: v1.Variable(tf.constant(v), name=f"v{i}") for i, (n, v) in enumerate(values.items())}
        saver = v1.train.Saver(var_list=variables)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return str(saver.save(session, str(folder / "xlnet_model.ckpt"), write_meta_graph=False))


def test_untied_lm_weights_are_kept(tf, transformers, tmp_path):
    """lm_loss(tie_weight=False) trains its own ``model/lm_loss/weight``: the config unties it, the weights load."""
    values = _pretrain_values()
    table = values["model/transformer/word_embedding/lookup_table"]
    values["model/lm_loss/weight"] = (table[::-1] * 2).copy()
    prefix = _write_tf1(tf, values, tmp_path / "src")
    plan = check(prefix, to="pytorch")
    assert plan.ok and plan.target.class_name == "XLNetLMHeadModel" and not plan.tied
    assert ("model/lm_loss/weight", "lm_loss.weight") in {(m.source, m.target) for m in plan.matched}
    bridge.convert(prefix, to="pytorch", out=tmp_path / "out")
    model, info = transformers.XLNetLMHeadModel.from_pretrained(tmp_path / "out", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert model.config.tie_word_embeddings is False
    assert model.lm_loss.weight.detach().numpy().tobytes() == values["model/lm_loss/weight"].tobytes()
    assert model.transformer.word_embedding.weight.detach().numpy().tobytes() == table.tobytes()


def test_biases_tied_across_layers_are_a_gap(tf, tmp_path):
    """``untie_r=False`` biases ``[n_head, d_head]`` have no per-layer rows: shown mismatched, never guessed."""
    values = _pretrain_values()
    for name in ("r_w_bias", "r_r_bias", "r_s_bias"):
        values[f"model/transformer/{name}"] = values[f"model/transformer/{name}"][0]
    prefix = _write_tf1(tf, values, tmp_path)
    result = CliRunner().invoke(cli, ["check", prefix, "--to", "pytorch", "--json"])
    assert result.exit_code == 1, result.output
    plan = check(prefix, to="pytorch")
    bad = {m.source for m in plan.mismatched}
    assert bad == {"model/transformer/r_w_bias", "model/transformer/r_r_bias", "model/transformer/r_s_bias"}
    assert any("shared by all layers (untie_r=false)" in n for n in plan.notes)


# The real third-party files: CyberZHG/keras-xlnet's test checkpoints (TF 1.14, zihangdai/xlnet names).


@pytest.mark.parametrize("name", REAL)
def test_real_files_convert_load_and_run(shared_fixtures, transformers, torch, tmp_path, name):
    source = shared_fixtures / "keras-xlnet-tf1" / name
    out = tmp_path / name
    ours = _converted(source, out)
    plan = check(source, to="pytorch")
    assert plan.ok
    with bridge.load(source / "xlnet_model.ckpt") as ckpt:
        tf_values = {r.name: r.numpy() for r in ckpt.values()}
    cls = transformers.XLNetLMHeadModel if name.endswith("pre") else transformers.XLNetModel
    assert plan.target.class_name == cls.__name__
    model, info = cls.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info.get("mismatched_keys")
    assert model.config.d_model == 6 and model.config.n_layer == 2 and model.config.vocab_size == 31
    # Per-layer rows of the stacked biases land in their layers.
    prefix = "transformer." if cls is transformers.XLNetLMHeadModel else ""
    for k in range(2):
        got = ours[f"{prefix}layer.{k}.rel_attn.r_s_bias"]
        assert got.tobytes() == tf_values["model/transformer/r_s_bias"][k].tobytes()
    model.eval()
    ids = torch.tensor([[3, 7, 11, 2, 30], [1, 0, 5, 9, 4]])
    with torch.no_grad():
        output = model(input_ids=ids, token_type_ids=torch.tensor([[0, 0, 0, 1, 1]] * 2))
    if cls is transformers.XLNetModel:
        hidden = output.last_hidden_state
        assert hidden.shape == (2, 5, 6) and torch.isfinite(hidden).all()
        return
    logits = output.logits.numpy()
    assert logits.shape == (2, 5, 31) and np.isfinite(logits).all()
    # The LM head is the TF lookup table (tied) plus lm_loss/bias: logits = h E^T + b from the TF values.
    with torch.no_grad():
        hidden = model.transformer(input_ids=ids, token_type_ids=torch.tensor([[0, 0, 0, 1, 1]] * 2))
    h = hidden.last_hidden_state.numpy().astype(np.float64)
    table = tf_values["model/transformer/word_embedding/lookup_table"].astype(np.float64)
    expected = h @ table.T + tf_values["model/lm_loss/bias"]
    np.testing.assert_allclose(logits, expected, atol=1e-5)
