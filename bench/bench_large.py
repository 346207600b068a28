"""A checkpoint bigger than one machine's patience: `bridge convert --to pytorch` of a synthetic >= 12 GB TF1
BERT-layout checkpoint (model weights + ``/adam_m`` + ``/adam_v`` per variable, a ``global_step``, in 4+ data
shards), against ``cp`` of the bytes it writes and a hand-written TensorFlow-reader + safetensors script doing the
same job; wall time and peak RSS of each as whole processes, in one run; bridge also at half the size (is its
memory flat?), and with ``--workers 1`` (do threads scale?).

    python bench/bench_large.py [--gb 12] [--repeats 3] [--work bench/_work] [--keep] [--no-tf] [--clean]

The checkpoints are written once per size (bench/_work/large-<GB>gb, reused when present; ``--clean`` removes them)
by TensorFlow's own ops in a child process: ``tf.raw_ops.SaveV2`` per shard, then ``MergeV2Checkpoints`` (what a
sharded ``Saver`` does), so the bundle is TensorFlow's, not bridge's.  The model is BERT-large-wide (hidden 1024,
intermediate 4096) with as many layers as the size asks for; the largest tensor is the 125 MB word-embedding table.
Outputs are removed after each measurement (``--keep`` keeps the last).  bridge's runs are interleaved (all
cores, one worker, half size, then again) and their medians printed, so that page-cache warmth and other jobs on
the machine weigh on each configuration alike; ``cp`` and the TensorFlow script run once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_convert import measure  # noqa: E402
from common import REPO  # noqa: E402

HIDDEN, INTERMEDIATE, VOCAB = 1024, 4096, 30522
SHARD_BYTES = 512 * 2**20  # per SaveV2 call: the writer holds one shard's values at a time

WRITER = r"""
import json, sys
import numpy as np
import tensorflow as tf
sys.path.insert(0, sys.argv[1])
from make_tiny_bert import bert_shapes
prefix, config, shard_bytes = sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
names = []
for name, shape in bert_shapes(config).items():
    names += [(name, shape), (name + "/adam_m", shape), (name + "/adam_v", shape)]
names.append(("global_step", ()))
shards, size = [[]], 0
for name, shape in names:
    nbytes = 4 * int(np.prod(shape))
    if shards[-1] and size + nbytes > shard_bytes:
        shards.append([]); size = 0
    shards[-1].append((name, shape)); size += nbytes
while len(shards) < 4:  # at least 4 data shards even for a small --gb
    big = max(range(len(shards)), key=lambda i: len(shards[i]))
    half = len(shards[big]) // 2
    shards[big:big + 1] = [shards[big][:half], shards[big][half:]]
rng = np.random.default_rng(0)
parts = []
for i, shard in enumerate(shards):
    part = tf.raw_ops.ShardedFilename(basename=prefix + "_temp/part", shard=i, num_shards=len(shards))
    values = [np.int64(1000) if n == "global_step" else rng.random(s, dtype=np.float32) for n, s in shard]
    tf.raw_ops.SaveV2(prefix=part, tensor_names=[n for n, _ in shard], shape_and_slices=[""] * len(shard),
                      tensors=values)
    parts.append(part)
    del values
tf.raw_ops.MergeV2Checkpoints(checkpoint_prefixes=tf.stack(parts), destination_prefix=prefix, delete_old_dirs=True)
print(len(shards))
"""

# The job by hand, as a user writes it with TensorFlow alone: every model variable read, renamed, kernels
# transposed, then written to one safetensors file (which takes the whole state dict at once).
TF_SCRIPT = r"""
import re, sys
import numpy as np
import tensorflow as tf
from safetensors.numpy import save_file
reader = tf.train.load_checkpoint(sys.argv[1])
out = {}
for name in sorted(reader.get_variable_to_shape_map()):
    if name.endswith(("/adam_m", "/adam_v")) or name == "global_step":
        continue
    value = reader.get_tensor(name)
    key = re.sub(r"layer_(\d+)", r"layer.\1", name).replace("/", ".")
    key = key.replace("gamma", "weight").replace("beta", "bias").replace("output_bias", "bias")
    if key.endswith("kernel"):
        key, value = key[: -len("kernel")] + "weight", np.ascontiguousarray(value.T)
    elif key.endswith(("_embeddings", "output_weights")):
        key += ".weight"
    out[key] = value
save_file(out, sys.argv[2])
"""


def layers_for(gb: float) -> int:
    """Encoder layers for a checkpoint of about ``gb`` GiB with Adam slots (three copies of every variable)."""
    per_layer = 4 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * INTERMEDIATE + 9 * HIDDEN + INTERMEDIATE)
    fixed = 4 * (VOCAB * HIDDEN + 514 * HIDDEN + HIDDEN * HIDDEN * 2 + VOCAB)
    return max(1, round((gb * 2**30 / 3 - fixed) / per_layer))


def large_checkpoint(work: Path, gb: float) -> tuple[Path, int]:
    """The prefix of the ``gb`` GiB checkpoint, written once; and its number of data shards."""
    folder = work / f"large-{gb:g}gb"
    prefix = folder / "model.ckpt-1000"
    config = {"hidden_size": HIDDEN, "intermediate_size": INTERMEDIATE, "num_attention_heads": 16,
              "num_hidden_layers": layers_for(gb), "max_position_embeddings": 512, "type_vocab_size": 2,
              "vocab_size": VOCAB}  # fmt: skip
    if not prefix.with_name(prefix.name + ".index").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print(f"writing {prefix} ({gb:g} GiB) with tf.raw_ops.SaveV2 + MergeV2Checkpoints (once) ...", flush=True)
        argv = [sys.executable, "-c", WRITER, str(REPO / "examples"), str(prefix), json.dumps(config)]
        subprocess.run([*argv, str(SHARD_BYTES)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (folder / "bert_config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    shards = len(list(folder.glob(prefix.name + ".data-*")))
    return prefix, shards


def _size(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _bridge(prefix: Path, out: Path, *workers: str) -> tuple[float, int, int]:
    argv = [sys.executable, "-m", "bridge", "convert", str(prefix), "--to", "pytorch", "-o", str(out), "--force", "-q"]
    wall, rss = measure([*argv, *workers], 1)
    written = _size(list(out.glob("*.safetensors")))
    return wall, rss, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=12.0, help="Checkpoint size in GiB (default 12).")
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved runs of each bridge configuration.")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "_work")
    parser.add_argument("--no-tf", action="store_true", help="Skip the TensorFlow-reader script.")
    parser.add_argument("--keep", action="store_true", help="Keep the last output.")
    parser.add_argument("--clean", action="store_true", help="Remove the cached checkpoints at the end.")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0))
    out = args.work / "large-out"
    rows: list[tuple[str, float, int, str]] = []

    half, _ = large_checkpoint(args.work, args.gb / 2)
    prefix, shards = large_checkpoint(args.work, args.gb)
    size = _size(list(prefix.parent.glob(prefix.name + ".*")))
    half_size = _size(list(half.parent.glob(half.name + ".*")))

    runs: dict[str, list[tuple[float, int, int]]] = {"all": [], "one": [], "half": []}
    for _ in range(args.repeats):
        runs["all"].append(_bridge(prefix, out))
        runs["one"].append(_bridge(prefix, out, "--workers", "1"))
        runs["half"].append(_bridge(half, out))
        shutil.rmtree(out, ignore_errors=True)
    runs["all"].append(_bridge(prefix, out))  # the output cp copies

    def median(key: str) -> tuple[float, int]:
        return statistics.median(r[0] for r in runs[key]), max(r[1] for r in runs[key])

    wall, rss = median("all")
    written = runs["all"][-1][2]
    walls = ", ".join(f"{r[0]:.1f}" for r in runs["all"])
    rows.append((f"bridge convert (--workers {cpus}, the default)", wall, rss, f"runs: {walls} s"))
    all_cores = wall
    copy = args.work / "large-copy.safetensors"
    cp_s, cp_rss = measure(["cp", *map(str, out.glob("*.safetensors")), str(copy)], 1, before=["rm", "-f", str(copy)])
    copy.unlink(missing_ok=True)
    rows.append((f"cp of the {written / 2**30:.2f} GiB written", cp_s, cp_rss, f"bridge/cp {all_cores / cp_s:.2f}x"))
    shutil.rmtree(out, ignore_errors=True)
    wall1, rss1 = median("one")
    walls1 = ", ".join(f"{r[0]:.1f}" for r in runs["one"])
    rows.append(("bridge convert --workers 1", wall1, rss1, f"{cpus} workers {wall1 / all_cores:.2f}x as fast; runs: "
                 f"{walls1} s"))  # fmt: skip
    wall_h, rss_h = median("half")
    rows.append((f"bridge convert, half size ({half_size / 2**30:.2f} GiB)", wall_h, rss_h,
                 f"peak RSS x{rss / max(rss_h, 1):.2f} when the checkpoint doubles"))  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    if not args.no_tf:
        tf_out = args.work / "large-tf.safetensors"
        tf_s, tf_rss = measure([sys.executable, "-c", TF_SCRIPT, str(prefix), str(tf_out)], 1)
        tf_out.unlink(missing_ok=True)
        rows.append(("TensorFlow reader + safetensors script", tf_s, tf_rss, f"TF/bridge {tf_s / all_cores:.2f}x time, "
                     f"{tf_rss / rss:.1f}x memory"))  # fmt: skip
    if args.keep:
        _bridge(prefix, out)

    print(f"\ncheckpoint: {prefix} ({size / 2**30:.2f} GiB in {shards} data shards, Adam slots; {cpus} CPUs)")
    print(f"{'':44} {'wall s':>8} {'peak RSS MiB':>13}")
    for label, seconds, peak, note in rows:
        print(f"{label:44} {seconds:8.2f} {peak / 2**20:13.0f}   {note}")
    read = written  # the model variables read (float32, the same bytes as written); slots are skipped unread
    for label, seconds, used in (("all cores", all_cores, cpus), ("one worker", wall1, 1)):
        rate = (read + written) / 2**30 / seconds
        print(f"{label}: {rate:.2f} GiB/s read+written, {rate / used:.2f} GiB/s per core (of {used})")
    print(f"goals: bridge/cp <= 3x: {all_cores / cp_s:.2f}x; peak RSS < 1024 MiB: {rss / 2**20:.0f} MiB; "
          f"flat when doubled: {rss_h / 2**20:.0f} -> {rss / 2**20:.0f} MiB")  # fmt: skip
    if args.clean:
        for p in (prefix.parent, half.parent):
            shutil.rmtree(p, ignore_errors=True)


if __name__ == "__main__":
    main()
