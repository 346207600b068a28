"""One rank of a 2-process gloo run of a user's loop on an FSDP-wrapped model under `bridge.watch`
(tests/pt_side/test_watch_wrappers.py).

Run as ``python watch_fsdp.py RANK WORLD PORT OUT.json WRAP``; WRAP: ``fsdp1`` (FullyShardedDataParallel,
use_orig_params=True, one unit), ``fsdp1_per_linear`` (a unit per nn.Linear), ``fsdp2`` (fully_shard on the
model), ``fsdp2_per_linear`` (fully_shard on each nn.Linear, then the model).  Writes the outcome (``runs`` or
``raised`` with the step and message), the rank's report, and what became of ``unused``'s gradient.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import torch  # noqa: TID253 - a user training script
import torch.distributed as dist  # noqa: TID253
from torch import nn  # noqa: TID253

import bridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pt_models  # noqa: E402


def wrapped(model: nn.Module, wrap: str) -> nn.Module:
    if wrap.startswith("fsdp1"):
        from torch.distributed.fsdp import FullyShardedDataParallel
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        policy = ModuleWrapPolicy({nn.Linear}) if wrap.endswith("per_linear") else None
        return FullyShardedDataParallel(
            model, use_orig_params=True, device_id=torch.device("cpu"), auto_wrap_policy=policy
        )
    from torch.distributed.fsdp import fully_shard

    if wrap.endswith("per_linear"):
        for layer in (model.a, model.b, model.unused):
            fully_shard(layer)
    fully_shard(model)
    return model


def main(rank: int, world: int, port: int, out: Path, wrap: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timedelta(seconds=10)
    )
    model, batches = pt_models.rank_skip(rank=rank, world_size=world)
    fsdp = wrapped(model, wrap)
    opt = torch.optim.SGD(fsdp.parameters(), lr=0.1)
    result: dict[str, object] = {"outcome": "runs", "step": None, "message": None, "unused_grad": []}
    step = 0
    try:
        with bridge.watch(fsdp, quiet=True) as w:
            for step, batch in enumerate(batches):  # noqa: B007 - read after a failure
                fsdp(**batch).backward()
                grads = [p.grad for n, p in fsdp.named_parameters() if "unused" in n]
                result["unused_grad"].append(  # type: ignore[union-attr]
                    "none"
                    if all(g is None for g in grads)
                    else "zero"
                    if all(float(g.abs().sum()) == 0 for g in grads if g is not None)
                    else "nonzero"
                )
                opt.step()
                opt.zero_grad()
    except Exception as e:  # the real FSDP's failure: what the test compares with the prediction
        result.update(outcome="raised", step=step, message=str(e)[:300])
    assert w.report is not None
    result["report"] = w.report.to_json()
    out.write_text(json.dumps(result))
    if result["outcome"] == "runs":
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
