"""`bridge unused FILE.py:FACTORY --checkpoint CKPT` for PyTorch: checked against load_state_dict itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.unused.render import render_restore

PT_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "pt_models.py"


@pytest.fixture(scope="module")
def models(pt_models):
    return pt_models


@pytest.fixture(scope="module")
def files(models, torch, tmp_path_factory):
    """A training-state file {"model", "optimizer"} after one Adam step, and the bare weights as safetensors."""
    from safetensors.torch import save_file

    model, batch = models.classifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(batch).pow(2).mean().backward()
    optimizer.step()
    folder = tmp_path_factory.mktemp("pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, folder / "state.pt")
    save_file(model.state_dict(), str(folder / "model.safetensors"))
    return folder / "state.pt", folder / "model.safetensors"


def test_training_state_only_optimizer_leftovers(models, files, torch):
    state, _ = files
    model, _ = models.classifier()
    report = bridge.checkpoint_vs_model(model, state)
    assert report.root == "model" and report.matched == report.total == len(model.state_dict())
    assert {i.kind for i in report.items} == {"optimizer"}
    assert {i.name.rsplit(".", 1)[-1] for i in report.items} == {"step", "exp_avg", "exp_avg_sq"}
    assert report.expect_partial_safe and report.exit_code == 0
    result = model.load_state_dict(torch.load(state, weights_only=True)["model"], strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert "torch.load(" in report.call and "weights_only=True)['model']" in report.call and report.fix is None
    result, _ = _run_call(report.call, model)  # the report's call, as written, is that call
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_renamed_module_is_a_model_leftover_with_did_you_mean(models, files, torch):
    _, weights = files
    from safetensors.torch import load_file

    model, _ = models.classifier_renamed()
    report = bridge.checkpoint_vs_model(model, weights)
    leftovers = {i.name: i.did_you_mean for i in report.by_kind("model_leftover")}
    assert leftovers == {"head.weight": "classifier.weight", "head.bias": "classifier.bias"}
    missing = {i.name: i.did_you_mean for i in report.by_kind("missing")}
    assert missing == {"classifier.weight": "head.weight", "classifier.bias": "head.bias"}
    assert report.exit_code == 1 and not report.expect_partial_safe
    # load_state_dict names the same keys
    result = model.load_state_dict(load_file(str(weights)), strict=False)
    assert set(result.unexpected_keys) == set(leftovers) and set(result.missing_keys) == set(missing)


def test_cli(models, files):
    state, weights = files
    ok = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:classifier", "--checkpoint", str(state), "--json"])
    assert ok.exit_code == 0, ok.output
    payload = json.loads(ok.output)
    assert payload["root"] == "model" and payload["summary"]["counts"]["optimizer"] > 0
    bad = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:classifier_renamed", "--checkpoint", str(weights)])
    assert bad.exit_code == 1, bad.output
    assert "did you mean `classifier.weight`" in bad.output
    assert "load_state_dict(..., strict=False): NOT safe" in bad.output


def test_tensorflow_checkpoint_for_a_torch_model_is_exit_2(models):
    tiny = Path(__file__).resolve().parents[2] / "examples" / "tiny-bert"
    result = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:classifier", "--checkpoint", str(tiny)])
    assert result.exit_code == 2 and "different frameworks" in result.output, result.output
    result = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:classifier", "--checkpoint", str(tiny), "--ddp"])
    assert result.exit_code == 2 and "only compares names and shapes" in result.output, result.output


# --- the report is load_state_dict's own result for the file as it is, and its fix really loads ---------------

BERT_DDP = Path(__file__).resolve().parents[1] / "fixtures" / "bert-ddp"


def _run_call(code: str, model):
    """Execute a report's code as the user would: every line but the last sets up ``sd``, the last loads."""
    *setup, last = code.splitlines()
    namespace = {"model": model}
    exec("\n".join(setup), namespace)  # noqa: S102 - the code under test, written by the report
    return eval(last, namespace), namespace["sd"]  # noqa: S307


def _bert(cls_name: str, **changes: int):
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    return getattr(transformers, cls_name)(transformers.BertConfig.from_pretrained(str(BERT_DDP), **changes))


@pytest.fixture(scope="module")
def bert_files(torch, tmp_path_factory):
    """Files written by real torch.save / safetensors from tiny transformers models: clean, partial, prefixed,
    nested (a training state whose weights carry DDP's prefix)."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("bert-files")
    base = _bert("BertModel").state_dict()
    save_file({k: v.contiguous() for k, v in base.items()}, str(folder / "clean.safetensors"))
    partial = {k: v for k, v in base.items() if not k.startswith(("pooler.", "encoder.layer.1.output."))}
    torch.save(partial, folder / "partial.pt")
    pretraining = _bert("BertForPreTraining").state_dict()  # bert.* (with the pooler) + cls.*
    torch.save(pretraining, folder / "pretraining.bin")
    ddp = torch.load(BERT_DDP / "pytorch_model.bin", weights_only=True)
    torch.save({"model": ddp, "epoch": 3}, folder / "state-ddp.pt")
    other = _bert("BertModel", vocab_size=80).state_dict()  # one tensor of another shape: the word embeddings
    save_file({k: v.contiguous() for k, v in other.items()}, str(folder / "other-vocab.safetensors"))
    torch.save({f"module.{k}": v for k, v in other.items()}, folder / "other-vocab-ddp.bin")
    return folder


def test_shape_mismatch_as_is_is_not_restored(bert_files):
    """The user's call raises on a size mismatch (strict=False or not): the report never counts it restored."""
    model = _bert("BertModel")
    report = bridge.checkpoint_vs_model(model, bert_files / "other-vocab.safetensors")
    assert [i.name for i in report.by_kind("shape_mismatch")] == ["embeddings.word_embeddings.weight"]
    assert report.matched == report.total - 1 and report.exit_code == 1
    with pytest.raises(RuntimeError, match="size mismatch"):
        _run_call(report.call, model)
    assert "restores 38 of 39 as is (0 model leftovers, 0 missing, 1 mismatched)" in render_restore(report)


def test_fix_leaves_out_what_has_another_shape_and_runs(bert_files):
    """A DDP file of another vocabulary: the printed fix aligns the prefix, leaves the one tensor of another shape
    out, and runs: torch loads the other 38 and raises nothing."""
    report = bridge.checkpoint_vs_model(_bert("BertModel"), bert_files / "other-vocab-ddp.bin")
    fix = report.fix
    assert fix is not None and fix.restored == 38
    assert fix.mismatched == (("embeddings.word_embeddings.weight", (80, 16), (64, 16)),)
    fresh = _bert("BertModel")
    initial = fresh.embeddings.word_embeddings.weight.detach().clone()
    result, sd = _run_call(fix.code, fresh)
    assert result.missing_keys == ["embeddings.word_embeddings.weight"] and result.unexpected_keys == []
    assert torch_equal(fresh.embeddings.word_embeddings.weight, initial)
    assert torch_equal(fresh.pooler.dense.weight, sd["pooler.dense.weight"])
    text = render_restore(report)
    assert "fix: this call restores 38 of 39" in text and "1 aligned keys hold another shape" in text
    assert report.to_json()["fix"]["mismatched_after_fix"][0]["model_shape"] == [64, 16]


CASES = {
    # file, model class, (restored as is, fix: strip, submodule, restored after)
    "clean": ("clean.safetensors", "BertModel", (39, None)),
    "partial": ("partial.pt", "BertModel", (33, None)),
    "ddp": (BERT_DDP, "BertModel", (0, ("module.", "", 39))),
    "bert-prefix": ("pretraining.bin", "BertModel", (0, ("bert.", "", 39))),
    "base-into-head": ("clean.safetensors", "BertForSequenceClassification", (0, ("", "bert", 39))),
    "ddp-into-head": (BERT_DDP, "BertForSequenceClassification", (0, ("module.", "bert", 39))),
    "nested-ddp": ("state-ddp.pt", "BertModel", (0, ("module.", "", 39))),
}


@pytest.mark.parametrize("case", list(CASES))
def test_report_is_load_state_dicts_result_as_is(case, bert_files):
    file, cls_name, (restored, fix) = CASES[case]
    path = file if isinstance(file, Path) else bert_files / file
    model = _bert(cls_name)
    report = bridge.checkpoint_vs_model(model, path)
    assert report.call.endswith("model.load_state_dict(sd, strict=False)")
    result, sd = _run_call(report.call, model)  # the user's own call, with sd as the report builds it
    assert set(report.missing) == set(result.missing_keys)
    assert set(report.unexpected) == set(result.unexpected_keys)
    assert report.matched == restored == len(model.state_dict()) - len(result.missing_keys)
    assert report.exit_code == (0 if restored == report.total else 1)
    if fix is None:
        assert report.fix is None
        return
    strip, submodule, after = fix
    assert (report.fix.strip_prefix, report.fix.submodule, report.fix.restored) == (strip, submodule, after)
    payload = report.to_json()
    assert payload["fix"]["restored_after_fix"] == after and payload["summary"]["restored"] == restored
    assert set(payload["unexpected"]) == set(result.unexpected_keys)
    fresh = _bert(cls_name)
    fixed, sd = _run_call(report.fix.code, fresh)
    assert list(fixed.missing_keys) == list(report.fix.missing) == []
    assert list(fixed.unexpected_keys) == list(report.fix.unexpected) == []
    prefix = f"{submodule}." if submodule else ""
    loaded = fresh.state_dict()
    for key in loaded:
        if key.startswith(prefix):  # every weight of the (sub)module now holds the file's value
            assert torch_equal(loaded[key], sd[strip + key[len(prefix) :]]), key
    untouched = {k for k in loaded if not k.startswith(prefix)}
    assert set(report.fix.untouched) == untouched  # the classifier keeps its initial values
    given = {strip + k for k in fresh.state_dict() if k.startswith(prefix)}
    assert set(report.fix.left_out) == {k for k in sd if not k.startswith(strip)} - given  # cls.* for bert.


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_nested_state_is_indexed_not_stripped(bert_files):
    """{"model": sd}: the user indexes the dict (a real sub-dict of the pickle), the DDP prefix is a key prefix."""
    report = bridge.checkpoint_vs_model(_bert("BertModel"), bert_files / "state-ddp.pt")
    assert report.root == "model"
    assert "weights_only=True)['model']\n" in report.call
    assert "{k.removeprefix('module.'): v for k, v in sd.items()}" in report.fix.code
    assert not any("epoch" in u for u in report.unexpected)


def test_ddp_text_says_nothing_is_restored_as_is(bert_files):
    report = bridge.checkpoint_vs_model(_bert("BertModel"), BERT_DDP)
    text = render_restore(report)
    assert "pytorch: 0 of 39 model variables restored" in text
    assert "load_state_dict reports 39 missing_keys, 39 unexpected_keys" in text
    assert "verdict: restores nothing as is" in text and "the fix above restores 39 of 39" in text
    assert "load_state_dict(..., strict=False): NOT safe" in text
    assert "restores completely" not in text


def test_cli_ddp_json_and_exit_1(bert_files, tmp_path):
    pytest.importorskip("transformers")
    factory = tmp_path / "f.py"
    factory.write_text(
        "from transformers import BertConfig, BertModel\n\n\ndef build():\n"
        f"    return BertModel(BertConfig.from_pretrained({str(BERT_DDP)!r})), None\n"
    )
    result = CliRunner().invoke(cli, ["unused", f"{factory}:build", "--checkpoint", str(BERT_DDP), "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert payload["summary"]["restored"] == 0 and payload["summary"]["unexpected"] == 39
    assert payload["fix"]["strip_prefix"] == "module." and payload["fix"]["restored_after_fix"] == 39
    assert "removeprefix('module.')" in payload["fix"]["code"]
    text = CliRunner().invoke(cli, ["unused", f"{factory}:build", "--checkpoint", str(BERT_DDP)])
    assert text.exit_code == 1 and "fix: this call restores 39 of 39" in text.output, text.output
