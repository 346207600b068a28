"""`bridge.watch` on wrapped models: FSDP (both APIs, 2 real gloo ranks), torch.compile, a mixture of experts,
and torch.utils.checkpoint calls seen from inside the user's loop."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import bridge
from bridge.core.unused.predict import FSDP_SIZE_MISMATCH, predict_fsdp

REPO = Path(__file__).resolve().parents[2]
WATCH_FSDP = REPO / "tests" / "fixtures_unused" / "watch_fsdp.py"


def _run_fsdp(wrap: str, tmp_path: Path) -> tuple[list[dict | None], list[str]]:
    """Both ranks' results (None for a rank whose process died) and logs, for one wrapping."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    outs = [tmp_path / f"{wrap}{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WATCH_FSDP), str(r), "2", str(port), str(outs[r]), wrap],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=90)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"{wrap}: the ranks outlived their 10 s process-group timeout by 80 s")
    results = [json.loads(o.read_text()) if o.is_file() else None for o in outs]
    if all(r is None for r in results) and any("init_process_group" in log for log in logs):
        pytest.skip(f"cannot run 2 gloo processes here: {logs[0][-500:]}")
    return results, logs


def _real_outcome(results: list[dict | None], logs: list[str]) -> tuple[str, int | None]:
    if any(FSDP_SIZE_MISMATCH in log for log in logs):
        outcome = "raises"
    elif all(r is not None and r["outcome"] == "runs" for r in results):
        return "runs", None
    else:
        outcome = "hangs" if any(r is not None and "Timed out" in r["message"] for r in results) else "raises"
    return outcome, min(r["step"] for r in results if r is not None and r["step"] is not None)


@pytest.mark.slow
def test_fsdp_names_usage_by_rank_and_the_prediction_equal_real_fsdp(torch, tmp_path):
    """FullyShardedDataParallel(use_orig_params=True), one unit, runs: the watch reports the names as written and
    the usage per step and rank; from those, each other wrapping's outcome is predicted, then run for real
    (10 s gloo timeouts: ~60 s on 2 cores)."""
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    results, logs = _run_fsdp("fsdp1", tmp_path)
    assert all(r is not None and r["outcome"] == "runs" for r in results), logs
    reports = [r["report"] for r in results]  # type: ignore[index]
    for rep in reports:
        usage = {p["name"]: (p["usage"], p.get("steps_by_rank")) for p in rep["parameters"]}
        assert set(usage) == {f"{m}.{k}" for m in ("a", "b", "unused") for k in ("weight", "bias")}
        assert usage["a.weight"][0] == "always" and usage["unused.bias"][0] == "never"
        assert usage["b.weight"] == ("rank_dependent", {"0": [0, 1, 2], "1": [0, 2]})
        assert rep["predictions"] is None and rep["summary"]["ranks"] == 2 and rep["summary"]["steps"] == 6
        assert rep["fsdp"]["outcome"] == "runs" and "zero gradient" in rep["fsdp"]["advice"]
        assert {i["name"] for i in rep["unused"]} == {"b.weight", "b.bias", "unused.weight", "unused.bias"}
        assert next(i for i in rep["unused"] if i["name"] == "unused.weight")["shape"] == [4, 4]  # not the shard
    # What the advice says: FSDP's flat gradient gives the never-used parameter zeros (on the rank whose shard
    # holds it), not None.
    assert {"zero"} <= {g for r in results for g in r["unused_grad"]}  # type: ignore[index]

    names = [p["name"] for p in reports[0]["parameters"]]
    passes = {
        int(r): [{p["name"] for p in reports[0]["parameters"] if s in p["steps_by_rank"][r]} for s in range(3)]
        for r in ("0", "1")
    }
    per_linear = {n: n.split(".")[0] for n in names}
    layouts = {
        "fsdp1_per_linear": ("FullyShardedDataParallel", per_linear),
        "fsdp2": ("fully_shard", {n: "" for n in names}),
        "fsdp2_per_linear": ("fully_shard", per_linear),
    }
    for wrap, (wrapper, units) in layouts.items():
        predicted = predict_fsdp(passes, names, units, wrapper)
        real = _real_outcome(*_run_fsdp(wrap, tmp_path))
        assert real == (predicted.outcome, predicted.step), (wrap, real, predicted)
        assert predicted.parameters[0] == "b.weight" and predicted.rank == 1
    assert predict_fsdp(passes, names, {n: "" for n in names}, "FullyShardedDataParallel").outcome == "runs"


def _text_image_loop(torch, model, batches):
    for batch in batches:
        model(**batch).sum().backward()
        model.zero_grad()


def _usage(report):
    return [(p.name, p.usage, p.steps) for p in report.parameters]


def test_compiled_model_reports_as_eager(torch, pt_models):
    """Names without `_orig_mod.`, the same usage by step, the same items (never_read and no_gradient apart:
    reads inside the compiled forward are seen)."""
    batches = list(pt_models.text_image_batches()[1])[:4]
    eager_model = pt_models.text_image_batches()[0]
    with bridge.watch(eager_model, quiet=True) as eager:
        _text_image_loop(torch, eager_model, batches)
    compiled_model = _compiled(torch, pt_models.text_image_batches()[0])
    with bridge.watch(compiled_model, quiet=True) as compiled:
        _text_image_loop(torch, compiled_model, batches)
    assert _usage(compiled.report) == _usage(eager.report)
    assert compiled.report.to_json()["unused"] == eager.report.to_json()["unused"]
    assert {p.name for p in compiled.report.parameters if p.usage == "sometimes"} == {
        "vision.0.weight",
        "vision.0.bias",
        "vision.2.weight",
        "vision.2.bias",
    }

    # Discriminator steps only: the generator runs (its output detached), so it is read but gets no gradient.
    batch = next(pt_models.gan_alternating()[1])
    compiled_model = _compiled(torch, pt_models.gan_alternating()[0])
    with bridge.watch(compiled_model, quiet=True) as w:
        for _ in range(2):
            compiled_model(**batch).backward()
    oracle = bridge.find_unused(pt_models.gan_alternating()[0], batch, steps=2)
    assert w.report.to_json()["unused"] == oracle.to_json()["unused"]
    assert {(i.scope, i.kind) for i in w.report.items} == {("generator", "no_gradient")}


def _compiled(torch, model):
    return torch.compile(model)  # inductor, the default backend (a C++ compiler is part of the test setup)


def test_moe_expert_never_routed_and_sometimes_routed_by_step(torch, pt_models):
    model, batches = pt_models.moe_unrouted(rank=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with bridge.watch(model, quiet=True) as w:
        for ids in batches:  # step 1 routes no token to expert 3
            model(ids).backward()
            opt.step()
            opt.zero_grad()
        for _ in range(2):  # even ids only: experts 1 and 3 get no token
            model(torch.tensor([[0, 2, 4, 6]])).backward()
    usage = {p.name: (p.usage, p.steps) for p in w.report.parameters}
    assert usage["experts.3.weight"] == ("sometimes", (0, 2))
    assert usage["experts.1.bias"] == ("sometimes", (0, 1, 2))
    assert usage["experts.0.weight"] == ("always", (0, 1, 2, 3, 4))
    assert {i.scope for i in w.report.items} == {"experts.1", "experts.3"}

    model = pt_models.TokenMoE()
    with bridge.watch(model, quiet=True) as w:
        for _ in range(3):
            model(torch.tensor([[0, 2, 4, 6]])).backward()
    never = {p.name for p in w.report.parameters if p.usage == "never"}
    assert never == {f"experts.{e}.{k}" for e in (1, 3) for k in ("weight", "bias")}
    assert {i.kind for i in w.report.items} == {"never_read"}


def test_watch_sees_reentrant_checkpoints_and_predicts_as_bridge_unused(torch, pt_models):
    from pt_side.unused.trace import call_model, compute_loss

    model, batches = pt_models.checkpointed_aux_sometimes()
    batches = list(batches)
    with bridge.watch(model, quiet=True) as w:
        for batch in batches:
            compute_loss(call_model(model, batch), batch, None).backward()
    oracle = bridge.find_unused(*pt_models.checkpointed_aux_sometimes(), steps=4)
    assert w.report.checkpointing == oracle.checkpointing == "reentrant"
    assert w.report.to_json()["predictions"] == oracle.to_json()["predictions"]
    assert w.report.to_json()["recommended"] == oracle.to_json()["recommended"]
    assert w.report.recommended is not None and w.report.recommended.reentrant_checkpointing is False
