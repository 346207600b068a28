"""`bridge unused`: each DDP configuration's outcome predicted from the usage per step and rank, then run for real
(DistributedDataParallel on 2 gloo CPU processes, a hang being the timeout) and compared, step for step."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import cli
from bridge.core.unused.predict import MARKED_TWICE, MISSED, STATIC_MISSED, STATIC_NEWLY_USED, predict, recommend
from bridge.core.unused.report import module_expression

PT_MODELS = Path(__file__).resolve().parents[1] / "fixtures_unused" / "pt_models.py"
ALL = ("a", "b", "c")


def _outcomes(passes, checkpointing=None):
    return {p.config: (p.outcome, p.step, p.rank) for p in predict(passes, ALL, checkpointing)}


def test_a_parameter_missed_on_one_rank_raises_at_that_rank_s_next_step():
    full, miss = {"a", "b", "c"}, {"a", "b"}
    got = _outcomes({0: [full, full, full], 1: [full, miss, full]})
    assert got[(False, False, None)] == ("raises", 2, 1)
    assert got[(False, True, None)] == ("raises", 2, 1)  # static_graph: used at step 0, missed later
    assert got[(True, False, None)] == ("runs", None, None)
    assert got[(True, True, None)] == ("raises", 2, 1)


def test_static_graph_raises_at_the_step_that_first_uses_a_parameter_step_0_did_not():
    p = {q.config: q for q in predict({0: [{"a"}, {"a", "b", "c"}]}, ALL)}
    assert (p[(False, True, None)].outcome, p[(False, True, None)].step) == ("raises", 1)
    assert p[(False, True, None)].message == STATIC_NEWLY_USED and p[(False, True, None)].parameters == ("b", "c")
    assert (p[(False, False, None)].step, p[(False, False, None)].message) == (1, MISSED)


def test_static_graph_runs_when_the_same_parameters_miss_every_step():
    got = _outcomes({0: [{"a"}, {"a"}], 1: [{"a"}, {"a"}]})
    assert got[(False, True, None)] == ("runs", None, None) and got[(False, False, None)][0] == "raises"


def test_reentrant_checkpoints_with_find_unused_parameters_raise_at_step_0():
    p = {q.config: q for q in predict({0: [set(ALL)] * 2}, ALL, "reentrant")}
    assert (p[(True, False, True)].outcome, p[(True, False, True)].step, p[(True, False, True)].message) == (
        "raises",
        0,
        MARKED_TWICE,
    )
    assert p[(True, False, False)].outcome == p[(False, False, True)].outcome == "runs"
    assert p[(True, True, True)].outcome == "runs"  # static_graph supports reentrant checkpoints


def test_recommend_the_cheapest_that_runs_then_the_code_change():
    every = predict({0: [set(ALL)] * 2}, ALL)
    r = recommend(every, None)
    assert r is not None and (r.find_unused_parameters, r.static_graph, r.alternative) == (False, False, None)
    fixed = predict({0: [{"a"}, {"a"}]}, ALL)
    r = recommend(fixed, None, never=["tower"])
    assert r is not None and (r.find_unused_parameters, r.static_graph) == (False, True)
    assert r.alternative is not None and "model.tower.requires_grad_(False)" in r.alternative
    varying = predict({0: [{"a", "b", "c"}, {"a"}] * 2}, ALL, "reentrant")
    r = recommend(varying, "reentrant", varying=["blocks.1"])
    assert (r.find_unused_parameters, r.static_graph, r.reentrant_checkpointing) == (True, False, False)
    assert r.code_change is not None and "use_reentrant=False" in r.code_change
    assert r.alternative is not None and "model.get_submodule('blocks.1').parameters()" in r.alternative


def test_module_expression():
    assert module_expression("vision") == "model.vision" and module_expression("(root)") == "model"
    assert module_expression("experts.3") == "model.get_submodule('experts.3')"


def test_cli_json_predictions_and_recommended(torch):
    result = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:gan_alternating", "--steps", "4", "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    rows = {(p["find_unused_parameters"], p["static_graph"]): p for p in payload["predictions"]}
    assert set(rows) == {(False, False), (False, True), (True, False), (True, True)}
    assert {p["reentrant_checkpointing"] for p in payload["predictions"]} == {None}
    assert (rows[(False, False)]["outcome"], rows[(False, False)]["step"]) == ("raises", 1)
    assert rows[(False, False)]["parameters"][0] == "generator.0.weight"
    assert payload["recommended"]["find_unused_parameters"] is True
    assert "model.generator.parameters()" in payload["recommended"]["alternative"]
    assert payload["cost"] is None
    text = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:gan_alternating", "--steps", "4"]).output
    assert "find_unused_parameters=False, static_graph=True: raises at step 1 on rank 0" in text
    assert "recommended: find_unused_parameters=True, static_graph=False" in text


# Each scenario: (factory, steps recorded, the configurations run for real besides the recommended one).
SCENARIOS = {
    "multimodal_ranked": (4, [(False, False, None), (False, True, None)]),
    "gan_alternating": (4, [(False, False, None), (False, True, None)]),
    "moe_unrouted": (3, [(False, False, None), (True, True, None)]),
    "checkpointed": (3, [(True, False, True)]),
    "checkpointed_aux_sometimes": (4, [(False, False, True), (True, False, True), (False, True, False)]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_predictions_equal_real_ddp(name, torch, pt_models):
    """Each listed configuration under real DDP gives the predicted outcome at the predicted step (the message
    starting as predicted), and the recommended configuration runs.  ~10 s per configuration on 2 cores."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    from pt_side.unused.ddp import run_ddp_check
    from pt_side.unused.trace import find_unused_torch_ranks

    steps, configs = SCENARIOS[name]
    factory = getattr(pt_models, name)
    report = find_unused_torch_ranks(lambda r: factory(rank=r, world_size=2), 2, steps=steps)
    predicted = {p.config: p for p in report.predictions or ()}
    rec = report.recommended
    assert rec is not None
    for config in [*configs, (rec.find_unused_parameters, rec.static_graph, rec.reentrant_checkpointing)]:
        fu, sg, reentrant = config
        real = run_ddp_check(
            f"{PT_MODELS}:{name}",
            steps=steps,
            timeout=30,
            find_unused_parameters=fu,
            static_graph=sg,
            reentrant=reentrant,
        )
        if real["error_kind"] == "setup":
            pytest.skip(f"cannot run 2 gloo processes here: {real['message']}")
        p = predicted[config]
        assert (real["outcome"], real.get("step")) == (p.outcome, p.step), (config, real)
        if p.message:
            assert p.message in real["message"] and real["rank"] == p.rank, (config, real["message"])
    assert predicted[(rec.find_unused_parameters, rec.static_graph, rec.reentrant_checkpointing)].outcome == "runs"


def test_the_scenarios_predict_what_the_table_in_the_docs_says(torch, pt_models):
    """The decision table of docs/unused.md, row by row (the slow test above runs each for real)."""
    from pt_side.unused.trace import find_unused_torch_ranks

    expected = {
        "multimodal_ranked": ((False, False, None), 3, MISSED, "vision.0.weight", (True, False, None)),
        "gan_alternating": ((False, True, None), 1, STATIC_NEWLY_USED, "generator.0.weight", (True, False, None)),
        "moe_unrouted": ((True, True, None), 2, STATIC_MISSED, "experts.3.weight", (True, False, None)),
        "checkpointed": ((True, False, True), 0, MARKED_TWICE, None, (False, False, True)),
        "checkpointed_aux_sometimes": ((True, False, True), 0, MARKED_TWICE, None, (True, False, False)),
    }
    for name, (config, step, message, first, recommended) in expected.items():
        factory = getattr(pt_models, name)
        steps = SCENARIOS[name][0]
        report = find_unused_torch_ranks(lambda r, f=factory: f(rank=r, world_size=2), 2, steps=steps)
        p = {q.config: q for q in report.predictions or ()}[config]
        assert (p.outcome, p.step, p.message) == ("raises", step, message), name
        assert first is None or p.parameters[0] == first
        r = report.recommended
        assert r is not None and (r.find_unused_parameters, r.static_graph, r.reentrant_checkpointing) == recommended


@pytest.mark.slow
def test_cost_of_find_unused_parameters_is_measured(torch):
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    result = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:gan_alternating", "--steps", "4", "--cost", "--json"])
    cost = json.loads(result.output)["cost"]
    if cost["ratio"] is None:
        pytest.skip(f"cannot run 2 gloo processes here: {cost['message']}")
    # what the report carries, not how fast anything is (timings belong in bench/): both measured step times, and the
    # ratio the advice prints is theirs
    per = cost["seconds_per_step"]
    assert set(per) == {"true", "false"} and all(isinstance(v, float) and math.isfinite(v) for v in per.values())
    assert cost["ratio"] == per["true"] / per["false"]
    assert cost["touch_all"] is True  # the generator misses steps: the False run adds the zero-weighted term
    text = CliRunner().invoke(cli, ["unused", f"{PT_MODELS}:gan_alternating", "--steps", "4", "--cost"]).output
    assert "cost: a step with find_unused_parameters=True takes" in text
