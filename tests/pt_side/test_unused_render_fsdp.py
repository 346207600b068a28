"""The text `bridge.watch` prints under FSDP (bridge/unused/render.py): the FSDP block in place of DDP's
configurations, from gradients recorded per rank and step on a real model (the outcomes themselves are proven
under real FSDP in tests/pt_side/test_watch_wrappers.py)."""

from __future__ import annotations

from bridge.unused.render import render_unused


def _report(torch, wrapper: str, unit_of: dict[str, str]):
    from pt_side.unused.trace import build_report

    model = torch.nn.Sequential()
    model.add_module("a", torch.nn.Linear(3, 3))
    model.add_module("b", torch.nn.Linear(3, 2))
    names, params = zip(*model.named_parameters(), strict=True)
    every, no_b = set(range(4)), {0, 1}  # parameter indices a gradient reached
    passes = {0: [every, every], 1: [every, no_b]}  # rank 1 skips b at step 1
    return build_report(list(names), list(params), every, passes, [], ranks=2, fsdp=(wrapper, unit_of))


FSDP_HEAD = "pytorch: 4 parameters (20 elements), 4 steps on 2 ranks together (steps counted from 0 on each)"


def test_a_unit_one_rank_leaves_without_gradients_is_printed_as_a_hang(torch):
    units = {"a.weight": "a", "a.bias": "a", "b.weight": "b", "b.bias": "b"}
    text = render_unused(_report(torch, "FullyShardedDataParallel", units))
    assert text.splitlines() == [
        FSDP_HEAD,
        "",
        "rank_dependent (2 parameters): reach the loss on some ranks only at the same step",
        "  b: 2 parameters, 8 elements (bias, weight)",
        "    used on rank 0: steps 0-1; rank 1: steps 0",
        "    fix: model.b reaches the loss on some ranks only at the same step (each rank's data takes another "
        "branch): DistributedDataParallel(..., find_unused_parameters=False) raises or hangs there; use "
        "find_unused_parameters=True, or add a zero-weighted term that touches it every step "
        "(loss = loss + 0 * sum(p.sum() for p in model.b.parameters()))",
        "",
        "FSDP (FullyShardedDataParallel), predicted from the gradients recorded: hangs at step 1 on rank 1",
        "  parameters: b.weight, b.bias",
        "  advice: rank 1 leaves an FSDP unit without any gradient at step 1 while other ranks reach b.weight: the "
        "others wait in the unit's reduce-scatter; FSDP has no find_unused_parameters: touch that module's "
        "parameters with a zero-weighted term every step on every rank "
        "(loss = loss + 0.0 * sum(p.sum() for p in <module>.parameters()))",
        "",
        "verdict: 2 trainable parameters unused (never_read 0, no_gradient 0, sometimes 0, frozen 0, rank_dependent 2)",
    ]
    assert "DDP, predicted" not in text and "recommended:" not in text


def test_one_unit_runs_and_says_why(torch):
    text = render_unused(_report(torch, "FullyShardedDataParallel", {}))
    fsdp = text[text.index("FSDP (") :].split("\n\n")[0].splitlines()
    assert fsdp == [
        "FSDP (FullyShardedDataParallel), predicted from the gradients recorded: runs",
        "  advice: runs: FSDP has no find_unused_parameters and needs none here; a parameter without a gradient "
        "gets a zero gradient from its unit's flat gradient, so momentum and weight decay still move it: freeze "
        "(requires_grad_(False)) what should not train",
    ]


def test_one_fully_shard_group_is_printed_as_a_raise(torch):
    text = render_unused(_report(torch, "fully_shard", {}))
    fsdp = text[text.index("FSDP (") :].split("\n\n")[0].splitlines()
    assert fsdp[0] == "FSDP (fully_shard), predicted from the gradients recorded: raises at step 1 on rank 1"
    assert fsdp[1] == "  parameters: b.weight, b.bias"
    assert fsdp[2].startswith("  advice: the ranks reduce different parameters of one fully_shard group at step 1")
    assert "Received data size doesn't match expected size" in fsdp[2]
