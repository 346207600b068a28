"""One rank of a 2-process gloo run of a user's own training loop under `bridge.watch` (tests/pt_side/test_watch.py).

Run as ``python watch_ddp.py RANK WORLD PORT OUT.json``: writes the rank's ``w.report.to_json()``; what the watch
printed goes to this process's stderr.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import torch  # noqa: TID253 - a user training script
import torch.distributed as dist  # noqa: TID253

import bridge

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pt_models  # noqa: E402


def main(rank: int, world: int, port: int, out: Path) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timedelta(seconds=60)
    )
    model, _, loss_fn = pt_models.bert_pooler()
    # find_unused_parameters=True is what people set to get past DDP's error; the watch says which ones.
    ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own data
    with bridge.watch(ddp) as w:
        for step in range(4):
            batch = {"input_ids": torch.randint(0, 99, (2, 8), generator=g)}
            loss = loss_fn(ddp(**batch), batch) / 2
            loss.backward()
            if step % 2 == 1:  # gradient accumulation over 2 micro-batches
                opt.step()
                opt.zero_grad()
    assert w.report is not None
    out.write_text(json.dumps(w.report.to_json()))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
