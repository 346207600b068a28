"""transformers ELECTRA -> google-research/electra's TF1 layout: the network comes back (TensorFlow's reader)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli
from tests.families.original_back import FIXTURES, assert_written_back, model_names, round_trip

ORIGINAL = FIXTURES / "electra-tf1" / "model.ckpt"


def test_discriminator_and_generator_come_back_bit_for_bit(tmp_path, tf):
    """Each network under its own names; together they are every model tensor of the pretraining checkpoint."""
    disc = round_trip(tf, tmp_path / "d", ORIGINAL, "ElectraForPreTraining", "electra", "model.ckpt")
    gen = round_trip(tf, tmp_path / "g", ORIGINAL, "ElectraForMaskedLM", "electra", "model.ckpt")
    d, g = model_names(tf, disc / "model.ckpt"), model_names(tf, gen / "model.ckpt")
    assert all(n.startswith(("electra/", "discriminator_predictions/")) for n in d)
    assert {n for n in g if not n.startswith("electra/embeddings/")} == {
        n for n in g if n.startswith(("generator/", "generator_predictions/"))
    }
    assert d | g == model_names(tf, ORIGINAL)


def _pair(transformers, tmp_path: Path) -> Path:
    """The fixture's two networks as transformers 5 saves them: discriminator/ and generator/ in one folder."""
    pair = tmp_path / "pair"
    for folder, class_name in (("discriminator", "ElectraForPreTraining"), ("generator", "ElectraForMaskedLM")):
        run_cli(
            "convert", str(ORIGINAL.parent), "--to", "pytorch", "--target", class_name, "-o", str(tmp_path / folder)
        )
        model = getattr(transformers, class_name).from_pretrained(tmp_path / folder)
        model.save_pretrained(pair / folder)
    return pair


def test_both_networks_into_one_checkpoint_bit_for_bit(tmp_path, tf, transformers):
    """discriminator/ + generator/ (save_pretrained outputs) -> one pretraining checkpoint holding every model tensor
    of the original, shared embeddings once; verify compares every value written."""
    assert "discriminator/ (ElectraForPreTraining) and generator/ (ElectraForMaskedLM)" in run_cli("convert", "--help")
    pair = _pair(transformers, tmp_path)
    out = tmp_path / "tf"
    text = run_cli("convert", str(pair), "--to", "tensorflow", "-o", str(out), "--quiet")
    assert "ELECTRA pair" in text and f"verify {pair} {out}" in text
    assert assert_written_back(tf, ORIGINAL, out / "model.ckpt") == model_names(tf, ORIGINAL)
    report = json.loads(run_cli("verify", str(pair), str(out), "--json"))
    assert report["ok"] and report["values"]["bit_exact"] == report["values"]["compared"] == len(
        model_names(tf, ORIGINAL)
    )


def test_a_generator_with_other_embeddings_is_a_gap_and_swapped_folders_are_refused(tmp_path, transformers):
    """google-research stores one embeddings: a generator whose own differ is named, never dropped in silence."""
    from safetensors.numpy import load_file, save_file

    pair = _pair(transformers, tmp_path)
    weights = pair / "generator" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["electra.embeddings.word_embeddings.weight"] = tensors["electra.embeddings.word_embeddings.weight"] + 1
    save_file(tensors, str(weights), metadata={"format": "pt"})
    plan = json.loads(run_cli("check", str(pair), "--to", "tensorflow", "--json", code=1))
    gaps = [x for x in plan["unused"] if not x["expected"]]
    assert [x["name"] for x in gaps] == ["generator/electra.embeddings.word_embeddings.weight"]
    assert "values differ" in gaps[0]["reason"]

    (pair / "discriminator").rename(pair / "d")
    (pair / "generator").rename(pair / "discriminator")
    (pair / "d").rename(pair / "generator")
    text = run_cli("check", str(pair), "--to", "tensorflow", code=2)
    assert "discriminator/ folder holds a generator" in text
