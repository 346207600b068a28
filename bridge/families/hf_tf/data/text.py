"""Text encoders of transformers' TF layout (BERT-like stacks and their task heads)."""

from __future__ import annotations

from bridge.families.hf_tf.data import Family


def _classes(prefix: str, *heads: str) -> tuple[str, ...]:
    """The base class and the task classes every BERT-like TF family had, plus ``heads`` (``ForCausalLM``)."""
    tasks = ("ForMaskedLM", *heads, "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")
    return (f"{prefix}Model", *(prefix + t for t in tasks))


def _xlm_classes(prefix: str) -> tuple[str, ...]:
    tasks = ("WithLMHeadModel", "ForSequenceClassification", "ForQuestionAnsweringSimple", "ForTokenClassification")
    return (f"{prefix}Model", *(prefix + t for t in (*tasks, "ForMultipleChoice")))


_XLM_HEADS = ("pred_layer_._proj", "sequence_summary", "qa_outputs", "classifier", "logits_proj")
# ESM's rotary frequencies, saved by every TF layer: (model scope + encoder prefix, layer, rest of the name)
_ESM_INV_FREQ = (
    r"(esm/(?:tf_esm_model|tf_esm_for_masked_lm|tf_esm_for_sequence_classification|tf_esm_for_token_classification)"
    r"(?:_\d+)?/esm/encoder/layer_\._)({})(/attention/self/rotary_embeddings/inv_freq:0)"
)
_CLS_HEADS = ("mlm___cls", "sequence_summary", "classifier", "qa_outputs")
_ROBERTA_HEADS = ("lm_head", "classifier", "qa_outputs")
_DEBERTA_HEADS = ("cls", "pooler", "classifier", "qa_outputs")
_REL_EMBEDDINGS = (r"rel_embeddings\.weight", "rel_embeddings.weight", "identity")

FAMILIES = (
    Family(
        "distilbert",
        "distilbert",
        ("DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
         "DistilBertForTokenClassification", "DistilBertForQuestionAnswering", "DistilBertForMultipleChoice"),
        heads=("pre_classifier", "classifier", "qa_outputs", "vocab_transform", "vocab_layer_norm", "vocab_projector"),
    ),
    Family(
        "roberta",
        "roberta",
        ("RobertaModel", "RobertaForMaskedLM", "RobertaForCausalLM", "RobertaForSequenceClassification",
         "RobertaForTokenClassification", "RobertaForQuestionAnswering", "RobertaForMultipleChoice"),
        heads=_ROBERTA_HEADS,
    ),
    # RoBERTa's layout under other class names (the main layer is still `roberta`)
    Family("xlm-roberta", "roberta", _classes("XLMRoberta", "ForCausalLM", "ForMultipleChoice"), _ROBERTA_HEADS),
    Family("camembert", "roberta", _classes("Camembert", "ForCausalLM", "ForMultipleChoice"), _ROBERTA_HEADS),
    # ELECTRA: the discriminator's head (ForPreTraining), the generator's (ForMaskedLM, its decoder the embeddings),
    # multiple choice through a SequenceSummary
    Family(
        "electra",
        "electra",
        _classes("Electra", "ForPreTraining", "ForMultipleChoice"),
        heads=("discriminator_predictions", "generator_predictions", "generator_lm_head", "sequence_summary",
               "classifier", "qa_outputs"),
    ),
    # ALBERT: one shared layer group (albert_layer_groups_._G/albert_layers_._I), an embedding projection
    Family(
        "albert",
        "albert",
        _classes("Albert", "ForPreTraining", "ForMultipleChoice"),
        heads=("predictions", "sop_classifier", "classifier", "qa_outputs"),
        # TFAlbertMLMHead adds `decoder/bias` to the logits; PyTorch's decoder bias is tied to `predictions.bias`
        rules=((r"decoder/bias", "bias", "identity"),),
        unread=((r"predictions/bias", "TFAlbertMLMHead adds `predictions/decoder/bias` to the logits instead"),),
    ),
    # MPNet: the relative attention bias is an embedding table of the encoder; every TF class builds the pooler.
    # TF buckets relative positions by the config's count, transformers 5's PyTorch forward by 32 always
    Family(
        "mpnet",
        "mpnet",
        _classes("MPNet", "ForMultipleChoice"),
        _ROBERTA_HEADS,
        main_heads=("pooler",),
        constraints=(
            ("relative_attention_num_buckets", 32, "transformers 5's MPNet buckets relative positions by 32 whatever "
             "the config says, where TF used the config's count"),
        ),
    ),
    # DeBERTa-v2: the relative-position table is one variable named `rel_embeddings.weight`; the encoder's Conv1D
    # kernel is [width, in, out], PyTorch's Conv1d weight [out, in, width]
    Family(
        "deberta-v2",
        "deberta",
        _classes("DebertaV2", "ForMultipleChoice"),
        heads=_DEBERTA_HEADS,
        rules=(_REL_EMBEDDINGS, (r"(conv)/kernel", "{}.weight", "permute(2,1,0)")),
        # share_att_key false: the attention's own position projections, which PyTorch names after key and query
        renames=((r".*", r"\.pos_proj\.", ".pos_key_proj."), (r".*", r"\.pos_q_proj\.", ".pos_query_proj.")),
    ),
    # DeBERTa (v1, no multiple choice in TF): also its attention's separate query and value biases
    Family(
        "deberta",
        "deberta",
        _classes("Deberta"),
        heads=_DEBERTA_HEADS,
        rules=(_REL_EMBEDDINGS, (r"(q_bias|v_bias)", "{}", "identity")),
    ),
    Family("longformer", "longformer", _classes("Longformer", "ForMultipleChoice"), _ROBERTA_HEADS),
    # RoBERTa with the LayerNorms before each block (its own main layer; its scope starts as RoBERTa's does)
    Family(
        "roberta-prelayernorm",
        "roberta_prelayernorm",
        _classes("RobertaPreLayerNorm", "ForCausalLM", "ForMultipleChoice"),
        _ROBERTA_HEADS,
    ),
    # XLM and FlauBERT: lists as `attentions_._0`, `layer_norm1_._0`; the LM head's top layer `pred_layer_._proj`
    # (PyTorch's pred_layer.proj) holds the bias, its weight the word embeddings
    Family("xlm", "transformer", _xlm_classes("XLM"), _XLM_HEADS),
    Family("flaubert", "transformer", _xlm_classes("Flaubert"), _XLM_HEADS),
    # BERT-like stacks whose MLM head's top layer is `mlm___cls` (PyTorch's `cls`, transformers' `$1___$2`)
    Family("roformer", "roformer", _classes("RoFormer", "ForCausalLM", "ForMultipleChoice"), _CLS_HEADS),
    Family("rembert", "rembert", _classes("RemBert", "ForCausalLM", "ForMultipleChoice"), _CLS_HEADS),
    Family("layoutlm", "layoutlm", _classes("LayoutLM"), _CLS_HEADS),
    # ConvBERT: ELECTRA's generator head; the span convolution is a Keras SeparableConv1D (depthwise [k, in, 1],
    # pointwise [1, in, out], bias [out]: torch's [in, 1, k], [out, in, 1], [out, 1]); with num_groups > 1 the
    # feed-forward `dense` kernels are grouped, [out/g, in/g, g] for torch's [g, in/g, out/g]: all axes reversed,
    # as a Dense kernel's two are
    Family(
        "convbert",
        "convbert",
        _classes("ConvBert", "ForMultipleChoice"),
        heads=("generator_predictions", "generator_lm_head", "sequence_summary", "classifier", "qa_outputs"),
        rules=(
            (r"(depthwise)_kernel", "{}.weight", "permute(1,2,0)"),
            (r"(pointwise)_kernel", "{}.weight", "permute(2,1,0)"),
            (r"(key_conv_attn_layer)/bias", "{}.bias", "unsqueeze(1)"),
            (r"(dense)/kernel", "{}.weight", "reverse"),
        ),
    ),
    # MobileBERT: heads `predictions___cls` and `seq_relationship___cls` (PyTorch's `cls`)
    Family(
        "mobilebert",
        "mobilebert",
        _classes("MobileBert", "ForPreTraining", "ForNextSentencePrediction", "ForMultipleChoice"),
        heads=("predictions___cls", "seq_relationship___cls", "classifier", "qa_outputs"),
    ),
    # Funnel: blocks as `blocks_._0_._0` (PyTorch's blocks.0.0); the relative attention's own variables
    Family(
        "funnel",
        "funnel",
        ("FunnelBaseModel", *_classes("Funnel", "ForPreTraining", "ForMultipleChoice")),
        heads=("lm_head", "discriminator_predictions", "classifier", "qa_outputs"),
        rules=((r"(r_kernel|r_r_bias|r_s_bias|r_w_bias|seg_embed)", "{}", "identity"),),
        main_heads=("decoder",),  # the base model (FunnelBaseModel) has no upsampling decoder
    ),
    # ESM: the contact head inside the main layer; with rotary positions (ESM-2) each TF layer saves the rotary
    # `inv_freq`, transformers 5 keeps one for the model (its load hook takes layer 0's), and the absolute
    # position table TF always builds is never read (transformers 5 builds none)
    Family(
        "esm",
        "esm",
        ("EsmModel", "EsmForMaskedLM", "EsmForSequenceClassification", "EsmForTokenClassification"),
        heads=("lm_head", "classifier"),
        main_heads=("pooler", "embeddings/position_embeddings"),
        unscoped=((_ESM_INV_FREQ.format("0"), "esm.rotary_embeddings.inv_freq", "identity"),),
        unscoped_copies=(
            (_ESM_INV_FREQ.format(r"(?!0/)\d+"), r"\g<1>0\3", "each TF layer saves the rotary frequencies again; "
             "transformers 5 keeps layer 0's for the model"),
        ),
    ),
    # TAPAS: seven token-type tables; the QA head's cell and column scorers are variables saved outside the model
    # scope (`compute_token_logits/output/output_weights:0`), PyTorch's top-level `output_weights`...
    Family(
        "tapas",
        "tapas",
        ("TapasModel", "TapasForMaskedLM", "TapasForSequenceClassification", "TapasForQuestionAnswering"),
        heads=("cls", "classifier", "aggregation_classifier"),
        unscoped=(
            (r"compute_token_logits/output/(output_weights|output_bias):0", "{1}", "identity"),
            (r"compute_column_logits/column_output/(column_output_weights|column_output_bias):0", "{1}", "identity"),
        ),
        unscoped_heads=("compute_token_logits", "compute_column_logits"),
    ),
    # DPR: a BERT main layer (`bert_model`) inside each class's own top layer, so one family per top layer
    Family("dpr", "ctx_encoder", ("DPRContextEncoder",)),
    Family("dpr", "question_encoder", ("DPRQuestionEncoder",)),
    Family("dpr", "span_predictor", ("DPRReader",)),
)  # fmt: skip
