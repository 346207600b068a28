"""`bridge convert --to pytorch` of a torch.distributed.checkpoint (DCP) directory written by torch from 2 ranks
(a BERT-shaped float32 model, every matrix sharded across the ranks), against a hand-written torch script doing the
same job (``torch.distributed.checkpoint`` load of the whole state dict + ``safetensors.torch.save_file``): wall
time, peak RSS and GB/s of each, as whole processes measured in the same run.

    python bench/bench_dcp.py [--work bench/_work] [--gb 2] [--repeats 1]

The checkpoint is written once per size by ``tests/pt_side/dcp_ranks.py save-bert`` (two gloo processes).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_convert import measure  # noqa: E402
from common import REPO  # noqa: E402

# The job by hand: what a user writes with torch alone (no process group: DCP loads in one process).
TORCH_SCRIPT = r"""
import sys
from safetensors.torch import save_file
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict_from_keys
state = _load_state_dict_from_keys(checkpoint_id=sys.argv[1])["model"]
save_file(state, sys.argv[2])
"""


def dcp_checkpoint(work: Path, gb: float) -> Path:
    folder = work / f"dcp-bert-{gb:g}gb"
    if not (folder / ".metadata").exists():
        print(f"writing {folder} with torch.distributed.checkpoint from 2 ranks (once) ...", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
        subprocess.run(
            [sys.executable, "-m", "tests.pt_side.dcp_ranks", "save-bert", str(folder), str(gb)],
            check=True,
            cwd=REPO,
            env=env,
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "_work")
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    folder = dcp_checkpoint(args.work, args.gb)
    size = sum(p.stat().st_size for p in folder.iterdir())
    out = args.work / "dcp-out"
    bridge_s, bridge_rss = measure(
        [sys.executable, "-m", "bridge", "convert", str(folder), "--to", "pytorch", "--target", "BertModel",
         "--strip-prefix", "model.", "-o", str(out), "--force", "-q"],
        args.repeats,
    )  # fmt: skip
    written = (out / "model.safetensors").stat().st_size
    script = args.work / "dcp_by_hand.py"
    script.write_text(TORCH_SCRIPT)
    by_hand = args.work / "dcp-by-hand.safetensors"
    torch_s, torch_rss = measure([sys.executable, str(script), str(folder), str(by_hand)], args.repeats)
    same = "same tensors" if _same(out / "model.safetensors", by_hand) else "DIFFERENT tensors"
    cores = os.cpu_count() or 1
    print(f"checkpoint: {folder} ({size / 2**30:.2f} GiB, 2 ranks' files); wrote {written / 2**30:.2f} GiB ({same})")
    for label, wall, rss in (("bridge convert --to pytorch", bridge_s, bridge_rss),
                             ("torch DCP load + save_file ", torch_s, torch_rss)):  # fmt: skip
        gbs = written / 2**30 / wall
        print(f"{label}  {wall:7.2f} s   peak RSS {rss / 2**20:7.0f} MiB   {gbs:5.2f} GiB/s ({gbs / cores:.2f}/core)")
    print(f"ratio torch script / bridge: {torch_s / bridge_s:.2f}x time, {torch_rss / bridge_rss:.1f}x memory")


def _same(a: Path, b: Path) -> bool:
    """Both files hold the same names with the same bytes (read by safetensors itself, one tensor at a time)."""
    from safetensors import safe_open

    with safe_open(a, "np") as fa, safe_open(b, "np") as fb:
        names = set(fa.keys())
        return names == set(fb.keys()) and all(fa.get_tensor(n).tobytes() == fb.get_tensor(n).tobytes() for n in names)


if __name__ == "__main__":
    main()
