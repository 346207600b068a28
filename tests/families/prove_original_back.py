"""Proves, once, that the original TF1 layouts bridge writes back are what transformers 4.57's own loaders read.

For each fixture: original -> PyTorch (bridge) -> original (bridge); then transformers 4.57.6's
``load_tf_weights_in_<family>`` reads the written checkpoint into its PyTorch class (built from the config.json
bridge wrote), and its state dict is compared, tensor by tensor, with the PyTorch state dict converted from.
ELECTRA's two networks also go back together (``discriminator/`` + ``generator/`` -> one checkpoint), read by the
same loader into each class.  Mesh TF's bfloat16 is compared after 4.57's own upcast to float32 (exact).  Results
go to ``original_back_457.json`` beside this script, which ``tests/families/test_original_back_457.py`` reads.

Run from the repository root with the transformers 4.57 venv (TF 2.21, torch 2.13), bridge run by the main one:
    /work/venv-tf4/bin/python tests/families/prove_original_back.py /work/main/.venv/bin/python
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
OUT = Path(__file__).with_name("original_back_457.json")

# name -> (source, PyTorch class, --target layout, written weights prefix, 4.57 loader, loader keywords)
CASES = {
    "albert-pretraining": ("albert-tf1", "AlbertForPreTraining", "albert", "model.ckpt", "albert", {}),
    "electra-discriminator": ("electra-tf1", "ElectraForPreTraining", "electra", "model.ckpt", "electra", {}),
    "electra-generator": (
        "electra-tf1",
        "ElectraForMaskedLM",
        "electra",
        "model.ckpt",
        "electra",
        {"discriminator_or_generator": "generator"},
    ),
    "xlnet-pretrain": ("xlnet-tf1/pretrain", "XLNetLMHeadModel", "xlnet", "xlnet_model.ckpt", "xlnet", {}),
    "xlnet-regression": (
        "xlnet-tf1/regression",
        "XLNetForSequenceClassification",
        "xlnet",
        "xlnet_model.ckpt",
        "xlnet",
        {},
    ),
    "t5-v1_0": ("t5-tf1/v1_0", "T5ForConditionalGeneration", "t5", "model.ckpt", "t5", {}),
    "t5-v1_1": ("t5-tf1/v1_1", "T5ForConditionalGeneration", "t5", "model.ckpt", "t5", {}),
    "mt5-v1_1": ("t5-tf1/v1_1", "MT5ForConditionalGeneration", "t5", "model.ckpt", "mt5", {}),
}


def _bridge(python: str, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([python, "-m", "bridge", *args], check=True, env=env, capture_output=True, text=True)


# The ELECTRA pair: both networks (discriminator/ + generator/) into one checkpoint, read by 4.57 for each.
PAIR = {
    "electra-pair-discriminator": ("discriminator", "ElectraForPreTraining", {}),
    "electra-pair-generator": ("generator", "ElectraForMaskedLM", {"discriminator_or_generator": "generator"}),
}
PAIR_SOURCE = "electra-tf1"


def prove(python: str, name: str, work: Path) -> dict[str, object]:
    source, class_name, layout, weights, family, kwargs = CASES[name]
    pt, back = work / f"{name}-pt", work / f"{name}-tf"
    _bridge(python, "convert", str(FIXTURES / source), "--to", "pytorch", "--target", class_name, "-o", str(pt))
    _bridge(python, "convert", str(pt), "--to", "tensorflow", "--target", layout, "-o", str(back))
    return {"source": source, "layout": layout, **_compare(pt, class_name, back / weights, family, kwargs)}


def prove_pair(python: str, work: Path) -> dict[str, dict[str, object]]:
    """Both ELECTRA networks -> one checkpoint (no --target: config.json's model_type picks the electra layout)."""
    pair, back = work / "electra-pair", work / "electra-pair-tf"
    for folder, class_name, _ in PAIR.values():
        out = str(pair / folder)
        _bridge(python, "convert", str(FIXTURES / PAIR_SOURCE), "--to", "pytorch", "--target", class_name, "-o", out)
    _bridge(python, "convert", str(pair), "--to", "tensorflow", "-o", str(back))
    return {
        name: {
            "source": f"{PAIR_SOURCE} (discriminator/ + generator/ into one checkpoint)",
            "layout": "electra",
            **_compare(pair / folder, class_name, back / "model.ckpt", "electra", kwargs),
        }
        for name, (folder, class_name, kwargs) in PAIR.items()
    }


def _compare(pt: Path, class_name: str, checkpoint: Path, family: str, kwargs: dict[str, str]) -> dict[str, object]:
    """4.57's loader reads ``checkpoint`` into ``class_name`` (the config bridge wrote in ``pt``); its state dict
    against the one in ``pt``, tensor by tensor."""
    import torch
    import transformers
    from safetensors.torch import load_file

    converted = load_file(str(pt / "model.safetensors"))
    config_dict = json.loads((pt / "config.json").read_text())
    config_dict.pop("dtype", None)
    config = getattr(transformers, class_name).config_class.from_dict(config_dict)
    torch.manual_seed(0)
    model = getattr(transformers, class_name)(config).eval()
    module = __import__(f"transformers.models.{family}.modeling_{family}", fromlist=["_"])
    loader = getattr(module, f"load_tf_weights_in_{family}")
    loader(model, config, str(checkpoint), **kwargs)
    loaded = model.state_dict()
    torch.manual_seed(0)
    fresh = getattr(transformers, class_name)(config).state_dict()  # the same init: what the loader left alone
    differ = [k for k, v in converted.items() if k not in loaded or not torch.equal(loaded[k], v.to(loaded[k].dtype))]
    # A tensor the original layout does not hold (a fine-tuned XLNet's mask_emb): 4.57 leaves its random init.
    not_in_layout = [k for k in differ if k in fresh and torch.equal(loaded[k], fresh[k])]
    differ = [k for k in differ if k not in not_in_layout]
    not_stored = sorted(set(loaded) - set(converted))
    ties = {k: v for k, v in model.state_dict().items() if k in not_stored}
    untied = [
        k for k in not_stored if not any(torch.equal(ties[k], loaded[o]) for o in converted if o in loaded)
    ]  # a key the converted file does not store must be a tie, equal to a tensor it does store
    return {
        "class": class_name,
        "loader": f"load_tf_weights_in_{family}",
        "compared": len(converted),
        "source_dtypes": sorted({str(v.dtype).removeprefix("torch.") for v in converted.values()}),
        "differ": differ,
        "not_in_layout_left_at_init": not_in_layout,
        "not_stored_ties": not_stored,
        "not_stored_untied": untied,
        "same": not differ and not untied,
    }


def main() -> None:
    python = sys.argv[1] if len(sys.argv) > 1 else sys.executable
    import transformers

    results: dict[str, object] = {"transformers": transformers.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            results[name] = prove(python, name, Path(tmp))
            print(name, results[name]["same"], flush=True)
        for name, result in prove_pair(python, Path(tmp)).items():
            results[name] = result
            print(name, result["same"], flush=True)
    OUT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
