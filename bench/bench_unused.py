"""`bridge unused FACTORY --steps N` per recorded step against a plain training step of the same model.

Goal (issue 25): recording costs no more than 3 training steps per recorded step.  The factory (`build` below: a
4-layer Transformer encoder, a head every step uses and an auxiliary head odd steps use, so usage varies by step)
is run by the real CLI as a whole process at two step counts; the difference over the extra steps is the cost of
one recorded step, with interpreter start, imports and the report left out.  The training step (forward, loss,
backward, AdamW step, zero_grad) is timed in this process on the same model and batches, in the same run.

    python bench/bench_unused.py [--steps 4 20] [--repeats 3]    # minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, compile_package, time_command  # noqa: E402

VOCAB, WIDTH, LAYERS, BATCH, TOKENS = 8000, 256, 4, 8, 64
GOAL = 3.0


def build(rank: int = 0, world_size: int = 1) -> tuple[Any, Any, Any]:
    """The benchmarked factory: (model, 8 batches, loss_fn); the auxiliary head joins the loss on odd steps."""
    import torch  # noqa: TID253 - the user's training script

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, WIDTH)
            layer = torch.nn.TransformerEncoderLayer(WIDTH, 4, 4 * WIDTH, dropout=0.0, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = torch.nn.Linear(WIDTH, VOCAB)
            self.aux = torch.nn.Linear(WIDTH, 2)

        def forward(self, tokens: Any, use_aux: Any) -> Any:
            hidden = self.encoder(self.embed(tokens))
            logits = self.head(hidden)
            return (logits, self.aux(hidden[:, 0])) if bool(use_aux) else (logits,)

    def loss_fn(output: Any, batch: Any) -> Any:
        tokens = batch[0]
        loss = torch.nn.functional.cross_entropy(output[0].flatten(0, 1), tokens.flatten())
        return loss + output[1].square().mean() if len(output) > 1 else loss

    torch.manual_seed(rank)
    batches = [(torch.randint(0, VOCAB, (BATCH, TOKENS)), torch.tensor(i % 2 == 1)) for i in range(8)]
    return Encoder().train(), iter(batches), loss_fn  # an iterator: one batch per step (a list is one batch)


def training_step_seconds(steps: int) -> float:
    """Median of ``steps`` plain training steps (after 3 to warm up) on the factory's model and batches."""
    import torch  # noqa: TID253

    model, batch_iter, loss_fn = build()
    batches = list(batch_iter)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 3):
        batch = batches[i % len(batches)]
        start = time.perf_counter()
        loss = loss_fn(model(*batch), batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs=2, default=(4, 20), metavar=("FEW", "MANY"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    few, many = args.steps
    if not 1 <= few < many:
        parser.error("--steps FEW MANY needs 1 <= FEW < MANY")

    compile_package()
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")

    def unused(steps: int) -> float:
        argv = [sys.executable, "-m", "bridge", "unused", f"{Path(__file__).resolve()}:build", "--steps", str(steps)]
        return time_command([*argv, "--json"], args.repeats, ok_codes=(0, 1))

    few_s, many_s = unused(few), unused(many)
    train_s = training_step_seconds(many)
    per_step = (many_s - few_s) / (many - few)
    ratio = per_step / train_s
    print(f"model: {LAYERS}-layer Transformer encoder, width {WIDTH}, batch {BATCH}x{TOKENS} tokens (CPU)")
    print(f"bridge unused --steps {few:<3}      {few_s:8.3f} s   (process, median of {args.repeats})")
    print(f"bridge unused --steps {many:<3}      {many_s:8.3f} s")
    print(f"per recorded step             {per_step * 1e3:8.1f} ms")
    print(f"plain training step           {train_s * 1e3:8.1f} ms   (forward, backward, AdamW; median of {many})")
    print(f"ratio: {ratio:.2f} training steps per recorded step   (goal <= {GOAL:g})")


if __name__ == "__main__":
    main()
