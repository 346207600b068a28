"""`bridge inspect` against `tf.train.list_variables` on a BERT-base checkpoint with Adam slots, and `bridge check`.

All are timed as whole processes (interpreter start included), median of --repeats, in the same run; inspect is
printed as a ratio.  Goals (issue 24): inspect at least 15x faster than list_variables; check under 0.4 s (its
padding-row note reads the pad row and a 1 MiB sample of the word-embedding table, not all of it).

    python bench/bench_inspect.py [--work bench/_work] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import bert_base_checkpoint, checkpoint_bytes, compile_package, time_command  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "_work")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    prefix = bert_base_checkpoint(args.work)
    compile_package()
    size = checkpoint_bytes(prefix)
    bridge_s = time_command([sys.executable, "-m", "bridge", "inspect", str(prefix), "--json"], args.repeats)
    tf_code = "import sys, tensorflow as tf; tf.train.list_variables(sys.argv[1])"
    tf_s = time_command([sys.executable, "-c", tf_code, str(prefix)], args.repeats)
    table_s = time_command([sys.executable, "-m", "bridge", "inspect", str(prefix)], args.repeats)
    check_s = time_command([sys.executable, "-m", "bridge", "check", str(prefix), "--to", "pytorch"], args.repeats)

    print(f"checkpoint: {prefix} ({size / 2**30:.2f} GiB, BERT-base + Adam slots)")
    print(f"bridge inspect --json        {bridge_s:8.3f} s")
    print(f"bridge inspect (table)       {table_s:8.3f} s")
    print(f"tf.train.list_variables      {tf_s:8.3f} s   (process, TensorFlow import included)")
    print(f"ratio list_variables / bridge: {tf_s / bridge_s:.1f}x   (goal >= 15x)")
    print(f"bridge check --to pytorch    {check_s:8.3f} s   (goal <= 0.4 s: {'met' if check_s <= 0.4 else 'NOT met'})")


if __name__ == "__main__":
    main()
