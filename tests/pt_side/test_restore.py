"""`bridge unused FILE.py:FACTORY --checkpoint CKPT` for PyTorch: checked against load_state_dict itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli

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
