"""Mesh TensorFlow T5 / mT5 checkpoints -> transformers T5* / MT5*: check, convert, verify, generate.

The sources (tests/fixtures/t5-tf1/, tests/families/t5/make_fixtures.py) were written by TensorFlow's own sharded
Saver; the oracle beside each is the state dict transformers 4.57's ``load_tf_weights_in_t5`` made from the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bridge.commands.check import check
from bridge.commands.convert import convert
from bridge.commands.verify import verify
from bridge.families.t5.pack import config_from_gin, parse_gin
from tests.cli.test_light import _BLOCKED, HEAVY
from tests.conftest import run_cli

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "t5-tf1"
VERSIONS = ("v1_0", "v1_1")
# (fixture, --target) pairs converted; a tied v1.0 model is no MT5ForConditionalGeneration
# (test_tied_model_to_mt5_is_a_gap)
PAIRS = [
    (v, t)
    for v in VERSIONS
    for t in ("default", "MT5ForConditionalGeneration", "T5EncoderModel", "MT5EncoderModel")
    if (v, t) != ("v1_0", "MT5ForConditionalGeneration")
]
TIED = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}


def _oracle(version: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(FIXTURES / version / "pt-4.57.safetensors"))


def _written(folder: Path) -> dict[str, np.ndarray]:
    from bridge.api import load

    with load(folder) as ckpt:
        return {r.name: r.numpy() for r in ckpt.values()}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[tuple[str, str], Path]:
    """Each fixture converted to each class it fits (the default, the mT5 twin, the encoders)."""
    root = tmp_path_factory.mktemp("t5")
    out = {}
    for version, target in PAIRS:
        folder = root / f"{version}-{target}"
        convert(FIXTURES / version, to="pytorch", out=folder, target=None if target == "default" else target)
        out[version, target] = folder
    return out


def test_checkpoints_are_multi_shard_bf16_with_adafactor_slots():
    from bridge.api import load

    for version in VERSIONS:
        assert sorted(p.name for p in (FIXTURES / version).glob("*.data-*")) == [
            "model.ckpt-1000.data-00000-of-00002",
            "model.ckpt-1000.data-00001-of-00002",
        ]
        with load(FIXTURES / version) as ckpt:
            model = [r for r in ckpt.values() if r.kind == "model"]
            slots = {r.slot_name for r in ckpt.values() if r.kind == "optimizer"}
            assert {r.dtype for r in model} == {"bfloat16"}
            assert slots == {"slot_vc", "slot_vr", "slot_v"}
            assert ckpt["encoder/block_000/layer_000/SelfAttention/q_slot_vr"].slot_of == (
                "encoder/block_000/layer_000/SelfAttention/q"
            )


@pytest.mark.parametrize("version", VERSIONS)
def test_convert_equals_transformers_457_bit_for_bit(converted, version):
    """bf16 is written as stored; its exact float32 upcast is what transformers 4.57 produced, for every key."""
    oracle, ours = _oracle(version), _written(converted[version, "default"])
    assert set(oracle) - set(ours) <= TIED and set(ours) <= set(oracle)
    for name, value in ours.items():
        assert value.dtype == np.dtype("bfloat16") or str(value.dtype) == "bfloat16"
        upcast = value.astype(np.float32)
        assert upcast.shape == oracle[name].shape and upcast.tobytes() == oracle[name].tobytes(), name
    for name in set(oracle) - set(ours):  # 4.57 keeps the ties as names of one tensor: each equals its owner
        owner = "shared.weight"
        assert oracle[name].tobytes() == oracle[owner].tobytes()
    assert ("lm_head.weight" in ours) == (version == "v1_1")


def test_dtype_float32_writes_the_457_file_byte_for_byte(tmp_path):
    convert(FIXTURES / "v1_1", to="pytorch", out=tmp_path / "f32", dtype="float32")
    oracle, ours = _oracle("v1_1"), _written(tmp_path / "f32")
    assert {n: (v.dtype, v.tobytes()) for n, v in ours.items()} == {
        n: (v.dtype, v.tobytes()) for n, v in oracle.items() if n in ours
    }


@pytest.fixture(scope="module")
def transformers(torch):
    pytest.importorskip("tensorflow")
    return pytest.importorskip("transformers")


@pytest.mark.parametrize(("version", "target"), PAIRS)
def test_transformers_5_loads_with_no_missing_or_unexpected_keys(transformers, converted, version, target):
    folder = converted[version, target]
    class_name = json.loads((folder / "config.json").read_text())["architectures"][0]
    assert class_name == ("T5ForConditionalGeneration" if target == "default" else target)
    model, info = getattr(transformers, class_name).from_pretrained(str(folder), output_loading_info=True)
    assert (info["missing_keys"], info["unexpected_keys"], info["mismatched_keys"]) == (set(), set(), set())
    oracle = _oracle(version)
    for name, value in model.state_dict().items():  # what the model holds is 4.57's, ties included
        assert value.numpy().tobytes() == oracle[name].tobytes(), name
    if hasattr(model, "lm_head"):
        assert (model.lm_head.weight is model.shared.weight) == (version == "v1_0")


@pytest.mark.parametrize(("version", "target"), [p for p in PAIRS if p[1] != "MT5EncoderModel"])
def test_verify_passes_values_and_forward(transformers, converted, version, target):
    report = verify(FIXTURES / version, converted[version, target])
    # the encoder alone, chosen: verify fails on the decoder the output lacks, and still runs the forward check
    assert all("not in the output" in g for g in report.plan_gaps) and report.ok == ("Encoder" not in target)
    assert bool(report.plan_gaps) == ("Encoder" in target), report.to_json()
    assert report.values_compared == report.values_equal > 0
    names = {o.name for o in report.outputs}
    assert names == ({"encoder_last_hidden_state"} if "Encoder" in target else {"encoder_last_hidden_state", "logits"})
    assert all(o.max_abs <= 1e-5 for o in report.outputs)


def test_tied_model_to_mt5_is_a_gap():
    """transformers 5's MT5 has no d_model**-0.5 scaling of a tied LM head: a v1.0 model cannot be one."""
    plan = check(FIXTURES / "v1_0", to="pytorch", target="MT5ForConditionalGeneration")
    assert not plan.ok and [m.name for m in plan.missing if not m.expected] == ["lm_head.weight"]
    assert check(FIXTURES / "v1_0", to="pytorch", target="MT5EncoderModel").ok


def test_verify_cli_says_pass(transformers, converted):
    out = run_cli("verify", str(FIXTURES / "v1_1"), str(converted["v1_1", "default"]))
    assert "66/66 tensors bit-exact" in out and "forward logits" in out and "verdict: PASS" in out


def test_forward_check_sees_a_wrong_activation(transformers, converted, tmp_path):
    """The reference computes the checkpoint's math: a config that says relu for a gated-gelu model fails."""
    import shutil

    folder = tmp_path / "wrong"
    shutil.copytree(converted["v1_1", "default"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["feed_forward_proj"] = "gated-relu"
    (folder / "config.json").write_text(json.dumps(config))
    report = verify(FIXTURES / "v1_1", folder)
    assert report.values_compared == report.values_equal and not report.ok
    assert [o.name for o in report.outputs if not o.ok] == ["encoder_last_hidden_state", "logits"]


@pytest.mark.parametrize("version", VERSIONS)
def test_generate_runs_on_the_converted_model(transformers, torch, converted, version):
    folder = converted[version, "default"]
    generation = json.loads((folder / "generation_config.json").read_text())
    assert (generation["decoder_start_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (0, 1, 0)
    # v1_1 has 3 decoder blocks for 2 encoder blocks: transformers 5 sizes generate()'s cache by num_layers.
    assert generation.get("use_cache", True) == (version == "v1_0")
    model = transformers.T5ForConditionalGeneration.from_pretrained(str(folder))
    ids = torch.tensor([[3, 4, 5, 6, 1], [7, 8, 9, 1, 0]])
    mask = (ids != 0) | (torch.arange(5) < 4)
    out = model.generate(input_ids=ids, attention_mask=mask.long(), max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2 and out.shape[1] > 1 and bool((out[:, 0] == 0).all())


def test_check_reads_gin_else_shapes():
    with_gin = check(FIXTURES / "v1_1", to="pytorch")
    assert with_gin.ok and with_gin.pack == "t5"
    config = with_gin.target.config
    assert (config["feed_forward_proj"], config["num_decoder_layers"], config["tie_word_embeddings"]) == (
        "gated-gelu",
        3,
        False,
    )
    assert any(n.startswith("t5: operative_config.gin read") for n in with_gin.notes)
    assert not any(n.startswith("config inferred from tensor shapes") for n in with_gin.notes)
    shapes = check(FIXTURES / "v1_0", to="pytorch")
    assert shapes.target.config["num_heads"] == 2 and shapes.target.config["d_kv"] == 6
    assert any(
        "config inferred from tensor shapes" in n and "feed_forward_proj assumed relu" in n for n in shapes.notes
    )


def test_gin_parser_reads_macros_scopes_and_continuations():
    bindings = parse_gin(
        "import t5.models\n# Macros:\nd_ff = 2048\nnum_layers = 6\n"
        "encoder/DenseReluDense.hidden_size = %d_ff\n"
        "decoder/make_layer_stack.layers = \\\n    [@a.SelfAttention,\n     @a.DenseReluDense]\n"
        "run.sequence_length = {'inputs': 512, 'targets': 114}\n"
        "DenseReluDense.activation = ['gelu', 'linear']\n"
    )
    assert bindings["encoder/DenseReluDense.hidden_size"] == 2048
    assert bindings["run.sequence_length"] == {"inputs": 512, "targets": 114}
    assert bindings["decoder/make_layer_stack.layers"] == "[@a.SelfAttention, @a.DenseReluDense]"
    config, _ = config_from_gin((FIXTURES / "v1_1" / "operative_config.gin").read_text())
    assert config == {
        "d_model": 8, "d_ff": 16, "d_kv": 6, "num_heads": 2, "num_layers": 2, "num_decoder_layers": 3,
        "relative_attention_num_buckets": 8, "feed_forward_proj": "gated-gelu",
    }  # fmt: skip


def test_config_flag_takes_a_gin_file(tmp_path):
    gin = tmp_path / "my_run.gin"
    gin.write_text((FIXTURES / "v1_1" / "operative_config.gin").read_text().replace("d_kv = 6", "d_kv = 3"))
    plan = check(FIXTURES / "v1_1", to="pytorch", config=gin)
    assert not plan.ok and plan.mismatched  # the gin's head size contradicts the shapes: said, not guessed
    bad = tmp_path / "bad.gin"
    bad.write_text("d_model = (\n")
    out = run_cli("check", str(FIXTURES / "v1_1"), "--to", "pytorch", "--config", str(bad), code=2)
    assert "bad.gin" in out and "Traceback" not in out


def test_encoder_target_drops_the_decoder_as_expected():
    plan = check(FIXTURES / "v1_1", to="pytorch", target="T5EncoderModel")
    assert plan.ok
    dropped = {u.name: u.reason for u in plan.unused if u.kind == "model"}
    assert dropped["decoder/logits/kernel"].startswith("expected: LM head")
    assert all(n.startswith("decoder/") for n in dropped)


def test_per_block_relative_bias_is_a_gap(tf, tmp_path):
    """A Mesh TF model with relative_attention_type='bias' (a table per block): transformers cannot compute it."""
    from bridge.api import load

    v1 = tf.compat.v1
    with load(FIXTURES / "v1_0") as ckpt:
        values = {r.name: r.numpy() for r in ckpt.values() if r.kind == "model"}
    extra = "encoder/block_001/layer_000/SelfAttention/relative_attention_bias"
    values[extra] = values["encoder/block_000/layer_000/SelfAttention/relative_attention_bias"]
    with tf.Graph().as_default():
        made = [v1.get_variable(name, initializer=tf.constant(value)) for name, value in values.items()]
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            v1.train.Saver(made).save(session, str(tmp_path / "model.ckpt"), write_meta_graph=False)
    out = run_cli("check", str(tmp_path), "--to", "pytorch", code=1)
    assert "changes the model's math" in out and "block 0" in out and "verdict: GAPS" in out


@pytest.mark.slow
def test_check_and_convert_need_no_framework(tmp_path):
    """A Mesh TF checkpoint is planned and converted with neither TensorFlow nor torch importable."""
    invocations = [
        ["check", str(FIXTURES / "v1_1"), "--to", "pytorch"],
        ["convert", str(FIXTURES / "v1_1"), "--to", "pytorch", "-o", str(tmp_path / "out")],
    ]
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKED.format(heavy=HEAVY), json.dumps(invocations)],
        capture_output=True,
        text=True,
        check=True,
    )
    results = json.loads(out.stdout.strip().splitlines()[-1])
    assert [code for code, _ in results] == [0, 0], results
    assert (tmp_path / "out" / "generation_config.json").is_file()
