"""Decoders and encoder-decoders of transformers' TF layout.

Names read from files transformers 4.57.6 wrote (``tests/fixtures/hf-tf-families/``).  BART-like models (BART,
mBART, Marian, Pegasus) save their shared embedding outside the model scope as ``model/model.shared/model.shared/
embeddings:0`` and the LM head's ``final_logits_bias/final_logits_bias:0`` (a non-trainable TF weight, a buffer in
PyTorch); their layer lists are ``layers.N`` (a dot, as in PyTorch), which the generic layer path carries through.
Marian's and Pegasus' sinusoidal position tables are TF weights too: transformers 4.x converted them, and
transformers 5 keeps them as frozen parameters (in the state dict), so they are converted like any table: the
values TF stored, which are transformers 5's own sinusoids to float32 rounding (4.57's MarianMTModel left them out
of its saved state dict, and transformers rebuilt them on load).  T5 has no main layer:
``shared``, ``encoder`` and ``decoder`` are top layers, and the encoder and decoder save ``shared`` again.
"""

from __future__ import annotations

from bridge.families.hf_tf.data import Family, vision
from bridge.families.t5 import pack as t5

_SHARED_BART = (r"model/model\.shared/model\.shared/embeddings:0", "model.shared.weight", "identity")
_FINAL_LOGITS_BIAS = (r"final_logits_bias/final_logits_bias:0", "final_logits_bias", "identity")
# GPT-2's Conv1D: the weight is [in, out] on both sides (no transpose); the bias is stored [1, out]
_CONV1D_BIAS = (r"(c_attn|c_proj|c_fc|q_attn)/bias", "{}.bias", "squeeze(0)")
_VIT = next(f for f in vision.FAMILIES if f.model_type == "vit")
# an encoder-decoder's encoder is a base model: TF names it under its main layer (`encoder/bert/...`), PyTorch not
_ENCODER_ALONE = (".*", r"^encoder\.[^.]+\.", "encoder.")
_T5_SHARED = (r"shared/shared/shared/embeddings:0", "shared.weight", "identity")
_T5_COPIES = (r"(?:encoder|decoder)/shared/shared/embeddings:0", "shared/shared/shared/embeddings:0",
              "the encoder's or decoder's copy of the shared embedding: the same variable, stored once")  # fmt: skip


def _t5(model_type: str, prefix: str) -> Family:
    """T5's main layer is its encoder: the decoder and lm_head (untied in T5 v1.1 / mT5) are what the encoder-only
    class drops.  transformers 5 forces tie_word_embeddings on for T5 and mT5 and unties lm_head on load where the
    checkpoint's differs: the Mesh TF pack's layouts say which lm_head is a tensor of its own."""
    generation = f"{prefix}ForConditionalGeneration"
    return Family(
        model_type,
        "encoder",
        (f"{prefix}Model", generation, f"{prefix}EncoderModel"),
        heads=("decoder", "lm_head"),
        unscoped=(_T5_SHARED,),
        unscoped_copies=(_T5_COPIES,),
        layouts={generation: t5.PACK.pt.targets[generation]},
    )


def _bart_like(model_type: str, classes: tuple[str, ...], heads: tuple[str, ...] = ()) -> Family:
    return Family(
        model_type,
        "model",
        classes,
        heads=heads,
        unscoped=(_SHARED_BART, _FINAL_LOGITS_BIAS),
        unscoped_heads=("final_logits_bias",),
    )


FAMILIES = (
    Family(
        "gpt2",
        "transformer",
        ("GPT2Model", "GPT2LMHeadModel", "GPT2ForSequenceClassification"),
        heads=("score",),
        rules=(_CONV1D_BIAS,),
        also=("gpt-sw3",),
    ),
    _t5("t5", "T5"),
    _t5("mt5", "MT5"),
    _bart_like("bart", ("BartModel", "BartForConditionalGeneration", "BartForSequenceClassification"),
               ("classification_head",)),
    Family("opt", "model", ("OPTModel", "OPTForCausalLM")),
    _bart_like("marian", ("MarianModel", "MarianMTModel")),
    _bart_like("mbart", ("MBartModel", "MBartForConditionalGeneration")),
    _bart_like("pegasus", ("PegasusModel", "PegasusForConditionalGeneration")),
    Family(
        "xlnet",
        "transformer",
        ("XLNetModel", "XLNetLMHeadModel", "XLNetForSequenceClassification", "XLNetForTokenClassification",
         "XLNetForQuestionAnsweringSimple", "XLNetForMultipleChoice"),
        heads=("lm_loss", "sequence_summary", "logits_proj", "classifier", "qa_outputs"),
        # relative attention: q, k, v, o, r are [d_model, n_head, d_head] and the biases [n_head, d_head] on both
        # sides (einsum, no Dense); mask_emb [1, 1, d_model] sits directly under the main layer
        rules=((r"(q|k|v|o|r|r_r_bias|r_s_bias|r_w_bias|seg_embed|mask_emb)", "{}", "identity"),),
    ),
    Family(
        "whisper",
        "model",
        ("WhisperModel", "WhisperForConditionalGeneration"),
        # Conv1D kernels: Keras [width, in, out], torch [out, in, width]
        rules=((r"(conv1|conv2)/kernel", "{}.weight", "permute(2,1,0)"),),
    ),
    # round 2
    _bart_like("blenderbot", ("BlenderbotModel", "BlenderbotForConditionalGeneration")),
    _bart_like("blenderbot-small", ("BlenderbotSmallModel", "BlenderbotSmallForConditionalGeneration")),
    Family(
        "led",
        "led",
        ("LEDModel", "LEDForConditionalGeneration"),
        unscoped=((r"led/led\.shared/led\.shared/embeddings:0", "led.shared.weight", "identity"), _FINAL_LOGITS_BIAS),
        unscoped_heads=("final_logits_bias",),
    ),
    Family(
        "gptj",
        "transformer",
        ("GPTJModel", "GPTJForCausalLM", "GPTJForSequenceClassification", "GPTJForQuestionAnswering"),
        heads=("lm_head", "score", "qa_outputs"),
    ),
    Family(
        "openai-gpt",
        "transformer",
        ("OpenAIGPTModel", "OpenAIGPTLMHeadModel", "OpenAIGPTDoubleHeadsModel", "OpenAIGPTForSequenceClassification"),
        heads=("multiple_choice_head", "score"),
        rules=(_CONV1D_BIAS,),
    ),
    Family("xglm", "model", ("XGLMModel", "XGLMForCausalLM"), heads=("lm_head",)),
    Family(
        "mistral",
        "model",
        ("MistralModel", "MistralForCausalLM", "MistralForSequenceClassification"),
        heads=("lm_head", "score"),
    ),
    Family(
        "ctrl",
        "transformer",
        ("CTRLModel", "CTRLLMHeadModel", "CTRLForSequenceClassification"),
        heads=("lm_head", "classifier"),
        # the LM head's only variable is its bias, stored [1, vocab] (its weight is the tied embedding `w`)
        rules=((r"(?<=lm_head/)bias", "bias", "squeeze(0)"),),
    ),
    Family(
        "speech_to_text",
        "model",
        ("Speech2TextModel", "Speech2TextForConditionalGeneration"),
        heads=("lm_head",),
        # Conv1D kernels: Keras [width, in, out], torch [out, in, width]
        rules=((r"(conv_layers\.\d+)/kernel", "{}.weight", "permute(2,1,0)"),),
    ),
    # two models of other families, `encoder` and `decoder` top layers (and a projection where their sizes differ):
    # proven with a BERT encoder and a GPT-2 decoder, a ViT encoder and a GPT-2 decoder; the rules are those of
    # these families, so another pair's names the target lacks are gaps in the plan, never a guess
    Family(
        "encoder-decoder",
        "encoder",
        ("EncoderDecoderModel",),
        heads=("decoder", "enc_to_dec_proj"),
        rules=(_CONV1D_BIAS,),
        renames=(_ENCODER_ALONE,),
    ),
    Family(
        "vision-encoder-decoder",
        "encoder",
        ("VisionEncoderDecoderModel",),
        heads=("decoder", "enc_to_dec_proj"),
        rules=(*_VIT.rules, _CONV1D_BIAS),
        renames=(_ENCODER_ALONE, *_VIT.renames),
    ),
)  # fmt: skip
