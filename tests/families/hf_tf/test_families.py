"""The generic hf-tf road (``bridge/families/hf_tf/generic_pack.py``) against what transformers 4.57.6 itself wrote and
converted: ``tests/fixtures/hf-tf-families/<TFClass>/`` (see its SOURCE.txt and ``make_fixtures.py``).

Oracles: 4.57's own TF -> PyTorch conversion (``pt/model.safetensors``, read by safetensors), the TF model's outputs
on a fixed batch (``io.npz``), and transformers 5's ``from_pretrained`` + forward on bridge's output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

FAMILIES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-families"
UNSUPPORTED = Path(__file__).resolve().parents[2] / "fixtures" / "hf-tf-unsupported" / "TFTransfoXLModel"
TF_CLASSES = sorted(p.name for p in FAMILIES_DIR.iterdir() if p.is_dir())


def test_every_class_of_every_family_has_a_fixture():
    """Each class a Family lists (bridge/families/hf_tf/data) is proven by a fixture 4.57 wrote, and no more."""
    from bridge.families.hf_tf.generic_pack import FAMILIES

    assert TF_CLASSES == sorted("TF" + c for family in FAMILIES for c in family.classes)


def _meta(tf_class: str) -> dict:
    return json.loads((FAMILIES_DIR / tf_class / "meta.json").read_text())


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """bridge convert of every fixture, with no --target: the class comes from config.json's architectures."""
    out = {}
    for name in TF_CLASSES:
        folder = tmp_path_factory.mktemp(name) / "out"
        run_cli("convert", str(FAMILIES_DIR / name / "tf"), "--to", "pytorch", "-o", str(folder))
        out[name] = folder
    return out


# transformers 5 renamed parameters of some families; 4.57's conversion (the oracle) has the 4.x names, compared
# here under the 5 names: (TF classes, regex over 4.57's name, replacement), in order (as transformers 5's
# conversion_mapping.py renames 4.x checkpoints it loads)
RENAMED_IN_5 = (
    (r"TFViT.*|TFDeiT.*", r"(^|\.)encoder\.layer\.", r"\1layers."),
    (r"TFViT.*|TFDeiT.*", r"\.attention\.attention\.(query|key|value)\.", lambda m: f".attention.{m[1][0]}_proj."),
    (r"TFSwin.*", r"\.attention\.self\.(query|key|value)\.", lambda m: f".attention.{m[1][0]}_proj."),
    (r"TFSwin.*", r"\.self\.relative_position_bias_table", ".relative_position_bias.relative_position_bias_table"),
    (r"TFViT.*|TFDeiT.*|TFSwin.*", r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"TFViT.*|TFDeiT.*|TFSwin.*", r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"TFViT.*|TFDeiT.*|TFSwin.*", r"\.output\.dense\.", ".mlp.fc2."),
    (r"TFCLIPTextModel", r"^text_model\.", ""),
    (r"TFCLIPVisionModel", r"^vision_model\.", ""),
    # a ViT encoder of a vision encoder-decoder: ViT's renames, below `encoder.` (GPT-2's decoder has none)
    (r"TFVisionEncoderDecoderModel", r"^encoder\.encoder\.layer\.", "encoder.layers."),
    (r"TFVisionEncoderDecoderModel", r"\.attention\.attention\.(query|key|value)\.",
     lambda m: f".attention.{m[1][0]}_proj."),
    (r"TFVisionEncoderDecoderModel", r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"TFVisionEncoderDecoderModel", r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"TFVisionEncoderDecoderModel", r"\.output\.dense\.", ".mlp.fc2."),
    # a ViT tower of a vision-text dual encoder: ViT's renames, below `vision_model.` only (a BERT tower has none)
    (r"TFVisionTextDualEncoderModel", r"^vision_model\.encoder\.layer\.", "vision_model.layers."),
    (r"TFVisionTextDualEncoderModel", r"^(vision_model\.layers\.\d+)\.attention\.attention\.(query|key|value)\.",
     lambda m: f"{m[1]}.attention.{m[2][0]}_proj."),
    (r"TFVisionTextDualEncoderModel", r"^(vision_model\.layers\.\d+)\.attention\.output\.dense\.",
     r"\1.attention.o_proj."),
    (r"TFVisionTextDualEncoderModel", r"^(vision_model\.layers\.\d+)\.intermediate\.dense\.", r"\1.mlp.fc1."),
    (r"TFVisionTextDualEncoderModel", r"^(vision_model\.layers\.\d+)\.output\.dense\.", r"\1.mlp.fc2."),
    # 4.x kept the rotary frequencies per layer, transformers 5 once for the model (its load hook takes layer 0's)
    (r"TFEsm.*", r"(^|\.)encoder\.layer\.\d+\.attention\.self\.(rotary_embeddings\.inv_freq)$", r"\1\2"),
    # SegFormer: stages of blocks (transformers 5's conversion_mapping.py "SegformerModel")
    (r"TFSegformer.*", r"encoder\.patch_embeddings\.(\d+)\.", r"stages.\1.patch_embeddings."),
    (r"TFSegformer.*", r"encoder\.block\.(\d+)\.", r"stages.\1.blocks."),
    (r"TFSegformer.*", r"encoder\.layer_norm\.(\d+)\.", r"stages.\1.layer_norm."),
    (r"TFSegformer.*", r"\.attention\.self\.(query|key|value)\.", lambda m: f".attention.{m[1][0]}_proj."),
    (r"TFSegformer.*", r"\.attention\.self\.sr\.", ".attention.sequence_reduction.sequence_reduction."),
    (r"TFSegformer.*", r"\.attention\.self\.layer_norm\.", ".attention.sequence_reduction.layer_norm."),
    (r"TFSegformer.*", r"\.attention\.output\.dense\.", ".attention.o_proj."),
    (r"TFSegformer.*", r"\.mlp\.dense([12])\.", r".mlp.fc\1."),
    (r"TFSegformer.*", r"\.layer_norm_1\.", ".layernorm_before."),
    (r"TFSegformer.*", r"\.layer_norm_2\.", ".layernorm_after."),
    (r"TFSegformer.*", r"^decode_head\.linear_c\.", "decode_head.linear_projections."),
    # Data2VecVision's segmentation heads take BEiT's names ("BeitForSemanticSegmentation")
    (r"TFData2VecVision.*", r"\.bn\.", ".normalization."),
    (r"TFData2VecVision.*", r"\.conv\.weight$", ".convolution.weight"),
    (r"TFData2VecVision.*", r"^decode_head\.bottleneck\.", "decode_head.psp_bottleneck."),
    (r"TFData2VecVision.*", r"^decode_head\.psp_modules\.(\d+)\.1\.", r"decode_head.psp_modules.blocks.\1.conv."),
)  # fmt: skip
# 4.57's TF -> PyTorch conversion leaves batch norm statistics newly initialised (it never renames TF's
# moving_mean/moving_variance), and SAM's shared positional embedding (a PyTorch buffer it leaves "newly
# initialized"); the fixtures hold other values (hf_tf_specs/vision.py): compared with the TF file
NOT_CONVERTED_BY_4_57 = {
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
    "positional_embedding": "positional_embedding",
}


def _renamed_in_5(tf_class: str, name: str) -> str:
    for classes, rx, replacement in RENAMED_IN_5:
        if re.fullmatch(classes, tf_class):
            name = re.sub(rx, replacement, name)
    return name


def _tf_statistics(tf_class: str) -> dict[str, np.ndarray]:
    """The TF file's batch norm statistics under their 4.x PyTorch names (the path after the model scope)."""
    import h5py

    out: dict[str, np.ndarray] = {}
    renamed = {tf: pt for pt, tf in NOT_CONVERTED_BY_4_57.items()}

    def visit(name: str, obj: object) -> None:
        leaf = name.rsplit("/", 1)[-1].removesuffix(":0")
        if isinstance(obj, h5py.Dataset) and leaf in renamed:
            path = name.split("/", 2)[2].removesuffix(":0").rsplit("/", 1)[0].replace("_._", ".")
            out[f"{path.replace('/', '.')}.{renamed[leaf]}"] = obj[()]

    with h5py.File(FAMILIES_DIR / tf_class / "tf" / "tf_model.h5", "r") as f:
        f.visititems(visit)
    return out


# Tensors bridge writes that 4.57's save_pretrained left out (its _keys_to_ignore_on_save): compared with
# transformers 5's own values in the family's tests, never silently skipped.  TF class -> PyTorch names.
NOT_SAVED_BY_4 = {
    # sinusoid tables transformers rebuilt on load (tests/families/hf_tf/test_seq2seq.py: equal to 5's own)
    "TFMarianMTModel": {"model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"},
    # MobileBERT's TF LM head keeps its own decoder matrix, which PyTorch ties to the word embeddings: bridge writes
    # the TF variable (the tie check proved it byte-equal to the embeddings), 4.57 saved the tie once
    # (tests/families/hf_tf/test_text.py: equal to the embeddings and to the TF variable)
    "TFMobileBertForMaskedLM": {"cls.predictions.decoder.weight"},
    "TFMobileBertForPreTraining": {"cls.predictions.decoder.weight"},
}


@pytest.mark.parametrize("tf_class", TF_CLASSES)
def test_weights_equal_transformers_4_conversion_bit_for_bit(tf_class: str, converted: dict[str, Path]):
    from safetensors.numpy import load_file

    ours = load_file(converted[tf_class] / "model.safetensors")
    theirs = {
        _renamed_in_5(tf_class, k): v
        for k, v in load_file(FAMILIES_DIR / tf_class / "pt" / "model.safetensors").items()
    }
    statistics = {_renamed_in_5(tf_class, k): v for k, v in _tf_statistics(tf_class).items()}
    for name in [n for n in ours if n.rsplit(".", 1)[-1] in NOT_CONVERTED_BY_4_57]:
        # the same path, else one under or above the main layer (a base model's names drop its prefix)
        tf_value = [v for k, v in statistics.items() if k == name] or [
            v for k, v in statistics.items() if k.endswith("." + name) or name.endswith("." + k)
        ]
        assert len(tf_value) == 1 and ours[name].tobytes() == tf_value[0].tobytes(), name
        assert not np.array_equal(ours[name], theirs[name]), name  # the fixture tells the two apart
        del ours[name]
    unsaved = NOT_SAVED_BY_4.get(tf_class, set())
    assert unsaved <= set(ours) and not unsaved & set(theirs), unsaved
    ours = {k: v for k, v in ours.items() if k not in unsaved}
    # 4.57 saves each tied weight once, as its own save_pretrained chooses: every tensor we write is in its dict
    assert set(ours) <= set(theirs), set(ours) - set(theirs)
    for name, value in ours.items():
        assert value.dtype == theirs[name].dtype and value.shape == theirs[name].shape, name
        assert value.tobytes() == theirs[name].tobytes(), name
    assert json.loads((converted[tf_class] / "config.json").read_text())["architectures"] == [
        tf_class.removeprefix("TF")
    ]


@pytest.mark.parametrize("tf_class", TF_CLASSES)
def test_transformers_5_loads_it_and_matches_the_tf_outputs(tf_class: str, converted: dict[str, Path], transformers):
    import torch

    meta = _meta(tf_class)
    model, info = getattr(transformers, meta["class"]).from_pretrained(
        str(converted[tf_class]), output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    model.eval()
    io = np.load(FAMILIES_DIR / tf_class / "io.npz")
    inputs = {k: torch.from_numpy(io[k].astype(np.int64) if io[k].dtype.kind == "i" else io[k]) for k in meta["inputs"]}
    with torch.no_grad():
        out = model(**inputs)
    elsewhere = meta.get("elsewhere", {})  # outputs transformers 5 computes otherwise: a family test compares them
    compared = [k for k in meta["outputs"] if isinstance(out.get(k), torch.Tensor) and k not in elsewhere]
    assert compared or elsewhere, (meta["outputs"], list(out))
    for key in compared:
        got = out[key].numpy()
        assert got.shape == io[key].shape, key
        assert np.abs(got - io[key]).max() <= meta["atol"], key


def test_target_overrides_the_saved_class():
    out = run_cli(
        "check", str(FAMILIES_DIR / "TFDistilBertForSequenceClassification" / "tf"), "--to", "pytorch",
        "--target", "DistilBertModel",
    )  # fmt: skip
    assert "target: transformers DistilBertModel" in out and "verdict: OK" in out
    assert "pre_classifier" in out  # the head is dropped, and said so


def test_roberta_mlm_plan_names_the_copies_and_ties():
    out = run_cli("check", str(FAMILIES_DIR / "TFRobertaForMaskedLM" / "tf"), "--to", "pytorch")
    assert "rules: hf-tf-generic" in out and "target: transformers RobertaForMaskedLM" in out
    assert "lm_head.decoder.weight = roberta.embeddings.word_embeddings.weight" in out
    assert "5 tensors: expected: a head's copy of the roberta layer's variables" in out


def test_gpt2_conv1d_kernels_are_not_transposed():
    out = run_cli("check", str(FAMILIES_DIR / "TFGPT2LMHeadModel" / "tf"), "--to", "pytorch")
    assert "h_._{0..1}/attn/c_attn/weight:0 -> transformer.h.{0..1}.attn.c_attn.weight  [identity]" in out
    assert "h_._{0..1}/attn/c_attn/bias:0 -> transformer.h.{0..1}.attn.c_attn.bias  [squeeze(0)]" in out
    assert "lm_head.weight = transformer.wte.weight" in out


def test_an_unsupported_family_is_refused_by_name():
    """TransfoXL: transformers 5 removed its classes, so no conversion into 5 can exist, and the refusal says so."""
    out = run_cli("check", str(UNSUPPORTED), "--to", "pytorch", code=2)
    assert "not supported" in out and "`transfo-xl`" in out and "TFTransfoXLModel" in out
    assert "transformers 5 has no class for it" in out
    assert "Traceback" not in out and "matched" not in out
    run_cli("convert", str(UNSUPPORTED), "--to", "pytorch", "-o", "/nonexistent/never", code=2)


def test_without_config_json_it_asks_for_one(tmp_path: Path):
    """Shapes cannot tell a transformers config (epsilons, activations, head sizes): no guessed defaults."""
    import shutil

    shutil.copy(FAMILIES_DIR / "TFRobertaModel" / "tf" / "tf_model.h5", tmp_path / "tf_model.h5")
    out = run_cli("check", str(tmp_path), "--to", "pytorch", code=2)
    assert "config" in out and "--config" in out
    out = run_cli(
        "check",
        str(tmp_path),
        "--to",
        "pytorch",
        "--config",
        str(FAMILIES_DIR / "TFRobertaModel" / "tf" / "config.json"),
    )
    assert "verdict: OK" in out


def test_the_generic_rules_claim_only_their_families():
    from bridge.families.hf_tf import generic_pack as hf_tf_generic

    pack = hf_tf_generic.PACK
    assert pack.map_name("bert/tf_bert_model/bert/encoder/layer_._0/attention/self/query/kernel:0") is None
    # RoBERTa-PreLayerNorm's scope starts as RoBERTa's does: its own family's rules map it, never RoBERTa's
    scope = "roberta_prelayernorm/tf_roberta_pre_layer_norm_model/roberta_prelayernorm"
    hit = pack.map_name(f"{scope}/encoder/layer_._0/output/dense/kernel:0")
    assert hit is not None and hit[0] == "roberta_prelayernorm.encoder.layer.0.output.dense.weight"
    assert (
        pack.map_name("roberta/tf_roberta_pre_layer_norm_model/roberta/encoder/layer_._0/output/dense/kernel:0") is None
    )
    hit = pack.map_name("roberta/tf_roberta_model_1/roberta/encoder/layer_._11/output/dense/kernel:0")
    assert hit is not None and hit[0] == "roberta.encoder.layer.11.output.dense.weight" and str(hit[1]) == "transpose"


def test_a_check_compiles_only_the_rules_of_the_files_family():
    """Hundreds of per-family regexes: those of families a file does not hold are never compiled (``Rule.needs``),
    so adding families does not slow a check of another checkpoint."""
    import bridge
    from bridge.families.hf_tf import generic_pack as hf_tf_generic

    fresh = [r for r in hf_tf_generic.PACK.matching.rules if r.needs]
    assert len(fresh) > 500
    for rule in fresh:  # as a new process has them: earlier tests of this process compiled some
        rule.__dict__.pop("_rx", None)
    plan = bridge.check(FAMILIES_DIR / "TFDistilBertModel" / "tf", to="pytorch")
    assert plan.ok
    compiled = {r.needs for r in fresh if "_rx" in r.__dict__}
    assert compiled == {"tf_distil_bert_"}, compiled
