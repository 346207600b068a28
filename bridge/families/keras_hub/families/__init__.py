"""The KerasHub families, one module each (or one per shape where families share a table), and their registry."""

from __future__ import annotations

from bridge.families.keras_hub.families.albert import ALBERT
from bridge.families.keras_hub.families.bert import BERT
from bridge.families.keras_hub.families.deberta_v3 import DEBERTA_V3
from bridge.families.keras_hub.families.decoder import LLAMA, MISTRAL, QWEN2
from bridge.families.keras_hub.families.distilbert import DISTILBERT
from bridge.families.keras_hub.families.electra import ELECTRA
from bridge.families.keras_hub.families.gemma import GEMMA
from bridge.families.keras_hub.families.gpt2 import GPT2
from bridge.families.keras_hub.families.roberta import ROBERTA, XLM_ROBERTA
from bridge.families.keras_hub.table import Family

FAMILIES: tuple[Family, ...] = (
    BERT,
    LLAMA,
    MISTRAL,
    QWEN2,
    GPT2,
    DISTILBERT,
    GEMMA,
    ROBERTA,
    XLM_ROBERTA,
    ELECTRA,
    ALBERT,
    DEBERTA_V3,
)
BY_BACKBONE: dict[str, Family] = {f.backbone: f for f in FAMILIES}
BY_MODEL_TYPE: dict[str, Family] = {f.model_type: f for f in FAMILIES}
