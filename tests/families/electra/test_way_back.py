"""transformers ELECTRA -> google-research/electra's TF1 layout: the network comes back (TensorFlow's reader)."""

from __future__ import annotations

from tests.families.original_back import FIXTURES, model_names, round_trip

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
