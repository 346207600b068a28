"""`bridge unused` on real small PyTorch models (factories in tests/fixtures_unused/pt_models.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import bridge

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures_unused"
PT_MODELS = FIXTURES / "pt_models.py"


@pytest.fixture(scope="module")
def models(pt_models):
    return pt_models


def _kinds(report):
    return {item.name: item.kind for item in report.items}


def test_bert_pooler_without_gradient_gets_add_pooling_layer_hint(models):
    pytest.importorskip("transformers")
    model, batch, loss_fn = models.bert_pooler()
    report = bridge.find_unused(model, batch, loss_fn)
    # BertModel computes the pooler in forward: read, but the sequence-output loss gives it no gradient.
    assert _kinds(report) == {"pooler.dense.weight": "no_gradient", "pooler.dense.bias": "no_gradient"}
    assert {item.scope for item in report.items} == {"pooler"}
    assert all("add_pooling_layer=False" in item.hint for item in report.items)
    assert report.exit_code == 1
    payload = report.to_json()
    assert payload["summary"]["counts"]["no_gradient"] == 2
    assert payload["summary"]["parameters"] == len(list(model.parameters()))
    assert {row["kind"] for row in payload["unused"]} == {"no_gradient"}


def test_bert_with_the_fix_applied_is_clean(models):
    pytest.importorskip("transformers")
    report = bridge.find_unused(*models.bert_fixed())
    assert report.items == [] and report.exit_code == 0


def test_absolute_positions_never_added_are_never_read_and_nothing_else(models):
    model, batch = models.relative_position()
    report = bridge.find_unused(model, batch)
    assert _kinds(report) == {"embeddings.position_embeddings.weight": "never_read"}
    item = report.items[0]
    assert item.scope == "embeddings.position_embeddings" and item.numel == 32 * 16
    assert "del model.embeddings.position_embeddings" in item.hint


def test_discarded_encoder_output_means_no_gradient_for_every_encoder_parameter(models, torch):
    model, batch, loss_fn = models.encoder_discarded()
    report = bridge.find_unused(model, batch, loss_fn)
    encoder = {f"encoder.{n}" for n, _ in model.encoder.named_parameters()}
    assert _kinds(report) == dict.fromkeys(encoder, "no_gradient")
    assert {item.scope for item in report.items} == {"encoder"}
    assert "computed but discarded" in report.items[0].hint
    # cross-check against autograd directly
    out = model(*batch)
    grads = torch.autograd.grad(loss_fn(out, batch), list(model.parameters()), allow_unused=True)
    none = {n for (n, _), g in zip(model.named_parameters(), grads, strict=True) if g is None}
    assert none == encoder


def test_frozen_encoder_is_reported_as_frozen_with_exit_0(models):
    model, batch = models.frozen_encoder()
    report = bridge.find_unused(model, batch)
    assert set(_kinds(report).values()) == {"frozen"}
    assert set(_kinds(report)) == {"encoder.0.weight", "encoder.1.weight", "encoder.1.bias"}
    assert report.exit_code == 0 and report.ok
    assert "harmless" in report.items[0].hint


def test_layer_drop_is_sometimes_over_several_steps(models):
    model, batch = models.layer_drop()
    one = bridge.find_unused(model, batch, steps=1)
    report = bridge.find_unused(model, batch, steps=4)
    kinds = _kinds(report)
    assert kinds, "expected some layers to be dropped in some of 4 steps"
    assert set(kinds.values()) == {"sometimes"}
    assert all(name.startswith("layers.") for name in kinds)
    assert all("find_unused_parameters=True" in i.hint and "static_graph=True" in i.hint for i in report.items)
    assert all(0 < i.steps_used < 4 for i in report.items)
    assert not any(name.startswith("inp.") for name in _kinds(one))
    # eval mode switches layer-drop off: everything is used
    model.eval()
    assert bridge.find_unused(model, batch, steps=4).items == []


def test_read_detection_is_by_identity_not_by_name(torch):
    """A parameter whose name looks unused but that enters an op through a view is read."""

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.pooler = torch.nn.Parameter(torch.ones(3))  # "pooler" name, but used
            self.spare = torch.nn.Parameter(torch.ones(3))  # never touched

        def forward(self, x):
            return (x * self.pooler).sum()

    report = bridge.find_unused(M(), torch.ones(3))
    assert _kinds(report) == {"spare": "never_read"}


def test_bad_steps_is_usage_error(models):
    from bridge.core.errors import UsageError

    with pytest.raises(UsageError):
        bridge.find_unused(*models.relative_position(), steps=0)


@pytest.mark.slow
def test_ddp_raises_for_the_pooler_and_not_after_the_fix(torch):
    """Two gloo processes, ~20 s; each run is bounded by run_ddp_check's own timeout."""
    pytest.importorskip("transformers")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    from pt_side.unused.ddp import run_ddp_check

    before = run_ddp_check(f"{PT_MODELS}:bert_pooler", timeout=90)
    if before["error_kind"] in ("setup", "timeout"):
        pytest.skip(f"cannot run 2 gloo processes here: {before['message']}")
    assert before["raised"] is True, before
    assert "Expected to have finished reduction in the prior iteration" in before["message"]
    after = run_ddp_check(f"{PT_MODELS}:bert_fixed", timeout=90)
    assert after["raised"] is False and after["error_kind"] is None, after
