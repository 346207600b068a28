"""The matcher on in-memory checkpoints: no framework needed."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.core.match import build_plan
from bridge.core.model import Checkpoint, array_record
from bridge.core.plan import TargetSpec, TargetTensor
from bridge.rules import Copy, Rule, RulePack

PACK = RulePack("test", "one rule, one second copy", rules=(Rule("w", "weight"),),
                copies=(Copy("w_again", "a second copy of `w`", owner="w"),))  # fmt: skip
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
