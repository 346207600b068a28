"""What the way back (PyTorch -> ``tf_model.h5``, :mod:`bridge.families.hf_tf.tf_back`) needs per family beyond the
forward rules: the head that saves the main layer's sublayer a second time, and the leaves the layer kind does not
tell (read in transformers 4.57's TF modeling code: which layers add their weight themselves)."""

from __future__ import annotations

# model_type -> (head top layer, the main layer's sublayer it holds): a tied decoder's copy 4.57 saves
HEAD_COPIES: dict[str, tuple[tuple[str, str], ...]] = {
    **{t: (("lm_head", "embeddings"),) for t in ("camembert", "esm", "funnel", "longformer", "mpnet", "roberta",
                                                  "roberta-prelayernorm", "xlm-roberta")},
    **{t: (("cls", "embeddings"),) for t in ("deberta", "deberta-v2", "lxmert", "tapas")},
    **{t: (("mlm___cls", "embeddings"),) for t in ("layoutlm", "roformer")},
    **{t: (("generator_lm_head", "embeddings"),) for t in ("convbert", "electra")},
    **{t: (("pred_layer_._proj", "embeddings"),) for t in ("flaubert", "xlm")},
    "albert": (("predictions", "embeddings"),),
    "distilbert": (("vocab_projector", "embeddings"),),
    "xlnet": (("lm_loss", "word_embedding"),),
}  # fmt: skip

# model_type -> (regex over PyTorch names, TF leaf): GPT-2's Conv1D keeps `weight`, T5's layer norm adds `weight`
_CONV1D = (r".*\.(?:c_attn|c_fc|c_proj|q_attn)\.weight", "weight")
TF_LEAVES: dict[str, tuple[tuple[str, str], ...]] = {
    "gpt2": (_CONV1D,),
    "openai-gpt": (_CONV1D,),
    "t5": ((r".*layer_norm\.weight", "weight"), (r".*relative_attention_bias\.weight", "embeddings")),
    "mt5": ((r".*layer_norm\.weight", "weight"), (r".*relative_attention_bias\.weight", "embeddings")),
}
