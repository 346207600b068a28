"""The matcher on in-memory checkpoints: no framework needed."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.core.match import build_plan
from bridge.core.model import Checkpoint, array_record
from bridge.core.plan import TargetSpec, TargetTensor
from bridge.rules import Copy, Matching, Rule, RulePack

PACK = RulePack("test", "one rule, one second copy", Matching(rules=(Rule("w", "weight"),),
                copies=(Copy("w_again", "a second copy of `w`", owner="w"),)))  # fmt: skip
TARGET = TargetSpec("pytorch", "test", {"weight": TargetTensor("weight", (2, 3))})


@pytest.mark.parametrize("same", [True, False])
def test_a_second_copy_is_expected_only_when_its_bytes_equal_the_tensor_it_copies(same):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    again = w.copy() if same else w + np.float32(1)
    ckpt = Checkpoint(
        [array_record("w", w), array_record("w_again", again)], format="test", path="/tmp/x", framework="tensorflow"
    )
    plan = build_plan(ckpt, TARGET, PACK)
    (left,) = plan.unused
    assert [m.source for m in plan.matched] == ["w"] and left.name == "w_again"
    assert (left.expected, plan.ok) == (same, same)
    if same:
        assert left.reason == "expected: a second copy of `w` (byte-equal to the tensor it copies)"
    else:
        assert left.reason.startswith("a second copy of `w`, but its values differ from `w`")


TIED = RulePack(
    "tied",
    "an embedding and a head kernel",
    Matching(rules=(Rule("emb", "embed"), Rule("kernel", "head", "transpose"))),
)


@pytest.mark.parametrize("same", [True, False])
def test_a_tie_stored_in_two_layouts_is_written_once_when_the_values_agree(same):
    """A head kernel [in, out] beside the [out, in] embedding the target ties it to: one value after the transforms,
    written once; another value contradicts the tie (a gap)."""
    emb = np.arange(6, dtype=np.float32).reshape(3, 2)
    kernel = emb.T.copy() if same else emb.T + np.float32(1)
    ckpt = Checkpoint(
        [array_record("emb", emb), array_record("kernel", kernel)], format="test", path="/tmp/x", framework="tensorflow"
    )
    target = TargetSpec(
        "pytorch",
        "test",
        {"embed": TargetTensor("embed", (3, 2)), "head": TargetTensor("head", (3, 2), tied_to="embed")},
    )
    plan = build_plan(ckpt, target, TIED)
    (left,) = plan.unused
    assert [m.target for m in plan.matched] == ["embed"] and left.name == "kernel"
    assert (left.expected, plan.ok) == (same, same)
    assert [(t.name, t.tied_to) for t in plan.tied] == [("head", "embed")]
    assert ("the same values as `emb` (transpose), stored once" in left.reason) == same


def test_a_tie_source_only_its_copy_fills_is_tied_to_the_copy():
    """The target declares `head` the source and `embed` its copy; the checkpoint holds the embedding only."""
    ckpt = Checkpoint(
        [array_record("emb", np.ones((3, 2), np.float32))], format="test", path="/tmp/x", framework="tensorflow"
    )
    target = TargetSpec(
        "pytorch",
        "test",
        {"embed": TargetTensor("embed", (3, 2), tied_to="head"), "head": TargetTensor("head", (3, 2))},
    )
    plan = build_plan(ckpt, target, TIED)
    assert plan.ok and not plan.missing and [(t.name, t.tied_to) for t in plan.tied] == [("head", "embed")]
    assert plan.coverage()["target_filled"] == 1.0
