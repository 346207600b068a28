"""`bridge.watch(model)` around real training loops: the same answer as `bridge.find_unused` (the factory form)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import bridge
from bridge.unused.render import render_unused

REPO = Path(__file__).resolve().parents[2]
WATCH_DDP = REPO / "tests" / "fixtures_unused" / "watch_ddp.py"


def _train(torch, model, loss_fn, batches, *, accumulate=2):
    """A plain user loop: forward, loss, backward per micro-batch, an optimizer step every `accumulate`."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    for step, batch in enumerate(batches):
        loss = loss_fn(model(**batch), batch) / accumulate
        loss.backward()
        if (step + 1) % accumulate == 0:
            opt.step()
            opt.zero_grad()
        _ = sum(float(p.detach().norm()) for p in model.parameters())  # logging outside forward is not a read


def _batches(torch, n):
    g = torch.Generator().manual_seed(7)
    return [{"input_ids": torch.randint(0, 99, (2, 8), generator=g)} for _ in range(n)]


def _answer(report):
    return [(i.name, i.scope, i.kind, i.hint, i.numel) for i in report.items]


def test_bert_loop_without_the_pooler_in_the_loss_equals_find_unused(pt_models, torch, capsys):
    pytest.importorskip("transformers")
    model, _, loss_fn = pt_models.bert_pooler()
    with bridge.watch(model) as w:
        _train(torch, model, loss_fn, _batches(torch, 4))
    oracle = bridge.find_unused(*pt_models.bert_pooler())
    assert _answer(w.report) == _answer(oracle)
    assert {i.name for i in w.report.items} == {"pooler.dense.weight", "pooler.dense.bias"}
    assert w.report.steps == 4  # backward passes, one per micro-batch
    assert w.report.exit_code == 1
    printed = capsys.readouterr().err
    assert printed.strip() == render_unused(w.report).strip()
    assert "add_pooling_layer=False" in printed


def test_bert_loop_with_the_pooler_in_the_loss_is_clean_like_find_unused(pt_models, torch, capsys):
    pytest.importorskip("transformers")
    model, _, loss_fn = pt_models.bert_pooled()
    with bridge.watch(model, quiet=True) as w:
        _train(torch, model, loss_fn, _batches(torch, 4))
    assert bridge.find_unused(*pt_models.bert_pooled()).items == []
    assert w.report.items == [] and w.report.ok and w.report.steps == 4
    assert capsys.readouterr().err == ""  # quiet


def test_never_read_and_frozen_as_find_unused_says(pt_models, torch):
    for factory in (pt_models.relative_position, pt_models.frozen_encoder, pt_models.encoder_discarded):
        made = factory()
        model, batch = made[0], made[1]
        loss_fn = made[2] if len(made) > 2 else None
        from pt_side.unused.trace import call_model, compute_loss

        with bridge.watch(model, quiet=True) as w:
            for _ in range(2):
                compute_loss(call_model(model, batch), batch, loss_fn).backward()
                model.zero_grad()
        oracle = bridge.find_unused(*factory())
        assert _answer(w.report) == _answer(oracle), factory.__name__
        assert oracle.items, factory.__name__


def test_hooks_are_removed_and_no_backward_is_noted(pt_models, torch):
    model, batch = pt_models.relative_position()
    with bridge.watch(model, quiet=True) as w:
        with torch.no_grad():
            model(batch)
    assert w.report.steps == 0 and any("no backward pass" in n for n in w.report.notes)
    assert {i.kind for i in w.report.items} == {"never_read", "no_gradient"}
    assert not model._forward_pre_hooks and not model._forward_hooks
    assert all(not getattr(p, "_post_accumulate_grad_hooks", None) for p in model.parameters())


@pytest.mark.slow
def test_ddp_two_gloo_ranks_union_shown_once_equals_find_unused(pt_models, torch, tmp_path):
    """Two gloo processes (~20 s) each train their own data under `bridge.watch(ddp_model)`."""
    pytest.importorskip("transformers")
    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": os.environ.get("GLOO_SOCKET_IFNAME", "lo")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WATCH_DDP), str(r), "2", str(port), str(outs[r])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=120)[1])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.skip("the 2 gloo processes did not finish in 120 s")
    if any(not o.is_file() for o in outs):
        if any("init_process_group" in log or "Gloo" in log for log in logs):
            pytest.skip(f"cannot run 2 gloo processes here: {logs[0][-500:]}")
        raise AssertionError(logs)
    reports = [json.loads(o.read_text()) for o in outs]
    oracle = bridge.find_unused(*pt_models.bert_pooler()).to_json()
    for rep in reports:
        assert rep["unused"] == oracle["unused"]
        assert rep["summary"]["steps"] == 8  # 4 backward passes on each of 2 ranks
        assert any("union of 2 DDP ranks" in n for n in rep["notes"])
    assert "verdict: 2 trainable parameters unused" in logs[0]
    assert "verdict:" not in logs[1]  # shown once, on rank 0
