"""`bridge unused` usage by step and by rank: batch-dependent branches, iterables of batches, rank-aware factories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from bridge.core.unused.report import classify_usage
from bridge.unused.render import render_unused

PT_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "pt_models.py"
VISION = ["vision.0.weight", "vision.0.bias", "vision.2.weight", "vision.2.bias"]


def _usage(report):
    return {p.name: (p.usage, p.steps) for p in report.parameters}


def test_modality_branch_is_sometimes_on_the_odd_steps_from_an_iterable_of_batches(pt_models, torch):
    model, batches = pt_models.text_image_batches()
    report = bridge.find_unused(model, batches, steps=6)  # 8 batches in the generator, the first 6 taken
    usage = _usage(report)
    assert {n: usage[n] for n in VISION} == dict.fromkeys(VISION, ("sometimes", (1, 3, 5)))
    assert usage["text.weight"] == usage["head.bias"] == ("always", tuple(range(6)))
    assert usage["unused_head.weight"] == ("never", ())
    kinds = {i.name: (i.kind, i.steps_used) for i in report.items}
    assert kinds == {
        **dict.fromkeys(VISION, ("sometimes", 3)),
        **dict.fromkeys(["unused_head.weight", "unused_head.bias"], ("never_read", None)),
    }
    # cross-check: autograd itself, batch by batch
    model, batches = pt_models.text_image_batches()
    for step, batch in enumerate(list(batches)[:6]):
        model.zero_grad(set_to_none=True)
        model(**batch).sum().backward()
        assert (model.vision[0].weight.grad is not None) == (step in (1, 3, 5))


def test_fewer_batches_than_steps_cycle(pt_models, torch):
    model, batches = pt_models.text_image_batches()
    report = bridge.find_unused(model, list(batches)[:2].__iter__(), steps=5)
    assert _usage(report)["vision.2.bias"] == ("sometimes", (1, 3))
    assert any("2 batches for 5 steps" in n for n in report.notes)


def test_one_tuple_batch_stays_the_model_arguments(pt_models, torch):
    """A tuple is one batch of positional arguments (the existing contract), not two batches."""
    model, batch, loss_fn = pt_models.encoder_discarded()
    report = bridge.find_unused(model, batch, loss_fn, steps=2)
    assert {p.usage for p in report.parameters if p.name.startswith("encoder.")} == {"never"}
    assert {p.usage for p in report.parameters if p.name.startswith("decoder.")} == {"always"}


def test_rank_aware_factory_per_rank_trace_is_rank_dependent(pt_models, torch):
    from pt_side.unused.trace import find_unused_torch_ranks

    report = find_unused_torch_ranks(lambda r: pt_models.text_image_ranked(rank=r, world_size=2), 2, steps=3)
    by_name = {p.name: p for p in report.parameters}
    assert {n: by_name[n].usage for n in VISION} == dict.fromkeys(VISION, "rank_dependent")
    assert by_name["vision.0.weight"].by_rank == {0: (), 1: (0, 1, 2)}
    assert by_name["text.weight"].usage == "always" and by_name["unused_head.bias"].usage == "never"
    assert report.ranks == 2 and report.steps == 6
    assert {i.kind for i in report.items if i.name in VISION} == {"rank_dependent"}
    row = next(p for p in report.to_json()["parameters"] if p["name"] == "vision.0.bias")
    assert row == {
        "name": "vision.0.bias",
        "usage": "rank_dependent",
        "steps": [0, 1, 2],
        "ranks": [1],
        "steps_by_rank": {"0": [], "1": [0, 1, 2]},
    }
    text = render_unused(report)
    assert "rank_dependent (4 parameters)" in text and "used on rank 0: no step; rank 1: steps 0-2" in text
    assert "find_unused_parameters=True" in text


def test_classify_usage_rank_dependent_only_when_ranks_disagree_at_a_step():
    assert classify_usage({0: [1, 3], 1: [1, 3]}, {0: 4, 1: 4}) == "sometimes"
    assert classify_usage({0: [1], 1: [2]}, {0: 4, 1: 4}) == "rank_dependent"
    assert classify_usage({0: [0, 1], 1: [0, 1, 2]}, {0: 2, 1: 3}) == "always"
    assert classify_usage({0: []}, {0: 3}) == "never"


def _cli(*args):
    return CliRunner().invoke(cli, ["unused", *args])


def test_cli_json_parameters_and_the_text_names_the_steps(torch):
    result = _cli(f"{PT_MODELS}:text_image_batches", "--steps", "4", "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert {"unused", "groups", "summary", "ddp", "notes", "losses"} <= set(payload)  # the keys scripts read
    rows = {p["name"]: p for p in payload["parameters"]}
    assert rows["vision.0.weight"] == {"name": "vision.0.weight", "usage": "sometimes", "steps": [1, 3]}
    assert rows["head.weight"] == {"name": "head.weight", "usage": "always", "steps": [0, 1, 2, 3]}
    assert rows["unused_head.weight"]["usage"] == "never" and rows["unused_head.weight"]["steps"] == []
    assert payload["summary"]["usage"] == {"always": 3, "never": 2, "sometimes": 4, "rank_dependent": 0}
    text = _cli(f"{PT_MODELS}:text_image_batches", "--steps", "4").output
    assert "  vision: 4 parameters, 176 elements" in text and "    used on steps 1, 3\n" in text


def test_cli_rank_kwargs_alone_are_rank_0_of_1(torch):
    """Without --ddp the factory is called with rank=0, world_size=1: all batches, alternating."""
    result = _cli(f"{PT_MODELS}:text_image_ranked", "--steps", "4", "--json")
    assert result.exit_code == 1, result.output
    rows = {p["name"]: p for p in json.loads(result.output)["parameters"]}
    assert rows["vision.2.weight"]["usage"] == "sometimes" and rows["vision.2.weight"]["steps"] == [1, 3]
    assert "ranks" not in rows["vision.2.weight"]


def test_cli_factory_with_kwargs_only_gets_rank_and_world_size(tmp_path, torch):
    (tmp_path / "f.py").write_text(
        "import torch\n\n"
        "def build(**kw):\n"
        "    assert kw == {'rank': 0, 'world_size': 1}, kw\n"
        "    return torch.nn.Linear(2, 2), torch.ones(1, 2)\n"
    )
    result = _cli(f"{tmp_path / 'f.py'}:build", "--json")
    assert result.exit_code == 0, result.output
    assert {p["usage"] for p in json.loads(result.output)["parameters"]} == {"always"}


def test_watch_over_a_real_loop_gives_the_same_usage_as_the_factory_form(pt_models, torch):
    model, batches = pt_models.text_image_batches()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bridge.watch(model, quiet=True) as w:
        for batch in batches:  # all 8
            model(**batch).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    usage = _usage(w.report)
    assert {n: usage[n] for n in VISION} == dict.fromkeys(VISION, ("sometimes", (1, 3, 5, 7)))
    assert usage["head.weight"] == ("always", tuple(range(8))) and usage["unused_head.bias"] == ("never", ())
    oracle = bridge.find_unused(*pt_models.text_image_batches(), steps=8)
    assert [(i.name, i.kind, i.steps_used) for i in w.report.items] == [
        (i.name, i.kind, i.steps_used) for i in oracle.items
    ]


@pytest.mark.slow
def test_ddp_with_a_rank_aware_factory_rank_dependent_and_ddp_agrees(torch):
    """Two gloo processes, each building its rank's data: DDP's own error names the parameters bridge calls
    rank_dependent (rank 0, text only, never reaches the vision tower)."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    result = _cli(f"{PT_MODELS}:text_image_ranked", "--ddp", "--steps", "3", "--json")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    rows = {p["name"]: p for p in payload["parameters"]}
    assert rows["vision.0.weight"]["usage"] == "rank_dependent" and rows["vision.0.weight"]["ranks"] == [1]
    assert payload["summary"]["ranks"] == 2
    ddp = payload["ddp"]
    if ddp["error_kind"] in ("setup", "timeout"):
        pytest.skip(f"cannot run 2 gloo processes here: {ddp['message']}")
    assert ddp["raised"] is True and "for rank 0" in ddp["message"]
    assert set(VISION) <= set(ddp["unused_names"])
