"""Vision and audio families of the generic hf-tf road: what their plans say (permuted convolution kernels, batch
norm statistics, rebuilt buffers, transformers 5's renames) and what the generic test cannot compare.

Fixtures: ``tests/fixtures/hf-tf-families/`` (written by transformers 4.57.6, see its SOURCE.txt); oracles: the
TF model's outputs (``io.npz``), transformers 5's own loading of 4.57's conversion, h5py's reading of the TF file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

FAMILIES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-families"


def _check(tf_class: str) -> str:
    return run_cli("check", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch")


def test_vit_kernels_are_permuted_and_layers_take_transformers_5_names():
    out = _check("TFViTForImageClassification")
    assert "projection/kernel:0 -> vit.embeddings.patch_embeddings.projection.weight  [permute(3,2,0,1)]" in out
    assert "attention/attention/query/kernel:0 -> vit.layers.{0..1}.attention.q_proj.weight  [transpose]" in out
    assert "output/dense/kernel:0 -> vit.layers.{0..1}.mlp.fc2.weight  [transpose]" in out
    assert "embeddings/cls_token:0 -> vit.embeddings.cls_token  [identity]" in out and "verdict: OK" in out


def test_resnet_statistics_become_running_buffers_and_the_step_counter_is_new():
    out = _check("TFResNetForImageClassification")
    assert "normalization/moving_variance:0 -> resnet.embedder.embedder.normalization.running_var" in out
    assert "expected: batch norm's step counter: no TF variable, newly initialised (zeros)" in out
    assert "verdict: OK" in out


def test_swin_index_buffer_is_an_expected_leftover_only_with_the_rebuilt_values():
    out = _check("TFSwinForImageClassification")
    assert "expected: constant buffer: Swin's relative position index, rebuilt from the window size" in out
    assert "attention.relative_position_bias.relative_position_bias_table" in out


def test_swin_index_rebuilt_as_the_tf_file_holds_it():
    import h5py

    from bridge.families.hf_tf.data.vision import swin_relative_position_index

    name = "swin/tf_swin_model/swin/encoder/layers.0/blocks.0/attention/self/relative_position_index:0"
    with h5py.File(FAMILIES_DIR / "TFSwinModel" / "tf" / "tf_model.h5", "r") as f:
        stored = f[name][()]
    np.testing.assert_array_equal(swin_relative_position_index(stored.shape), stored)


@pytest.mark.slow
def test_clip_logit_scale_is_a_scalar_and_one_tower_classes_drop_the_tower_prefix():
    out = _check("TFCLIPModel")
    assert "clip/logit_scale:0 -> logit_scale  [squeeze(0)]" in out
    assert "patch_embedding/kernel:0 -> vision_model.embeddings.patch_embedding.weight  [permute(3,2,0,1)]" in out
    out = _check("TFCLIPTextModel")
    assert "text_model/final_layer_norm/gamma:0 -> final_layer_norm.weight  [identity]" in out


def test_wav2vec2_conv_encoder_and_weight_norm():
    out = _check("TFWav2Vec2ForCTC")
    assert "conv/kernel:0 -> wav2vec2.feature_extractor.conv_layers.{0..1}.conv.weight  [permute(2,1,0)]" in out
    weight_g = "conv/weight_g:0 -> wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0"
    assert f"{weight_g}  [permute(2,1,0)]" in out
    assert "verdict: OK" in out


@pytest.mark.parametrize(
    "tf_class",
    ["TFViTForImageClassification", "TFDeiTForImageClassificationWithTeacher", "TFSwinModel", "TFCLIPTextModel"],
)
def test_transformers_5_renames_of_4_57_agree_with_ours(tf_class: str, tmp_path: Path, transformers):
    """transformers 5 loads 4.57's own conversion through its renaming of 4.x names: the same tensors as ours."""
    from safetensors.numpy import load_file

    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    ours = load_file(tmp_path / "out" / "model.safetensors")
    cls = getattr(transformers, tf_class.removeprefix("TF"))
    theirs = cls.from_pretrained(str(FAMILIES_DIR / tf_class / "pt")).state_dict()
    assert set(ours) <= set(theirs)
    for name, value in ours.items():
        assert value.tobytes() == theirs[name].numpy().tobytes(), name


def test_deit_masked_image_modeling_decodes_the_same_patches(tmp_path: Path, transformers):
    """transformers 5 decodes DeiT's patch tokens (``[:, 2:]``), 4.x the distillation token and all patches but the
    last (``[:, 1:-1]``): TF's patch p+1 is PyTorch's patch p, for every patch both decode."""
    import json

    import torch

    tf_class = "TFDeiTForMaskedImageModeling"
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    model = transformers.DeiTForMaskedImageModeling.from_pretrained(str(tmp_path / "out")).eval()
    io = np.load(FAMILIES_DIR / tf_class / "io.npz")
    with torch.no_grad():
        ours = model(pixel_values=torch.from_numpy(io["pixel_values"])).reconstruction.numpy()
    config = json.loads((FAMILIES_DIR / tf_class / "tf" / "config.json").read_text())
    p, side = config["encoder_stride"], config["image_size"] // config["encoder_stride"]

    def patches(images: np.ndarray) -> np.ndarray:  # [batch, channels, H, W] -> [batch, patch (row-major), ...]
        b, c = images.shape[:2]
        return images.reshape(b, c, side, p, side, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, side * side, -1)

    theirs = patches(io["reconstruction"])
    assert np.abs(patches(ours)[:, :-1] - theirs[:, 1:]).max() <= 1e-5
    assert np.abs(patches(ours)[:, :-1] - theirs[:, :-1]).max() > 1e-2  # the shift is real, not a no-op


def test_segformer_takes_transformers_5_stage_names_and_keeps_dense_projections():
    out = _check("TFSegformerForSemanticSegmentation")
    sr = "attention/self/sr/kernel:0 -> segformer.stages.0.blocks.0.attention.sequence_reduction.sequence_reduction"
    assert f"{sr}.weight  [permute(3,2,0,1)]" in out
    assert (
        "mlp/dwconv/dwconv/kernel:0 -> segformer.stages.1.blocks.0.mlp.dwconv.dwconv.weight  [permute(3,2,0,1)]" in out
    )
    # the decode head's per-stage projections are Dense layers; its fuse layer is a 1x1 convolution
    assert "linear_c.{0..1}/proj/kernel:0 -> decode_head.linear_projections.{0..1}.proj.weight  [transpose]" in out
    assert "decode_head/linear_fuse/kernel:0 -> decode_head.linear_fuse.weight  [permute(3,2,0,1)]" in out
    assert "verdict: OK" in out


def test_data2vec_vision_transposed_convs_layer_scales_and_beit_head_names():
    out = _check("TFData2VecVisionForSemanticSegmentation")
    assert "fpn1.0/kernel:0 -> fpn1.0.weight  [permute(3,2,0,1)]" in out  # ConvTranspose2d: [kh, kw, out, in]
    assert "layer_._{0..2}/lambda_1:0 -> data2vec_vision.encoder.layer.{0..2}.lambda_1  [identity]" in out
    assert "psp_modules/1.1/conv/kernel:0 -> decode_head.psp_modules.blocks.1.conv.convolution.weight" in out
    assert "bottleneck/bn/moving_variance:0 -> decode_head.psp_bottleneck.normalization.running_var" in out
    assert "verdict: OK" in out


def test_regnet_squeeze_excitation_convs_are_permuted():
    out = _check("TFRegNetForImageClassification")
    se = "layer.2/attention.{0,2}/kernel:0 -> regnet.encoder.stages.{0..1}.layers.0.layer.2.attention.{0,2}.weight"
    assert f"{se}  [permute(3,2,0,1)]" in out
    assert "verdict: OK" in out


def test_swiftformer_layer_scales_gain_two_axes():
    out = _check("TFSwiftFormerForImageClassification")
    scale = "blocks_._0/layer_scale_1:0 -> swiftformer.encoder.network.{0,2,4,6}.blocks.0.layer_scale_1"
    assert f"{scale}  [unsqueeze(1)|unsqueeze(2)]" in out
    assert (
        "network_._{1,3,5}/proj/kernel:0 -> swiftformer.encoder.network.{1,3,5}.proj.weight  [permute(3,2,0,1)]" in out
    )
    assert "attn/proj/kernel:0 -> swiftformer.encoder.network.{0,2,4,6}.blocks.0.attn.proj.weight  [transpose]" in out
    assert "verdict: OK" in out


def test_vit_mae_loss_is_the_tf_loss(tmp_path: Path, transformers):
    """TF returns MAE's reconstruction loss as [1], PyTorch as a scalar; with the same noise (the same masked
    patches) the values agree."""
    import torch

    tf_class = "TFViTMAEForPreTraining"
    run_cli("convert", str(FAMILIES_DIR / tf_class / "tf"), "--to", "pytorch", "-o", str(tmp_path / "out"))
    model = transformers.ViTMAEForPreTraining.from_pretrained(str(tmp_path / "out")).eval()
    io = np.load(FAMILIES_DIR / tf_class / "io.npz")
    with torch.no_grad():
        out = model(pixel_values=torch.from_numpy(io["pixel_values"]), noise=torch.from_numpy(io["noise"]))
    assert io["loss"].shape == (1,) and out.loss.shape == ()
    assert abs(float(out.loss) - float(io["loss"][0])) <= 1e-5


def test_groupvit_group_tokens_scalar_scale_and_projection_statistics():
    out = _check("TFGroupViTModel")
    assert "stages_._{0..1}/group_token:0 -> vision_model.encoder.stages.{0..1}.group_token  [identity]" in out
    assert "groupvit/logit_scale:0 -> logit_scale  [squeeze(0)]" in out
    assert "visual_projection.1/moving_mean:0 -> visual_projection.1.running_mean  [identity]" in out
    assert "verdict: OK" in out


def test_layoutlmv3_image_patches_and_2d_relative_position_tables():
    out = _check("TFLayoutLMv3ForQuestionAnswering")
    assert "layoutlmv3/patch_embed/proj/kernel:0 -> layoutlmv3.patch_embed.proj.weight  [permute(3,2,0,1)]" in out
    assert "layoutlmv3/pos_embed:0 -> layoutlmv3.pos_embed  [identity]" in out
    assert "encoder/rel_pos_x_bias/kernel:0 -> layoutlmv3.encoder.rel_pos_x_bias.weight  [transpose]" in out
    assert "verdict: OK" in out


def test_lxmert_answer_head_below_its_index_and_the_tied_decoder():
    out = _check("TFLxmertForPreTraining")
    assert "answer_head/logit_fc_._{0,3}/kernel:0 -> answer_head.logit_fc.{0,3}.weight  [transpose]" in out
    assert "answer_head/logit_fc_._2/gamma:0 -> answer_head.logit_fc.2.weight  [identity]" in out
    assert "cls.predictions.decoder.weight = lxmert.embeddings.word_embeddings.weight" in out
    assert "verdict: OK" in out


def test_blip_decoder_kernel_is_the_tied_embedding_transposed():
    out = _check("TFBlipForConditionalGeneration")
    assert "cls/predictions/decoder/kernel:0 [8, 40]: tied in the config (tie_word_embeddings) to" in out
    assert "the same values as `text_decoder/tf_blip_for_conditional_generation/text_decoder/bert/embeddings/" in out
    assert "text_decoder.cls.predictions.decoder.weight = text_decoder.bert.embeddings.word_embeddings.weight" in out
    assert "vision_model/embeddings/patch_embedding/kernel:0 -> vision_model.embeddings.patch_embedding.weight" in out
    assert "verdict: OK" in out


def test_blip_decoder_that_differs_from_its_tied_embedding_is_a_gap(tmp_path: Path):
    """A TF decoder kernel trained apart from the word embeddings cannot be the one tensor transformers' PyTorch
    class ties them to: bridge says so (exit 1) rather than dropping either."""
    import shutil

    import h5py

    folder = tmp_path / "tf"
    shutil.copytree(FAMILIES_DIR / "TFBlipTextLMHeadModel" / "tf", folder)
    with h5py.File(folder / "tf_model.h5", "r+") as f:
        kernel = f["cls/tf_blip_text_lm_head_model/cls/predictions/decoder/kernel:0"]
        kernel[0, 0] = kernel[0, 0] + 1.0
    out = run_cli("check", str(folder), "--to", "pytorch", code=1)
    assert "its values differ from `bert/tf_blip_text_lm_head_model/bert/embeddings/word_embeddings" in out
    assert "contradicts its config" in out


def test_sam_parts_as_top_layers_and_the_shared_positional_embedding_stored_once():
    out = _check("TFSamModel")
    assert "prompt_encoder/point_embed_._3.weight:0 -> prompt_encoder.point_embed.3.weight  [identity]" in out
    assert (
        "mask_decoder/upscale_conv{1..2}/kernel:0 -> mask_decoder.upscale_conv{1..2}.weight  [permute(3,2,0,1)]" in out
    )
    assert "vision_encoder/layers_._{0..1}/attn/rel_pos_h:0 -> vision_encoder.layers.{0..1}.attn.rel_pos_h" in out
    assert "the prompt encoder's reference to the shared positional embedding" in out
    assert "prompt_encoder.shared_embedding.positional_embedding = shared_image_embedding.positional_embedding" in out
    assert "verdict: OK" in out


def test_sam_prompt_encoder_copy_that_differs_is_a_gap(tmp_path: Path):
    """The prompt encoder saves the shared positional embedding again: a copy that differs from the shared one
    cannot be the one tensor PyTorch ties them to, a gap (exit 1), never a silent choice."""
    import shutil

    import h5py

    folder = tmp_path / "tf"
    shutil.copytree(FAMILIES_DIR / "TFSamModel" / "tf", folder)
    with h5py.File(folder / "tf_model.h5", "r+") as f:
        copy = f["prompt_encoder/tf_sam_model/shared_image_embedding/positional_embedding:0"]
        copy[0, 0] = copy[0, 0] + 1.0
    out = run_cli("check", str(folder), "--to", "pytorch", code=1)
    assert "its values differ from `shared_image_embedding/tf_sam_model/shared_image_embedding/" in out


def test_vision_text_dual_encoder_towers_keep_their_own_families_names():
    """The ViT tower takes transformers 5's ViT names, the BERT tower keeps BERT's (the renames stay below
    `vision_model.`); the towers' main layers (`vit`, `bert`) are dropped; the model-level logit scale is TF's [1]."""
    out = _check("TFVisionTextDualEncoderModel")
    assert "vision_model/vit/encoder/layer_._0/attention/attention/query/kernel:0 -> " in out
    assert "-> vision_model.layers.0.attention.q_proj.weight  [transpose]" in out
    assert "-> vision_model.embeddings.patch_embeddings.projection.weight  [permute(3,2,0,1)]" in out
    assert "-> text_model.encoder.layer.0.attention.self.query.weight  [transpose]" in out
    assert "-> text_model.encoder.layer.0.output.dense.weight  [transpose]" in out
    assert "top_level_model_weights/tf_vision_text_dual_encoder_model/logit_scale:0 -> logit_scale  [squeeze(0)]" in out
    assert "verdict: OK" in out


def test_idefics_gates_resampler_and_decoupled_vocabulary():
    """The cross attention's gates and the resampler's latents are variables named as the PyTorch parameters; the
    decoupled LM head keeps its [vocab, hidden] weight as is and transposes its extra vocabulary's Dense kernel."""
    out = _check("TFIdeficsForVisionText2Text")
    assert "gated_cross_attn_layers.0/alpha_dense:0 -> model.gated_cross_attn_layers.0.alpha_dense  [identity]" in out
    assert "perceiver_resampler/latents:0 -> model.perceiver_resampler.latents  [identity]" in out
    assert "embed_tokens/additional_embedding/embeddings:0 -> model.embed_tokens.additional_embedding.weight" in out
    assert "lm_head/tf_idefics_for_vision_text2_text/lm_head/weight:0 -> lm_head.weight  [identity]" in out
    assert "lm_head/additional_fc/kernel:0 -> lm_head.additional_fc.weight  [transpose]" in out
    assert "verdict: OK" in out
