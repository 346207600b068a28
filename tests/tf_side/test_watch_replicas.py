"""`bridge.keras.UnusedVariables` under `tf.distribute.MirroredStrategy` (2 logical CPU devices, each run in its
own process: tests/fixtures_unused/mirrored_fit.py): every variable's usage per replica, as the PyTorch side gives
it per rank, against what MirroredStrategy itself does with the same model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIRRORED_FIT = REPO / "tests" / "fixtures_unused" / "mirrored_fit.py"


def _fit(scenario: str, tmp_path: Path) -> tuple[dict, str]:
    out = tmp_path / f"{scenario}.json"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env["KERAS_BACKEND"] = "tensorflow"
    done = subprocess.run(
        [sys.executable, str(MIRRORED_FIT), scenario, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(out.read_text()), done.stderr


def _usage(report: dict) -> dict[str, tuple[str, dict[str, list[int]]]]:
    return {p["name"]: (p["usage"], p["steps_by_rank"]) for p in report["parameters"]}


@pytest.mark.slow
def test_a_replica_that_skips_a_tower_is_named_before_mirrored_strategy_raises(tf, tmp_path):
    result, printed = _fit("skip", tmp_path)
    # MirroredStrategy's own failure, while the step is traced: replica 1 hands fewer gradients to the all-reduce
    assert not result["ran"]
    assert result["raised"].startswith("AssertionError: Values to regroup had different lengths")
    report = result["report"]
    assert report["summary"]["ranks"] == 2 and report["summary"]["steps"] == 2
    assert _usage(report) == {
        "a/kernel": ("always", {"0": [0], "1": [0]}),
        "a/bias": ("always", {"0": [0], "1": [0]}),
        "b/kernel": ("rank_dependent", {"0": [0], "1": []}),
        "b/bias": ("rank_dependent", {"0": [0], "1": []}),
    }
    assert [(g["kind"], g["scope"]) for g in report["groups"]] == [("rank_dependent", "b")]
    assert any("Values to regroup had different lengths" in n for n in report["notes"])
    # the callback printed its report before fit raised past it
    assert "on 2 replicas together" in printed
    assert "used on replica 0: steps 0; replica 1: no step" in printed


@pytest.mark.slow
def test_the_zero_weighted_term_the_report_advises_makes_the_replicas_agree_and_fit_run(tf, tmp_path):
    result, _ = _fit("skip_touched", tmp_path)
    assert result["ran"], result["raised"]
    report = result["report"]
    assert report["summary"]["usage"] == {"always": 4, "never": 0, "sometimes": 0, "rank_dependent": 0}
    assert report["unused"] == []


@pytest.mark.slow
def test_a_data_dependent_branch_gives_a_zero_gradient_so_replicas_never_differ(tf, tmp_path):
    # tf.cond's branch not taken still gets a gradient (zeros): graph mode cannot show data-dependent usage
    result, _ = _fit("data_dependent", tmp_path)
    assert result["ran"], result["raised"]
    report = result["report"]
    assert {name: usage for name, (usage, _) in _usage(report).items()} == dict.fromkeys(
        ["a/kernel", "a/bias", "b/kernel", "b/bias"], "always"
    )
    assert report["summary"]["ranks"] == 2
