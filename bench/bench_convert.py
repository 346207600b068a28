"""`bridge convert --to pytorch` on a BERT-base checkpoint with Adam slots, against the path users had
before (transformers 4.x ``load_tf_weights_in_bert`` + ``torch.save``) and against ``cp`` of the bytes
written (the physical floor).  All measured as whole processes in the same run: wall time and peak RSS.

Goals (issues 5, 24): >= 15x faster than the 4.x path, within 2x of cp, peak RSS under 400 MB; medians of --repeats.
Then the same rows for a transformers tf_model.h5 of the largest fixture family (T5 at t5-base's sizes, random
weights, written once by the 4.x venv), against 4.57's own ``load_tf2_checkpoint_in_pytorch_model`` (issue 12).

    python bench/bench_convert.py [--work bench/_work] [--repeats 5] [--no-legacy]

The 4.x path runs in its own venv (bench/_work/venv-tf4: transformers==4.57.6, tensorflow-cpu==2.21.0,
tf-keras==2.21.0, torch==2.13.0), built on first use; if it cannot be built, that row is skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BERT_BASE, bert_base_checkpoint, compile_package  # noqa: E402

LEGACY_PACKAGES = ["transformers==4.57.6", "tensorflow-cpu==2.21.0", "tf-keras==2.21.0", "torch==2.13.0"]
LEGACY_SCRIPT = """
import sys, torch
from transformers import BertConfig, BertForPreTraining, load_tf_weights_in_bert
config = BertConfig.from_json_file(sys.argv[2])
model = BertForPreTraining(config)
load_tf_weights_in_bert(model, config, sys.argv[1])
torch.save(model.state_dict(), sys.argv[3])
"""
# A base-size transformers TF model of the largest fixture family (T5: t5-base's sizes, random weights), written
# once by the 4.x venv with TFT5ForConditionalGeneration.save_pretrained (tf_model.h5 + config.json).
T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12)
HF_TF_WRITE = """
import json, sys
from transformers import T5Config, TFT5ForConditionalGeneration
model = TFT5ForConditionalGeneration.from_config(T5Config(**json.loads(sys.argv[2])))
model(model.dummy_inputs)
model.save_pretrained(sys.argv[1])
"""
# transformers 4.x's own TF -> PyTorch road for the same files (as tests/families/hf_tf/make_fixtures.py runs it;
# 4.57's from_pretrained(from_tf=True) leaves meta tensors that its save_pretrained cannot write).
HF_TF_LEGACY = """
import sys
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_tf_pytorch_utils import load_tf2_checkpoint_in_pytorch_model
model = T5ForConditionalGeneration(T5Config.from_pretrained(sys.argv[1]))
load_tf2_checkpoint_in_pytorch_model(model, sys.argv[1] + "/tf_model.h5").save_pretrained(sys.argv[2])
"""
LEGACY_ENV = {"TF_USE_LEGACY_KERAS": "1", "CUDA_VISIBLE_DEVICES": ""}
# Runs a command and reports its wall time and peak RSS (the child's ru_maxrss, in KiB on Linux).
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def fresh(path: Path) -> list[str]:
    """Run before each timed run: the last run's output removed and every dirty page written back, so that no
    run pays for the writeback or the unlink of the one before (each side, bridge, cp and the 4.x path alike)."""
    return ["sh", "-c", f"rm -rf '{path}' && sync"]


def measure(
    argv: list[str], repeats: int, before: list[str] | None = None, env: dict[str, str] | None = None
) -> tuple[float, int]:
    walls, rss = [], 0
    for _ in range(repeats):
        if before:
            subprocess.run(before, check=True)
        out = subprocess.run(
            [sys.executable, "-c", MEASURE, *argv], check=True, capture_output=True, text=True, env=env
        )
        result = json.loads(out.stdout)
        walls.append(result["wall"])
        rss = max(rss, result["rss"])
    return statistics.median(walls), rss


def legacy_python(work: Path) -> Path | None:
    venv = work / "venv-tf4"
    python = venv / "bin" / "python"
    if (venv / ".ready").exists():
        return python
    print(f"building {venv} for the transformers 4.x path (once) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *LEGACY_PACKAGES], check=True)
    except subprocess.CalledProcessError as e:
        print(f"skipping the transformers 4.x path: its venv could not be built ({e})")
        return None
    (venv / ".ready").touch()
    return python


def hf_tf_rows(work: Path, python: Path, repeats: int) -> None:
    """bridge convert of a t5-base-sized tf_model.h5 beside the BERT rows: wall time, peak RSS, cp of the bytes
    written and 4.57's own TF -> PyTorch road, measured in the same run."""
    import os

    env = {**os.environ, **LEGACY_ENV}
    source = work / "t5-base-tf"
    if not (source / "tf_model.h5").exists():
        print(f"writing {source} with transformers 4.x TFT5ForConditionalGeneration (once) ...", flush=True)
        code = [str(python), "-c", HF_TF_WRITE, str(source), json.dumps(T5_BASE)]
        subprocess.run(code, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = work / "t5-converted"
    bridge = [sys.executable, "-m", "bridge", "convert", str(source), "--to", "pytorch", "-o", str(out)]
    bridge_s, bridge_rss = measure([*bridge, "-q"], repeats, before=fresh(out))
    copy = work / "t5-copy.safetensors"
    cp_s, _ = measure(["cp", str(out / "model.safetensors"), str(copy)], repeats, before=fresh(copy))
    copy.unlink(missing_ok=True)
    size = (source / "tf_model.h5").stat().st_size / 2**20
    print(f"tf_model.h5: {source} ({size:.0f} MiB, T5 at t5-base's sizes, transformers 4.57 TF)")
    print(f"bridge convert --to pytorch   {bridge_s:8.2f} s   peak RSS {bridge_rss / 2**20:7.0f} MiB")
    print(f"cp of the bytes written       {cp_s:8.2f} s   ratio bridge/cp {bridge_s / cp_s:.2f}x")
    legacy_out = work / "t5-legacy"
    legacy_s, legacy_rss = measure(
        [str(python), "-c", HF_TF_LEGACY, str(source), str(legacy_out)], 1, env=env, before=fresh(legacy_out)
    )
    shutil.rmtree(legacy_out, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    print(f"transformers 4.57.6 TF -> PT  {legacy_s:8.2f} s   peak RSS {legacy_rss / 2**20:7.0f} MiB")
    print(f"ratio 4.x path / bridge: {legacy_s / bridge_s:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / "_work")
    # 9: on a VM whose kernel reclaims cold page cache on its own (DAMON), one run in three pays for re-reading
    # part of the checkpoint from disk (single runs of the same convert vary 0.56-1.15 s); the median of 9 does not
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--no-legacy", action="store_true", help="Skip the transformers 4.x path.")
    args = parser.parse_args()

    prefix = bert_base_checkpoint(args.work)
    compile_package()
    config = prefix.parent / "bert_config.json"
    config.write_text(
        json.dumps(
            {
                **BERT_BASE,
                "hidden_act": "gelu",
                "hidden_dropout_prob": 0.1,
                "attention_probs_dropout_prob": 0.1,
                "initializer_range": 0.02,
            }
        )
    )
    out = args.work / "converted"
    bridge_s, bridge_rss = measure(
        [sys.executable, "-m", "bridge", "convert", str(prefix), "--to", "pytorch", "-o", str(out), "-q"],
        args.repeats,
        before=fresh(out),
    )
    weights = out / "model.safetensors"
    copy = args.work / "copy.safetensors"
    cp_s, _ = measure(["cp", str(weights), str(copy)], args.repeats, before=fresh(copy))
    copy.unlink(missing_ok=True)

    size = sum(p.stat().st_size for p in prefix.parent.glob(prefix.name + ".*"))
    written = weights.stat().st_size / 2**20
    print(f"checkpoint: {prefix} ({size / 2**30:.2f} GiB, BERT-base + Adam slots); wrote {written:.0f} MiB")
    print(f"bridge convert --to pytorch   {bridge_s:8.2f} s   peak RSS {bridge_rss / 2**20:7.0f} MiB   (goal < 400)")
    print(f"cp of the bytes written       {cp_s:8.2f} s   ratio bridge/cp {bridge_s / cp_s:.2f}x   (goal <= 2x)")
    if args.no_legacy:
        return
    python = legacy_python(args.work)
    if python is None:
        return
    legacy_out = args.work / "legacy_pytorch_model.bin"
    legacy_s, legacy_rss = measure(
        [str(python), "-c", LEGACY_SCRIPT, str(prefix), str(config), str(legacy_out)],
        args.repeats,
        before=fresh(legacy_out),
    )
    legacy_out.unlink(missing_ok=True)
    print(f"transformers 4.57.6 path      {legacy_s:8.2f} s   peak RSS {legacy_rss / 2**20:7.0f} MiB")
    print(f"ratio 4.x path / bridge: {legacy_s / bridge_s:.1f}x   (goal >= 15x)")
    shutil.rmtree(out, ignore_errors=True)
    hf_tf_rows(args.work, python, args.repeats)


if __name__ == "__main__":
    main()
