"""`bridge convert --to pytorch` of a T5-base-sized Mesh TensorFlow checkpoint (bf16, Adafactor slots, two data
shards), against a hand-written TensorFlow-reader script doing the same job (``tf.train.load_checkpoint``, skip the
slots, transpose, write safetensors): wall time and peak RSS of each, as whole processes.

    python bench/bench_t5.py [--work bench/_work] [--repeats 3] [--tf-python PATH] [--size base|small]

The checkpoint is written once (tests/families/t5/make_fixtures.py's layout, T5 v1.1-base sizes: d_model 768, 12 heads
of 64, d_ff 2048 gated, 12 + 12 blocks, vocab 32128) by TensorFlow's sharded Saver in a child process.  The TF script
runs with ``--tf-python`` (a Python with TensorFlow and safetensors), else bench_convert.py's transformers 4.x venv.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_convert import legacy_python, measure  # noqa: E402
from common import REPO  # noqa: E402

SIZES = {
    "base": dict(vocab=32128, d_model=768, d_kv=64, heads=12, d_ff=2048, enc=12, dec=12, buckets=32, gated=True,
                 tied=False),
    "small": dict(vocab=8192, d_model=256, d_kv=32, heads=8, d_ff=512, enc=4, dec=4, buckets=32, gated=True,
                  tied=False),
}  # fmt: skip

# The job by hand: what a user writes with TensorFlow alone (every value upcast to float32, as transformers 4.57 did).
TF_SCRIPT = r"""
import re, sys
import numpy as np
import tensorflow as tf
from safetensors.numpy import save_file
reader = tf.train.load_checkpoint(sys.argv[1])
out = {}
for name in reader.get_variable_to_shape_map():
    if "_slot_" in name or name == "global_step":
        continue
    value = reader.get_tensor(name).astype(np.float32)
    if name == "shared/embedding":
        out["shared.weight"] = value
        continue
    key = re.sub(r"block_0*(\d+)/layer_0*(\d+)", r"block.\1.layer.\2", name)
    key = key.replace("rms_norm/scale", "layer_norm/weight").replace("/kernel", "")
    key = re.sub(r"^(encoder|decoder)/layer_norm/weight$", r"\1/final_layer_norm/weight", key)
    key = "lm_head/weight" if key == "decoder/logits" else key
    key = key.replace("/", ".") + ("" if key.endswith("weight") else ".weight")
    out[key] = value if value.ndim == 1 else np.ascontiguousarray(value.T)
save_file(out, sys.argv[2])
"""


def t5_checkpoint(work: Path, size: str) -> Path:
    folder = work / f"t5-{size}"
    if not (folder / "model.ckpt-1000.index").exists():
        print(f"writing {folder} with TensorFlow's sharded Saver (once; reused by later runs) ...", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        code = (
            "import sys, json, importlib.util; from pathlib import Path;"
            "spec = importlib.util.spec_from_file_location('make_t5', sys.argv[1]);"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
            "m.MIN_DIM_TO_FACTOR = 128;"  # Adafactor's real threshold at real sizes
            "m.write_checkpoint(Path(sys.argv[2]), json.loads(sys.argv[3]), 0)"
        )
        import json

        make = REPO / "tests" / "families" / "t5" / "make_fixtures.py"
        subprocess.run([sys.executable, "-c", code, str(make), str(folder), json.dumps(SIZES[size])], check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "_work")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tf-python", type=Path, help="A Python with tensorflow and safetensors for the TF script.")
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    args = parser.parse_args()

    if importlib.util.find_spec("tensorflow") is None:
        sys.exit("writing the checkpoint needs TensorFlow in this Python (make test installs it)")
    folder = t5_checkpoint(args.work, args.size)
    out = args.work / f"t5-{args.size}-converted"
    bridge_s, bridge_rss = measure(
        [sys.executable, "-m", "bridge", "convert", str(folder), "--to", "pytorch", "-o", str(out), "--force", "-q"],
        args.repeats,
    )
    size = sum(p.stat().st_size for p in folder.glob("model.ckpt-1000.*"))
    written = (out / "model.safetensors").stat().st_size / 2**20
    what = f"T5 {args.size} bf16 + Adafactor slots"
    print(f"checkpoint: {folder} ({size / 2**30:.2f} GiB, {what}); wrote {written:.0f} MiB")
    print(f"bridge convert --to pytorch   {bridge_s:8.2f} s   peak RSS {bridge_rss / 2**20:7.0f} MiB (bf16, as stored)")
    f32_s, f32_rss = measure(
        [sys.executable, "-m", "bridge", "convert", str(folder), "--to", "pytorch", "-o", str(out), "--force", "-q",
         "--dtype", "float32"],
        args.repeats,
    )  # fmt: skip
    print(f"  ... with --dtype float32    {f32_s:8.2f} s   peak RSS {f32_rss / 2**20:7.0f} MiB (as the TF script)")
    python = args.tf_python or legacy_python(args.work)
    if python is not None:
        tf_out = args.work / "t5-tf-script.safetensors"
        script = [str(python), "-c", TF_SCRIPT, str(folder / "model.ckpt-1000"), str(tf_out)]
        tf_s, tf_rss = measure(script, args.repeats)
        print(f"hand-written TF reader script {tf_s:8.2f} s   peak RSS {tf_rss / 2**20:7.0f} MiB (float32 output)")
        print(f"ratio TF script / bridge --dtype float32: {tf_s / f32_s:.1f}x time, {tf_rss / f32_rss:.1f}x memory")
        tf_out.unlink(missing_ok=True)
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
