"""`bridge inspect` against `tf.train.list_variables` on a BERT-base checkpoint with Adam slots.

Both are timed as whole processes (interpreter start included), in the same run, and
printed as a ratio.  Goals (issue 3): at least 10x faster, and under 0.5 s.

    python bench/bench_inspect.py [--work bench/_work] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bert_base_checkpoint, checkpoint_bytes, time_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "_work")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    prefix = bert_base_checkpoint(args.work)
    size = checkpoint_bytes(prefix)
    bridge_s = time_command([sys.executable, "-m", "bridge", "inspect", str(prefix), "--json"], args.repeats)
    tf_code = "import sys, tensorflow as tf; tf.train.list_variables(sys.argv[1])"
    tf_s = time_command([sys.executable, "-c", tf_code, str(prefix)], max(1, args.repeats // 2))
    table_s = time_command([sys.executable, "-m", "bridge", "inspect", str(prefix)], args.repeats)

    print(f"checkpoint: {prefix} ({size / 2**30:.2f} GiB, BERT-base + Adam slots)")
    print(f"bridge inspect --json        {bridge_s:8.3f} s")
    print(f"bridge inspect (table)       {table_s:8.3f} s")
    print(f"tf.train.list_variables      {tf_s:8.3f} s   (process, TensorFlow import included)")
    print(f"ratio list_variables / bridge: {tf_s / bridge_s:.1f}x   (goal >= 10x)")
    print(f"bridge under 0.5 s: {'yes' if bridge_s < 0.5 else 'NO'}")


if __name__ == "__main__":
    main()
