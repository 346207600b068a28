"""The seq2seq group of the generic hf-tf road (bridge/families/hf_tf/data/seq2seq.py): what its plans explain.

tests/families/hf_tf/test_families.py proves every fixture (bit for bit against transformers 4.57's own conversion,
transformers 5's load and forward against the TF outputs); these tests read the plans: shared embeddings saved
outside the model scope and again under T5's encoder and decoder, BART's final_logits_bias, mT5's untied LM head,
XLNet's einsum weights, Whisper's convolutions, Marian's and Pegasus' sinusoid tables.  Oracles: the h5 read by
h5py, the output read by safetensors, transformers 5's own sinusoid tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

FAMILIES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-families"


def _check(tf_class: str, *args: str, code: int = 0) -> str:
    return run_cli("check", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", *args, code=code)


def _h5(tf_class: str, name: str) -> np.ndarray:
    import h5py

    with h5py.File(FAMILIES_DIR / tf_class / "tf" / "tf_model.h5", "r") as f:
        return np.asarray(f[name])


def test_t5_shared_embedding_is_stored_once_and_tied():
    out = _check("TFT5ForConditionalGeneration")
    assert "shared/shared/shared/embeddings:0 -> shared.weight  [identity]" in out
    # the encoder and decoder save `shared` again: byte-equal copies, explained, not converted twice
    assert "2 tensors: expected: the encoder's or decoder's copy of the shared embedding" in out
    assert "byte-equal to the tensor it copies" in out
    for tie in ("encoder.embed_tokens.weight = shared.weight", "lm_head.weight = shared.weight"):
        assert tie in out
    # the relative attention bias lives in the first block only
    assert "block_._0/layer_._0/SelfAttention/relative_attention_bias/embeddings:0 -> " in out
    assert "block_._1/layer_._0/SelfAttention/relative_attention_bias" not in out
    assert "verdict: OK" in out


def test_t5_encoder_target_drops_the_decoder_by_name():
    out = _check("TFT5ForConditionalGeneration", "--target", "T5EncoderModel")
    assert "28 tensors: expected: decoder (top layer) dropped (T5EncoderModel has none)" in out
    assert "verdict: OK" in out


def test_mt5_lm_head_is_its_own_tensor(tmp_path: Path):
    """transformers 5 forces MT5Config.tie_word_embeddings on and unties on load where lm_head differs: the plan
    must write the checkpoint's lm_head, not tie it to the shared embedding (mT5 and T5 v1.1 are untied)."""
    from safetensors.numpy import load_file

    tf_class = "TFMT5ForConditionalGeneration"
    out = _check(tf_class)
    assert "lm_head/tfmt5_for_conditional_generation/lm_head/kernel:0 -> lm_head.weight  [transpose]" in out
    assert "lm_head.weight = shared.weight" not in out and "verdict: OK" in out
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    ours = load_file(tmp_path / "out" / "model.safetensors")
    kernel = _h5(tf_class, "lm_head/tfmt5_for_conditional_generation/lm_head/kernel:0")
    assert np.array_equal(ours["lm_head.weight"], kernel.T)
    assert not np.array_equal(ours["lm_head.weight"], ours["shared.weight"])


def test_bart_final_logits_bias_and_shared_embedding():
    out = _check("TFBartForConditionalGeneration")
    assert "model/model.shared/model.shared/embeddings:0 -> model.shared.weight  [identity]" in out
    assert "final_logits_bias/final_logits_bias:0 -> final_logits_bias  [identity]" in out
    assert "lm_head.weight = model.shared.weight" in out and "verdict: OK" in out
    # the base model has no LM head: the bias is dropped by name, the prefix `model.` removed
    out = _check("TFBartForConditionalGeneration", "--target", "BartModel")
    assert "final_logits_bias/final_logits_bias:0 [1, 40]: expected: final_logits_bias (top layer) dropped" in out
    assert "model/model.shared/model.shared/embeddings:0 -> shared.weight" in out and "verdict: OK" in out


@pytest.mark.parametrize(
    ("tf_class", "scope", "module"),
    [
        ("TFPegasusForConditionalGeneration", "tf_pegasus_for_conditional_generation", "pegasus"),
        ("TFMarianMTModel", "tf_marian_mt_model", "marian"),
    ],
)
def test_sinusoid_tables_are_transformers_5s_own(tf_class: str, scope: str, module: str, tmp_path: Path, transformers):
    """Marian's and Pegasus' TF models store their sinusoid tables as weights, which bridge converts: they are the
    tables transformers 5 builds itself, to float32 rounding (4.57's MarianMTModel did not save them at all)."""
    import importlib

    from safetensors.numpy import load_file

    out = _check(tf_class)
    assert "model/encoder/embed_positions/embeddings:0 -> model.encoder.embed_positions.weight  [identity]" in out
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    ours = load_file(tmp_path / "out" / "model.safetensors")
    embedding = getattr(
        importlib.import_module(f"transformers.models.{module}.modeling_{module}"),
        f"{module.capitalize()}SinusoidalPositionalEmbedding",
    )
    for side in ("encoder", "decoder"):
        stored = _h5(tf_class, f"model/{scope}/model/{side}/embed_positions/embeddings:0")
        written = ours[f"model.{side}.embed_positions.weight"]
        assert written.tobytes() == stored.tobytes()
        table = embedding(*stored.shape).create_weight().numpy()
        assert np.abs(table - written).max() <= 1e-6


def test_xlnet_einsum_weights_keep_their_layout():
    out = _check("TFXLNetLMHeadModel")
    assert "layer_._{0..1}/rel_attn/q:0 -> transformer.layer.{0..1}.rel_attn.q  [identity]" in out
    assert "layer_._{0..1}/rel_attn/r_w_bias:0 -> transformer.layer.{0..1}.rel_attn.r_w_bias  [identity]" in out
    assert "transformer/mask_emb:0 -> transformer.mask_emb  [identity]" in out
    assert "lm_loss.weight = transformer.word_embedding.weight" in out
    assert "expected: a head's copy of the transformer layer's variables" in out and "verdict: OK" in out


def test_whisper_conv_kernels_are_permuted():
    out = _check("TFWhisperForConditionalGeneration")
    assert "model/encoder/conv{1..2}/kernel:0 -> model.encoder.conv{1..2}.weight  [permute(2,1,0)]" in out
    assert "proj_out.weight = model.decoder.embed_tokens.weight" in out and "verdict: OK" in out


def test_unscoped_names_never_claim_an_unmapped_family():
    """BART-like names outside the model scope (`model/model.shared/...`) are whole-name rules: the pack's signature
    (a mapped family's model scope) keeps them from claiming a file of an unmapped family that saves such names
    (every BART-like TF family of 4.57 is mapped now: here under TransfoXL's scope), so check refuses it by name."""
    from bridge.families.hf_tf import generic_pack as hf_tf_generic

    names = [
        "model/model.shared/model.shared/embeddings:0",
        "final_logits_bias/final_logits_bias:0",
        "model/tf_transfo_xl_model/model/encoder/layers.0/fc1/kernel:0",
    ]
    assert hf_tf_generic.PACK.claims(names) == 0
    assert "not supported" in (hf_tf_generic.PACK.detection.refuses(names, {"model_type": "transfo-xl"}) or "")


@pytest.mark.parametrize(
    "tf_class", ["TFMT5ForConditionalGeneration", "TFT5Model", "TFBartModel", "TFWhisperModel", "TFXLNetLMHeadModel"]
)
@pytest.mark.slow
def test_verify_compares_every_value_and_says_values_only(tf_class: str, tmp_path: Path):
    """Base models too: the output's names lack the prefix (``model.``) that the rules give, and the output's
    config.json names the class whose base-model prefix lines them up."""
    source = str(FAMILIES_DIR / tf_class / "tf")
    run_cli("convert", source, "--to", "pytorch", "-o", str(tmp_path / "out"))
    out = run_cli("verify", source, str(tmp_path / "out"))
    assert "tensors bit-exact after their transform" in out
    assert "verdict: PASS (values only: no forward pass was compared)" in out


# round 2: Blenderbot, Blenderbot-small, LED, GPT-J, OpenAI GPT, XGLM, Mistral, CTRL, Speech2Text


def test_led_shared_embedding_is_saved_under_its_own_prefix():
    out = _check("TFLEDForConditionalGeneration")
    assert "led/led.shared/led.shared/embeddings:0 -> led.shared.weight  [identity]" in out
    assert "final_logits_bias/final_logits_bias:0 -> final_logits_bias  [identity]" in out
    assert "lm_head.weight = led.shared.weight" in out and "verdict: OK" in out


@pytest.mark.slow
def test_ctrl_lm_head_is_a_bias_over_the_tied_embedding(tmp_path: Path):
    out = _check("TFCTRLLMHeadModel")
    assert "lm_head/tfctrllm_head_model/lm_head/bias:0 -> lm_head.bias  [squeeze(0)]" in out
    assert "lm_head.weight = transformer.w.weight" in out and "verdict: OK" in out
    # the base model drops the head, and says so
    out = _check("TFCTRLLMHeadModel", "--target", "CTRLModel")
    assert "lm_head (top layer)" in out and "verdict: OK" in out


@pytest.mark.slow
def test_speech2text_lm_head_kernel_is_the_embedding_transposed_stored_once(tmp_path: Path):
    """TF Speech2Text saves its LM head's kernel beside the embedding its config ties it to: the same values in
    another layout are written once (as transformers saves a tie); values that differ contradict the config and are
    a gap (a freshly built TF model holds two random matrices: its forward reads the kernel, PyTorch's the
    embedding)."""
    import shutil

    import h5py
    from safetensors.numpy import load_file

    tf_class = "TFSpeech2TextForConditionalGeneration"
    out = _check(tf_class)
    assert "conv/conv_layers.{0..1}/kernel:0 -> model.encoder.conv.conv_layers.{0..1}.weight  [permute(2,1,0)]" in out
    assert "the same values as `model/tf_speech2_text_for_conditional_generation/model/decoder/embed_tokens" in out
    assert "lm_head.weight = model.decoder.embed_tokens.weight" in out and "verdict: OK" in out
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    assert "lm_head.weight" not in load_file(tmp_path / "out" / "model.safetensors")

    untied = tmp_path / "untied"
    shutil.copytree(FAMILIES_DIR / tf_class / "tf", untied)
    with h5py.File(untied / "tf_model.h5", "r+") as f:
        kernel = f["lm_head/tf_speech2_text_for_conditional_generation/lm_head/kernel:0"]
        kernel[0, 0] = kernel[0, 0] + 1.0
    out = run_cli("check", str(untied), "--to", "pytorch", code=1)
    assert "its values differ from" in out and "lm_head/kernel:0" in out


@pytest.mark.slow
def test_openai_gpt_double_heads_embeddings_fill_the_lm_head_they_are_tied_to(tmp_path: Path):
    """transformers 5 declares OpenAIGPTDoubleHeadsModel's LM head the source of the word embeddings (the other
    classes: the reverse); TF saves the embeddings: written once, under their own name, as 4.57 did."""
    from safetensors.numpy import load_file

    tf_class = "TFOpenAIGPTDoubleHeadsModel"
    out = _check(tf_class)
    assert "lm_head.weight = transformer.tokens_embed.weight" in out
    assert "target tensors filled 100%" in out and "verdict: OK" in out
    assert "multiple_choice_head/summary/kernel:0 -> multiple_choice_head.summary.weight  [transpose]" in out
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    ours = load_file(tmp_path / "out" / "model.safetensors")
    assert "lm_head.weight" not in ours
    stored = _h5(tf_class, "transformer/tf_open_aigpt_double_heads_model/transformer/tokens_embed/weight:0")
    assert ours["transformer.tokens_embed.weight"].tobytes() == stored.tobytes()


@pytest.mark.parametrize(
    "tf_class",
    ["TFBlenderbotForConditionalGeneration", "TFLEDModel", "TFGPTJForCausalLM", "TFMistralForSequenceClassification",
     "TFSpeech2TextForConditionalGeneration", "TFOpenAIGPTDoubleHeadsModel", "TFEncoderDecoderModel",
     "TFVisionEncoderDecoderModel"],
)  # fmt: skip
@pytest.mark.slow
def test_round_2_verify_compares_every_value(tf_class: str, tmp_path: Path):
    source = str(FAMILIES_DIR / tf_class / "tf")
    run_cli("convert", source, "--to", "pytorch", "-o", str(tmp_path / "out"))
    out = run_cli("verify", source, str(tmp_path / "out"))
    assert "tensors bit-exact after their transform" in out
    assert "verdict: PASS (values only: no forward pass was compared)" in out


def test_encoder_decoder_names_its_encoder_without_the_main_layer():
    """TF saves `encoder/<scope>/encoder/bert/...`; PyTorch's encoder is the base model itself (`encoder.embeddings`),
    its decoder the LM-head class (`decoder.transformer.h.0`, GPT-2's Conv1D kept [in, out])."""
    out = _check("TFEncoderDecoderModel")
    assert "rules: hf-tf-generic" in out and "target: transformers EncoderDecoderModel" in out
    assert "encoder/bert/embeddings/word_embeddings/weight:0 -> encoder.embeddings.word_embeddings.weight" in out
    assert "crossattention/q_attn/bias:0 -> decoder.transformer.h.0.crossattention.q_attn.bias  [squeeze(0)]" in out
    assert "decoder.lm_head.weight = decoder.transformer.wte.weight" in out and "verdict: OK" in out


def test_vision_encoder_decoder_reuses_the_vit_rules():
    out = _check("TFVisionEncoderDecoderModel")
    assert "patch_embeddings/projection/kernel:0 -> encoder.embeddings.patch_embeddings.projection.weight" in out
    assert "[permute(3,2,0,1)]" in out
    assert (
        "encoder/vit/encoder/layer_._0/attention/attention/query/kernel:0 -> encoder.layers.0.attention.q_proj" in out
    )
    assert "decoder.lm_head.weight = decoder.transformer.wte.weight" in out and "verdict: OK" in out


def test_gpt_sw3_files_are_gpt2_files(transformers):
    """transformers maps gpt-sw3 to GPT2Config (and 4.57 to GPT-2's TF classes): its tf_model.h5 is GPT-2's, its
    config.json says gpt2, and the GPT-2 fixtures prove it; the family table names it."""
    from bridge.families.hf_tf import generic_pack as hf_tf_generic

    assert transformers.CONFIG_MAPPING["gpt-sw3"] is transformers.GPT2Config
    assert transformers.GPT2Config().to_dict()["model_type"] == "gpt2"
    assert "gpt-sw3" in hf_tf_generic.PACK.docs.model_types
