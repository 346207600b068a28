"""Shared pieces of the benchmarks: the BERT-base checkpoint they all measure, and a timer."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples"))

from make_tiny_bert import bert_shapes, write_tf1_checkpoint  # noqa: E402

BERT_BASE = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


def bert_base_checkpoint(work: Path) -> Path:
    """A ~1.3 GB google-research BERT-base checkpoint with Adam slots, written once by TF's Saver."""
    prefix = work / "bert-base" / "bert_model.ckpt"
    if not prefix.with_name("bert_model.ckpt.index").exists():
        prefix.parent.mkdir(parents=True, exist_ok=True)
        print(f"writing {prefix} with TensorFlow's Saver (once; reused by later runs) ...", flush=True)
        # In a child process so that the measuring process never imports TensorFlow.
        code = (
            "import sys, json; sys.path.insert(0, sys.argv[1]);"
            "from make_tiny_bert import bert_shapes, write_tf1_checkpoint;"
            "from pathlib import Path;"
            "write_tf1_checkpoint(Path(sys.argv[2]), bert_shapes(json.loads(sys.argv[3])), adam=True, step=1000)"
        )
        import json

        subprocess.run(
            [sys.executable, "-c", code, str(REPO / "examples"), str(prefix), json.dumps(BERT_BASE)],
            check=True,
            stderr=subprocess.DEVNULL,
        )
    return prefix


def checkpoint_bytes(prefix: Path) -> int:
    return sum(p.stat().st_size for p in prefix.parent.glob(prefix.name + ".*"))


def compile_package() -> None:
    """Write the package's bytecode once, as a wheel install does: with PYTHONDONTWRITEBYTECODE set (some shells
    and CI images set it) every timed process would otherwise compile the sources again."""
    import compileall

    for package in ("bridge", "tf_side", "pt_side"):
        compileall.compile_dir(str(REPO / package), quiet=1)


def time_command(argv: list[str], repeats: int, ok_codes: tuple[int, ...] = (0,)) -> float:
    """Median wall time of a whole process (interpreter start included); an exit code outside ``ok_codes`` raises."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - start)
        if done.returncode not in ok_codes:
            raise subprocess.CalledProcessError(done.returncode, argv, stderr=done.stderr)
    return statistics.median(times)


__all__ = ["BERT_BASE", "bert_base_checkpoint", "bert_shapes", "checkpoint_bytes", "compile_package",
           "time_command", "write_tf1_checkpoint"]  # fmt: skip
