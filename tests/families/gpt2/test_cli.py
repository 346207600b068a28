"""openai/gpt-2 TF1 checkpoints -> transformers GPT2Model / GPT2LMHeadModel and back: check, convert, verify.

Oracles, none of them bridge's: transformers 4.57's own ``load_tf_weights_in_gpt2`` state dict of the fixture
(``gpt2-tf1-oracle/hf457_GPT2Model.safetensors``), the TF1 graph's own hidden states and logits from the session
that wrote the checkpoint (``tf1_forward.npz``), transformers 5's loader, and TensorFlow's own checkpoint reader.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.commands.check import check
from bridge.commands.convert import convert
from bridge.commands.verify import verify

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PLAIN = FIXTURES / "gpt2-tf1"
ADAM = FIXTURES / "gpt2-tf1-adam"
ORACLE = FIXTURES / "gpt2-tf1-oracle"
HPARAMS = json.loads((PLAIN / "hparams.json").read_text())


def _read(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _assert_bit_exact(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        assert got[name].tobytes() == value.tobytes(), name


def _load(transformers, folder: Path, class_name: str):
    model, info = getattr(transformers, class_name).from_pretrained(str(folder), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    return model.eval()


@pytest.mark.parametrize("source", [PLAIN, ADAM])
def test_convert_equals_transformers_457_bit_for_bit(tmp_path, source):
    """GPT2Model: the very state dict 4.57's load_tf_weights_in_gpt2 makes (the Adam checkpoint holds the same
    model weights beside its slots); GPT2LMHeadModel: the same under `transformer.`, lm_head tied, not stored."""
    oracle = _read(ORACLE / "hf457_GPT2Model.safetensors")
    base = convert(source, to="pytorch", target="GPT2Model", out=tmp_path / "base")
    _assert_bit_exact(_read(tmp_path / "base/model.safetensors"), oracle)
    slots = 2 * 4 * sum(v.size for v in oracle.values()) + 2 * 4 + 8  # Adam, Adam_1, beta powers, int64 step
    assert base.dropped_bytes == (0 if source == PLAIN else slots)
    convert(source, to="pytorch", out=tmp_path / "lm")
    _assert_bit_exact(_read(tmp_path / "lm/model.safetensors"), {f"transformer.{k}": v for k, v in oracle.items()})
    config = json.loads((tmp_path / "lm/config.json").read_text())
    assert config["architectures"] == ["GPT2LMHeadModel"] and config["model_type"] == "gpt2"
    assert (config["vocab_size"], config["n_positions"], config["n_embd"], config["n_head"], config["n_layer"]) == (
        64,
        16,
        8,
        2,
        2,
    )
    assert config["activation_function"] == "gelu_new" and config["layer_norm_epsilon"] == 1e-5
    assert config["eos_token_id"] == 63  # the last id: openai's <|endoftext|>


def test_adam_slots_are_optimizer_state_never_weights():
    plan = check(ADAM, to="pytorch")
    assert plan.ok and plan.pack == "openai-gpt2"
    kinds: dict[str, list[str]] = {}
    for x in plan.unused:
        kinds.setdefault(x.kind, []).append(x.name)
        assert x.expected, x
    assert sorted(kinds) == ["counter", "optimizer"]
    assert kinds["counter"] == ["global_step"]
    assert len(kinds["optimizer"]) == 2 * 28 + 2 and {"beta1_power", "beta2_power"} <= set(kinds["optimizer"])
    assert all(n.endswith(("/Adam", "/Adam_1", "_power")) for n in kinds["optimizer"])
    assert len(plan.matched) == 28 and [(t.name, t.tied_to) for t in plan.tied] == [
        ("lm_head.weight", "transformer.wte.weight")
    ]


def test_kernels_lose_their_leading_axis_only():
    plan = check(PLAIN, to="pytorch", target="GPT2Model")
    kernels = {m.source: m for m in plan.matched if m.source.endswith("/w")}
    assert len(kernels) == 8 and {m.transform for m in kernels.values()} == {"squeeze(0)"}
    fc = kernels["model/h1/mlp/c_fc/w"]
    assert (fc.target, fc.source_shape, fc.target_shape) == ("h.1.mlp.c_fc.weight", (1, 8, 32), (8, 32))


@pytest.mark.parametrize("class_name", ["GPT2Model", "GPT2LMHeadModel"])
def test_transformers_5_loads_it_and_computes_the_tf1_graphs_outputs(tmp_path, transformers, class_name):
    """No missing or unexpected keys; the outputs equal those of the TF1 graph that wrote the checkpoint."""
    import torch

    convert(PLAIN, to="pytorch", target=class_name, out=tmp_path / "out")
    model = _load(transformers, tmp_path / "out", class_name)
    tf1 = np.load(ORACLE / "tf1_forward.npz")
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(tf1["input_ids"].astype(np.int64)))
    hidden = out.last_hidden_state if class_name == "GPT2Model" else None
    if hidden is not None:
        np.testing.assert_allclose(hidden.numpy(), tf1["hidden"], atol=1e-5, rtol=0)
    else:
        assert model.lm_head.weight is model.transformer.wte.weight
        np.testing.assert_allclose(out.logits.numpy(), tf1["logits"], atol=1e-5, rtol=0)


def test_reference_forward_computes_the_tf1_graph(tf):
    """bridge/families/gpt2/reference_tf.py, which verify runs, against the TF1 graph's own outputs."""
    from bridge import load
    from bridge.families.gpt2.reference_tf import gpt2_forward

    tf1 = np.load(ORACLE / "tf1_forward.npz")
    with load(PLAIN) as ckpt:
        ref = gpt2_forward(lambda n: ckpt[n].numpy(), HPARAMS, tf1["input_ids"])
    for name in ("hidden", "logits"):
        np.testing.assert_allclose(ref[name], tf1[name], atol=1e-5, rtol=0)


@pytest.mark.parametrize("class_name", ["GPT2Model", "GPT2LMHeadModel"])
def test_verify_passes_values_and_forward(tmp_path, transformers, tf, class_name):
    out = tmp_path / "out"
    convert(PLAIN, to="pytorch", target=class_name, out=out)
    result = CliRunner().invoke(cli, ["verify", str(PLAIN), str(out)])
    assert result.exit_code == 0, result.output
    assert "values: 28/28 tensors bit-exact" in result.output and "verdict: PASS" in result.output
    assert "forward hidden [2, 16, 8]" in result.output
    assert ("forward logits [2, 16, 64]" in result.output) == (class_name == "GPT2LMHeadModel")


def test_generate_follows_the_tf1_graphs_greedy_choice(tmp_path, transformers, tf):
    """generate() runs on the converted model; its greedy tokens are the argmax of openai's math, step by step."""
    import torch

    from bridge import load
    from bridge.families.gpt2.reference_tf import gpt2_forward

    convert(PLAIN, to="pytorch", out=tmp_path / "out")
    model = _load(transformers, tmp_path / "out", "GPT2LMHeadModel")
    prompt = np.array([[5, 17, 42, 3]], dtype=np.int64)
    with torch.no_grad():
        generated = model.generate(torch.from_numpy(prompt), max_new_tokens=8, do_sample=False, min_new_tokens=8)
    ids = prompt
    with load(PLAIN) as ckpt:
        for _ in range(8):
            logits = gpt2_forward(lambda n: ckpt[n].numpy(), HPARAMS, ids)["logits"]
            ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None]], axis=1)
    assert generated.numpy().tolist() == ids.tolist()


def test_back_to_openai_layout_is_the_original_checkpoint(tmp_path, transformers, tf):
    """TF -> PyTorch -> TF gives back every variable of the original, by name, as TensorFlow itself reads them,
    and hparams.json; verify runs the forward check that way too."""
    convert(PLAIN, to="pytorch", out=tmp_path / "pt")
    back = convert(tmp_path / "pt", to="tensorflow", target="openai-gpt2", out=tmp_path / "tf")
    assert back.ok and sorted(back.files) == ["hparams.json", "model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    assert json.loads((tmp_path / "tf/hparams.json").read_text()) == HPARAMS
    original = tf.train.load_checkpoint(str(PLAIN / "model.ckpt"))
    written = tf.train.load_checkpoint(str(tmp_path / "tf/model.ckpt"))
    names = original.get_variable_to_shape_map()
    assert written.get_variable_to_shape_map() == names
    for name in names:
        a, b = original.get_tensor(name), written.get_tensor(name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    report = verify(tmp_path / "pt", tmp_path / "tf")
    assert report.ok and report.values_equal == 28
    assert sorted(o.name for o in report.outputs) == ["hidden", "logits"]


def test_inferred_config_says_what_it_assumed(tmp_path):
    for f in PLAIN.glob("model.ckpt.*"):
        shutil.copy(f, tmp_path / f.name)
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--to", "pytorch", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    config = plan["target"]["config"]
    assert (config["vocab_size"], config["n_positions"], config["n_embd"], config["n_layer"]) == (64, 16, 8, 2)
    assert any("n_head assumed n_embd/64 = 1" in n for n in plan["notes"])


def test_wrong_hparams_is_exit_1_naming_the_shapes(tmp_path):
    for f in PLAIN.glob("model.ckpt.*"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "hparams.json").write_text(json.dumps(dict(HPARAMS, n_embd=16)))
    result = CliRunner().invoke(cli, ["check", str(tmp_path), "--to", "pytorch"])
    assert result.exit_code == 1
    assert "model/wte [64, 8] -> transformer.wte.weight [64, 16]" in result.output
    assert "verdict: GAPS" in result.output


def test_check_of_a_gpt2_checkpoint_imports_no_framework():
    from tests.cli.test_light import run_isolated

    result = run_isolated(["check", str(ADAM), "--to", "pytorch"], ["inspect", str(ADAM)])
    assert result == {"codes": [0, 0], "heavy": []}


def test_openai_toy_checkpoint_converts_loads_runs_and_generates(tmp_path, shared_fixtures, transformers, tf):
    """CyberZHG/keras-gpt-2's toy checkpoint, written by an openai/gpt-2-style TF1 graph (real third-party files)."""
    import torch

    toy = shared_fixtures / "keras-gpt2-toy-tf1"
    out = tmp_path / "toy"
    result = convert(toy, to="pytorch", out=out)
    assert result.ok and result.tensors == 40
    model = _load(transformers, out, "GPT2LMHeadModel")
    assert (model.config.n_embd, model.config.n_head, model.config.n_layer, model.config.vocab_size) == (15, 5, 3, 356)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits
        generated = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert logits.shape == (1, 4, 356) and torch.isfinite(logits).all()
    assert generated.shape == (1, 8)
    report = verify(toy, out)
    assert report.ok and report.values_equal == 40
    assert {o.name: o.ok for o in report.outputs} == {"hidden": True, "logits": True}


def test_forward_reads_tensors_a_map_rule_renamed(tmp_path, transformers, tf):
    """A checkpoint with two variables renamed (written by TensorFlow's SaveV2): --map rules place them, and the
    reference forward reads them through the plan, so verify still compares the outputs."""
    from bridge import load

    renamed = {"model/ln_f/g": "model/final_norm/gain", "model/h0/mlp/c_fc/w": "model/h0/mlp/fc_kernel"}
    with load(PLAIN) as ckpt:
        values = {renamed.get(r.name, r.name): r.numpy() for r in ckpt.values()}
    source = tmp_path / "renamed"
    source.mkdir()
    (source / "hparams.json").write_text(json.dumps(HPARAMS))
    names = sorted(values)
    tf.raw_ops.SaveV2(
        prefix=str(source / "model.ckpt"),
        tensor_names=names,
        shape_and_slices=[""] * len(names),
        tensors=[tf.constant(values[n]) for n in names],
    )
    maps = (
        "model/final_norm/gain=transformer.ln_f.weight",
        "model/h0/mlp/fc_kernel=transformer.h.0.mlp.c_fc.weight@squeeze(0)",
    )
    assert not check(source, to="pytorch").ok  # without the rules: two leftovers, two targets left random
    convert(source, to="pytorch", out=tmp_path / "out", maps=maps)
    _assert_bit_exact(
        _read(tmp_path / "out/model.safetensors"),
        {f"transformer.{k}": v for k, v in _read(ORACLE / "hf457_GPT2Model.safetensors").items()},
    )
    report = verify(source, tmp_path / "out", maps=maps)
    assert report.ok and report.values_equal == 28
    assert sorted(o.name for o in report.outputs) == ["hidden", "logits"]


def test_task_head_classes_keep_the_body_and_start_their_head_fresh(transformers):
    """A GPT2* class the pack has no table for is laid out by transformers on the meta device; its head is new."""
    plan = check(PLAIN, to="pytorch", target="GPT2ForSequenceClassification")
    assert plan.ok and len(plan.matched) == 28
    assert [(x.name, x.expected) for x in plan.missing] == [("score.weight", True)]
