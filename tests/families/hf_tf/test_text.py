"""What the text families of the generic hf-tf road (``bridge/families/hf_tf/data/text.py``) do beyond the generic
rules, as ``check`` explains it and as the converted values show; every class's bit-for-bit and forward proof is
``test_families.py``.  Fixtures: ``tests/fixtures/hf-tf-families/`` (written by transformers 4.57.6, see its
SOURCE.txt); h5py (the real HDF5 library) reads the TF side, safetensors the PyTorch side."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

FAMILIES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-families"


def _check(tf_class: str, *extra: str, code: int = 0) -> str:
    return run_cli("check", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", *extra, code=code)


def _h5(path: Path, suffix: str) -> np.ndarray:
    """The one dataset of a ``tf_model.h5`` whose name ends with ``suffix``, as stored."""
    import h5py

    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and n.endswith(suffix) else None)
        assert len(names) == 1, names
        return np.asarray(f[names[0]])


def _convert(tf_dir: Path, out: Path, *extra: str) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    run_cli("convert", str(tf_dir), "--to", "pytorch", "-o", str(out), *extra)
    return load_file(out / "model.safetensors")


def test_albert_one_shared_layer_group_and_the_embedding_projection():
    """Two hidden layers, one group: TF stores the group once, as PyTorch's albert_layer_groups.0 does."""
    out = _check("TFAlbertModel")
    assert "verdict: OK" in out
    # a base class's names have no `albert.` prefix, as transformers saves AlbertModel
    assert (
        "albert/encoder/albert_layer_groups_._0/albert_layers_._0/ffn/kernel:0 -> "
        "encoder.albert_layer_groups.0.albert_layers.0.ffn.weight  [transpose]"
    ) in out
    assert "albert/encoder/embedding_hidden_mapping_in/kernel:0 -> encoder.embedding_hidden_mapping_in.weight" in out
    assert json.loads((FAMILIES_DIR / "TFAlbertModel" / "tf" / "config.json").read_text())["num_hidden_layers"] == 2
    assert "albert_layer_groups_._1" not in out


def test_albert_logits_bias_is_the_decoder_bias_tf_adds(tmp_path: Path, transformers):
    """TFAlbertMLMHead adds ``predictions/decoder/bias`` to the logits and never reads ``predictions/bias``; PyTorch's
    ``predictions.decoder.bias`` is tied to ``predictions.bias``.  Fresh fixtures hold zeros in both, so the two are
    made different here (h5py, in place on a copy) to show which one becomes the PyTorch bias."""
    import h5py

    src = tmp_path / "tf"
    shutil.copytree(FAMILIES_DIR / "TFAlbertForMaskedLM" / "tf", src)
    with h5py.File(src / "tf_model.h5", "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        (decoder,) = [n for n in names if n.endswith("predictions/decoder/bias:0")]
        (unread,) = [n for n in names if n.endswith("_masked_lm/predictions/bias:0")]
        f[decoder][...] = np.linspace(-1, 1, 40, dtype=np.float32)
        f[unread][...] = np.full(40, 7.0, dtype=np.float32)
    out = run_cli("check", str(src), "--to", "pytorch")
    assert "predictions/decoder/bias:0 -> predictions.bias  [identity]" in out
    assert "predictions/bias:0 [40]: expected: never read by the TF forward" in out
    assert "predictions.decoder.bias = predictions.bias" in out and "verdict: OK" in out
    ours = _convert(src, tmp_path / "out")
    assert ours["predictions.bias"].tobytes() == np.linspace(-1, 1, 40, dtype=np.float32).tobytes()
    model = transformers.AlbertForMaskedLM.from_pretrained(str(tmp_path / "out"))
    assert np.array_equal(model.predictions.decoder.bias.detach().numpy(), ours["predictions.bias"])


@pytest.mark.slow
def test_electra_generator_and_discriminator_heads():
    out = _check("TFElectraForMaskedLM")
    assert "generator_lm_head/tf_electra_for_masked_lm/generator_lm_head/bias:0 -> generator_lm_head.bias" in out
    assert "generator_lm_head.weight = electra.embeddings.word_embeddings.weight" in out
    assert "5 tensors: expected: a head's copy of the electra layer's variables" in out
    assert "electra/embeddings_project/kernel:0 -> electra.embeddings_project.weight  [transpose]" in out
    out = _check("TFElectraForPreTraining")
    assert "dense_prediction/kernel:0 -> discriminator_predictions.dense_prediction.weight  [transpose]" in out
    # the generator's heads are not the discriminator's: asked for one from the other, the plan says both
    out = _check("TFElectraForMaskedLM", "--target", "ElectraForPreTraining", code=1)
    assert "expected: generator_predictions (top layer) dropped (ElectraForPreTraining has none)" in out
    assert "discriminator_predictions.dense_prediction.weight [1, 8]: no source tensor" in out


@pytest.mark.slow
def test_deberta_v2_conv_kernel_and_relative_position_table(tmp_path: Path):
    tf_dir = FAMILIES_DIR / "TFDebertaV2ForMaskedLM" / "tf"
    out = _check("TFDebertaV2ForMaskedLM")
    assert "deberta/encoder/conv/conv/kernel:0 -> deberta.encoder.conv.conv.weight  [permute(2,1,0)]" in out
    assert "deberta/encoder/rel_embeddings.weight:0 -> deberta.encoder.rel_embeddings.weight  [identity]" in out
    ours = _convert(tf_dir, tmp_path / "out")
    kernel = _h5(tf_dir / "tf_model.h5", "encoder/conv/conv/kernel:0")  # [width, in, out]
    assert kernel.shape == (3, 8, 8) and np.array_equal(
        ours["deberta.encoder.conv.conv.weight"], kernel.transpose(2, 1, 0)
    )


def test_deberta_attention_biases():
    out = _check("TFDebertaForSequenceClassification")
    assert "attention/self/q_bias:0 -> deberta.encoder.layer.{0..1}.attention.self.q_bias  [identity]  ×2" in out
    assert "attention/self/v_bias:0 -> deberta.encoder.layer.{0..1}.attention.self.v_bias  [identity]  ×2" in out
    assert "pooler/dense/kernel:0 -> pooler.dense.weight  [transpose]" in out and "verdict: OK" in out


def test_mpnet_pooler_dropped_only_where_the_class_has_none():
    out = _check("TFMPNetForMaskedLM")
    assert (
        "2 tensors: expected: mpnet.pooler (mpnet, a part of the main layer) dropped (MPNetForMaskedLM has none)" in out
    )
    assert "mpnet/encoder/relative_attention_bias/embeddings:0 -> mpnet.encoder.relative_attention_bias.weight" in out
    out = _check("TFMPNetForMaskedLM", "--target", "MPNetModel")
    assert "mpnet/pooler/dense/kernel:0 -> pooler.dense.weight  [transpose]" in out
    assert "lm_head (top layer) dropped (MPNetModel has none)" in out


def test_longformer_global_attention_projections():
    out = _check("TFLongformerForQuestionAnswering")
    for proj in ("query_global", "key_global", "value_global"):
        assert (
            f"attention/self/{proj}/kernel:0 -> longformer.encoder.layer.{{0..1}}.attention.self.{proj}.weight" in out
        )


@pytest.mark.parametrize("tf_class", ["TFCamembertForCausalLM", "TFXLMRobertaForMaskedLM"])
def test_roberta_layouts_under_other_names_tie_the_decoder_to_the_embeddings(tf_class: str):
    """transformers 5 builds CamembertForCausalLM's lm_head before its roberta: the tie still points at the word
    embeddings (the tensor the checkpoint holds), as transformers declares it."""
    out = _check(tf_class)
    assert "lm_head.decoder.weight = roberta.embeddings.word_embeddings.weight" in out and "verdict: OK" in out


def test_ties_follow_the_source_transformers_declares(transformers):
    from pt_side.targets import transformers_spec

    config = json.loads((FAMILIES_DIR / "TFCamembertForCausalLM" / "tf" / "config.json").read_text())
    tensors = transformers_spec("CamembertForCausalLM", config).tensors
    assert tensors["lm_head.decoder.weight"].tied_to == "roberta.embeddings.word_embeddings.weight"
    assert tensors["roberta.embeddings.word_embeddings.weight"].tied_to is None


def test_the_text_families_claim_only_their_own_scopes():
    from bridge.families.hf_tf import generic_pack as hf_tf_generic

    pack = hf_tf_generic.PACK
    name = "roberta/tfxlm_roberta_model/roberta/encoder/layer_._0/output/dense/kernel:0"
    assert pack.map_name(name) == ("roberta.encoder.layer.0.output.dense.weight", pack.map_name(name)[1])  # type: ignore[index]
    # ConvBERT and RemBERT are BERT-like too, but not mapped: refused by name, not converted by a near rule
    for scope in ("tf_conv_bert_model/convbert", "tf_rem_bert_model/rembert"):
        assert pack.map_name(f"x/{scope}/encoder/layer_._0/output/dense/kernel:0") is None


@pytest.mark.parametrize("tf_class", ["TFDebertaV2ForMaskedLM", "TFAlbertForPreTraining"])
def test_verify_compares_every_value_and_says_values_only(tf_class: str, tmp_path: Path):
    """The permuted conv kernel and ALBERT's decoder bias, re-read from both files by bridge's own verify."""
    _convert(FAMILIES_DIR / tf_class / "tf", tmp_path / "out")
    out = run_cli("verify", str(FAMILIES_DIR / tf_class / "tf"), str(tmp_path / "out"))
    assert "bit-exact after their transform" in out
    assert "verdict: PASS (values only: no forward pass was compared)" in out


MPNET_8_BUCKETS = FAMILIES_DIR.parent / "hf-tf-unsupported" / "TFMPNetModel-8-buckets"


def test_mpnet_with_other_than_32_buckets_is_refused_by_name(tmp_path: Path, transformers):
    """TF's MPNet buckets relative positions by the config's count, transformers 5's PyTorch MPNet by 32 always: a
    file 4.57 wrote with 8 buckets would convert into a model that computes otherwise, so check and convert refuse
    it (exit 2) naming the key; the same file with 32 in its config is converted."""
    config = json.loads((MPNET_8_BUCKETS / "config.json").read_text())
    assert config["relative_attention_num_buckets"] == 8 and config["model_type"] == "mpnet"
    out = run_cli("check", str(MPNET_8_BUCKETS), "--to", "pytorch", code=2)
    assert "relative_attention_num_buckets" in out and "8" in out and "relative_attention_num_buckets = 32" in out
    assert "mpnet" in out and "Traceback" not in out and "verdict" not in out
    target = tmp_path / "out"
    run_cli("convert", str(MPNET_8_BUCKETS), "--to", "pytorch", "-o", str(target), code=2)
    assert not target.exists()
    # transformers 5's class computes with 32 buckets whatever the config says (the reason for the refusal)
    model = transformers.MPNetModel(transformers.MPNetConfig(**{**config, "num_hidden_layers": 1}))
    assert model.encoder.relative_attention_bias.num_embeddings == 8
    import inspect

    assert "num_buckets=32" in inspect.getsource(type(model.encoder).compute_position_bias)
    # the refusal is of the value, not of the family: the standard 32 buckets convert
    assert "verdict: OK" in _check("TFMPNetModel")


def test_xlm_levels_and_the_lm_head_named_as_transformers_converts_them():
    """XLM's TF lists are `layer_norm1_._0` (a list index with no layer below it) and its LM head's top layer is
    `pred_layer_._proj`: transformers' `_._` level separator gives PyTorch's `layer_norm1.0` and `pred_layer.proj`;
    the projection's weight is the word-embedding matrix, its TF copy stored once."""
    out = _check("TFXLMWithLMHeadModel")
    assert "transformer/layer_norm1_._0/gamma:0 -> transformer.layer_norm1.0.weight  [identity]" in out
    assert "pred_layer_._proj/tfxlm_with_lm_head_model/pred_layer_._proj/bias:0 -> pred_layer.proj.bias" in out
    assert "pred_layer.proj.weight = transformer.embeddings.weight" in out
    assert "verdict: OK" in out
    # a base class drops the head, and names it by its PyTorch prefix
    out = _check("TFFlaubertWithLMHeadModel", "--target", "FlaubertModel")
    assert "pred_layer_._proj (top layer)" in out and "verdict: OK" in out


def test_roformer_causal_lm_converts_exactly_and_tf_never_masked_the_future(tmp_path: Path, transformers):
    """4.57's TFRoFormerForCausalLM builds no causal mask: its logits are transformers 5's class's with
    is_decoder=False, on bridge's converted weights; the causal class agrees with it where nothing is masked (the
    last token sees every token)."""
    import torch

    folder = FAMILIES_DIR / "TFRoFormerForCausalLM"
    out = tmp_path / "out"
    _convert(folder / "tf", out)
    io = np.load(folder / "io.npz")
    inputs = {k: torch.from_numpy(io[k].astype(np.int64)) for k in ("input_ids", "attention_mask")}
    bidirectional = transformers.RoFormerForCausalLM.from_pretrained(str(out), is_decoder=False).eval()
    causal = transformers.RoFormerForCausalLM.from_pretrained(str(out)).eval()
    with torch.no_grad():
        free, masked = bidirectional(**inputs).logits.numpy(), causal(**inputs).logits.numpy()
    assert np.abs(free - io["logits"]).max() <= 1e-5
    assert np.abs(masked[:, -1] - io["logits"][:, -1]).max() <= 1e-5
    assert np.abs(masked[:, 0] - io["logits"][:, 0]).max() > 1e-5  # the fixture tells the two apart


@pytest.mark.slow
def test_mlm_heads_named_dollar1___dollar2_are_pytorch_cls():
    """`mlm___cls` (RoFormer, RemBERT, LayoutLM) and MobileBERT's `predictions___cls`/`seq_relationship___cls` are
    PyTorch's `cls`, by transformers' `$1___$2` convention."""
    out = _check("TFRemBertForMaskedLM")
    assert (
        "mlm___cls/tf_rem_bert_for_masked_lm/mlm___cls/predictions/decoder/weight:0 -> cls.predictions.decoder" in out
    )
    out = _check("TFMobileBertForPreTraining")
    assert "seq_relationship___cls/seq_relationship/kernel:0 -> cls.seq_relationship.weight  [transpose]" in out
    assert "verdict: OK" in out
    out = _check("TFLayoutLMForMaskedLM", "--target", "LayoutLMModel")
    assert "(top layer) dropped (LayoutLMModel has none)" in out and "verdict: OK" in out


def test_mobilebert_decoder_is_the_word_embeddings_it_equals(tmp_path: Path):
    """TF's MobileBERT LM head multiplies by its own `decoder/weight`; PyTorch ties it to the word embeddings.  The
    fixtures hold equal values, as released files do: the converted decoder is that matrix; a file where the two
    differ is not converted silently (the tie check names the contradiction, exit 1)."""
    import h5py

    folder = FAMILIES_DIR / "TFMobileBertForMaskedLM" / "tf"
    ours = _convert(folder, tmp_path / "out")
    decoder = _h5(folder / "tf_model.h5", "predictions/decoder/weight:0")
    assert ours["cls.predictions.decoder.weight"].tobytes() == decoder.tobytes()
    assert ours["mobilebert.embeddings.word_embeddings.weight"].tobytes() == decoder.tobytes()
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    with h5py.File(changed / "tf_model.h5", "r+") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if n.endswith("predictions/decoder/weight:0") else None)
        f[names[0]][0, 0] += 1.0
    out = run_cli("check", str(changed), "--to", "pytorch", code=1)
    assert "contradicts its config" in out and "tie_word_embeddings" in out


def test_convbert_separable_convolution_and_grouped_kernels(tmp_path: Path):
    """ConvBERT's span convolution is a Keras SeparableConv1D, its feed-forward (num_groups=2) grouped linear
    layers: kernels [out/g, in/g, g] whose axes all reverse into torch's [g, in/g, out/g]."""
    out = _check("TFConvBertModel")
    assert (
        "key_conv_attn_layer/depthwise_kernel:0 -> encoder.layer.0.attention.self.key_conv_attn_layer.depthwise" in out
    )
    assert "[permute(1,2,0)]" in out and "[unsqueeze(1)]" in out
    assert "layer_._0/intermediate/dense/kernel:0 -> encoder.layer.0.intermediate.dense.weight  [reverse]" in out
    folder = FAMILIES_DIR / "TFConvBertModel" / "tf"
    assert json.loads((folder / "config.json").read_text())["num_groups"] == 2
    ours = _convert(folder, tmp_path / "out")
    tf_kernel = _h5(folder / "tf_model.h5", "layer_._0/intermediate/dense/kernel:0")
    assert tf_kernel.shape == (6, 4, 2)
    np.testing.assert_array_equal(ours["encoder.layer.0.intermediate.dense.weight"], tf_kernel.transpose(2, 1, 0))


@pytest.mark.slow
def test_funnel_blocks_and_relative_attention_variables():
    """Funnel's encoder saves `blocks_._1_._0` (PyTorch's blocks.1.0, two list levels with no layer between) and
    its relative attention's own variables (`r_kernel` [d_model, heads, d_head], biases, `seg_embed`) as they are."""
    out = _check("TFFunnelForPreTraining")
    assert (
        "encoder/blocks_._1_._0/attention/r_kernel:0 -> funnel.encoder.blocks.1.0.attention.r_kernel  [identity]" in out
    )
    assert "decoder/layers_._0/attention/seg_embed:0 -> funnel.decoder.layers.0.attention.seg_embed  [identity]" in out
    assert "verdict: OK" in out
    out = _check("TFFunnelForMaskedLM", "--target", "FunnelBaseModel")
    assert "verdict: OK" in out and "funnel.decoder (funnel, a part of the main layer) dropped" in out


@pytest.mark.slow
def test_esm_rotary_frequencies_once_and_the_unread_position_table(tmp_path: Path):
    """Every TF ESM layer saves the rotary `inv_freq`; transformers 5 keeps one for the model: layer 0's becomes
    `esm.rotary_embeddings.inv_freq`, layer 1's is a copy, expected only while byte-equal.  The absolute position
    table TF always builds is dropped for a rotary ESM, which has none."""
    import h5py

    out = _check("TFEsmForMaskedLM")
    assert "layer_._0/attention/self/rotary_embeddings/inv_freq:0 -> esm.rotary_embeddings.inv_freq  [identity]" in out
    assert "each TF layer saves the rotary frequencies again" in out and "(byte-equal to the tensor it copies)" in out
    assert "esm.embeddings.position_embeddings (esm, a part of the main layer) dropped (EsmForMaskedLM has none)" in out
    folder = FAMILIES_DIR / "TFEsmModel" / "tf"
    ours = _convert(folder, tmp_path / "out")
    assert (
        ours["rotary_embeddings.inv_freq"].tobytes()
        == _h5(folder / "tf_model.h5", "layer_._0/attention/self/rotary_embeddings/inv_freq:0").tobytes()
    )
    changed = tmp_path / "changed"
    shutil.copytree(folder, changed)
    with h5py.File(changed / "tf_model.h5", "r+") as f:
        names: list[str] = []
        f.visititems(
            lambda n, o: (
                names.append(n) if n.endswith("layer_._1/attention/self/rotary_embeddings/inv_freq:0") else None
            )
        )
        f[names[0]][0] += 1.0
    out = run_cli("check", str(changed), "--to", "pytorch", code=1)
    assert "its values differ from" in out and "layer_._0/attention/self/rotary_embeddings/inv_freq:0" in out


def test_dpr_each_class_is_its_own_top_layer_around_bert():
    """DPR's TF classes wrap a BERT main layer (`bert_model`) in a top layer of their own: the reader's span
    predictor, the context and question encoders, each mapped under its own name."""
    out = _check("TFDPRReader")
    assert (
        "span_predictor/tfdpr_reader/span_predictor/encoder/bert_model/encoder/layer_._0/output/dense/kernel:0 -> "
        "span_predictor.encoder.bert_model.encoder.layer.0.output.dense.weight  [transpose]"
    ) in out
    assert "span_predictor/qa_classifier/kernel:0 -> span_predictor.qa_classifier.weight" in out
    assert "verdict: OK" in out
    assert "target: transformers DPRQuestionEncoder" in _check("TFDPRQuestionEncoder")


def test_tapas_question_answering_scorers_saved_outside_the_model_scope():
    """TFTapasForQuestionAnswering saves its cell and column scorers as `compute_token_logits/output/...` and
    `compute_column_logits/column_output/...` (no model scope): PyTorch's top-level `output_weights`,
    `output_bias` (a scalar), `column_output_weights`, `column_output_bias`; the seven token-type tables map one
    to one."""
    out = _check("TFTapasForQuestionAnswering")
    assert "compute_token_logits/output/output_bias:0 -> output_bias  [identity]" in out
    assert "compute_column_logits/column_output/column_output_weights:0 -> column_output_weights  [identity]" in out
    assert "token_type_embeddings_{0..6}/embeddings:0 -> tapas.embeddings.token_type_embeddings_{0..6}.weight" in out
    assert "verdict: OK" in out
    out = _check("TFTapasForQuestionAnswering", "--target", "TapasModel")  # the base model drops them, said so
    assert "compute_token_logits (top layer) dropped (TapasModel has none)" in out and "verdict: OK" in out
    config = json.loads((FAMILIES_DIR / "TFTapasForQuestionAnswering" / "tf" / "config.json").read_text())
    assert config["num_aggregation_labels"] == 4 and len(config["type_vocab_sizes"]) == 7
