"""The KerasHub families, one module each (or one per shape where families share a table), and their registry."""

from __future__ import annotations

from bridge.families.keras_hub.families.albert import ALBERT
from bridge.families.keras_hub.families.bart import BART
from bridge.families.keras_hub.families.bert import BERT
from bridge.families.keras_hub.families.deberta_v3 import DEBERTA_V3
from bridge.families.keras_hub.families.decoder import LLAMA, MISTRAL, QWEN2, QWEN3
from bridge.families.keras_hub.families.deit import DEIT
from bridge.families.keras_hub.families.dinov2 import DINOV2
from bridge.families.keras_hub.families.distilbert import DISTILBERT
from bridge.families.keras_hub.families.electra import ELECTRA
from bridge.families.keras_hub.families.esm import ESM
from bridge.families.keras_hub.families.fnet import FNET
from bridge.families.keras_hub.families.gemma import GEMMA
from bridge.families.keras_hub.families.gemma2 import GEMMA2
from bridge.families.keras_hub.families.gemma3 import GEMMA3
from bridge.families.keras_hub.families.gpt2 import GPT2
from bridge.families.keras_hub.families.gpt_neox import GPT_NEOX
from bridge.families.keras_hub.families.mixtral import MIXTRAL
from bridge.families.keras_hub.families.opt import OPT
from bridge.families.keras_hub.families.phi3 import PHI3
from bridge.families.keras_hub.families.roberta import ROBERTA, XLM_ROBERTA
from bridge.families.keras_hub.families.t5 import T5, T5_GATED
from bridge.families.keras_hub.families.vit import VIT
from bridge.families.keras_hub.families.whisper import WHISPER
from bridge.families.keras_hub.families.xlnet import XLNET
from bridge.families.keras_hub.table import Config, Family

FAMILIES: tuple[Family, ...] = (
    BERT,
    LLAMA,
    MISTRAL,
    QWEN2,
    GPT2,
    DISTILBERT,
    GEMMA,
    QWEN3,
    GEMMA2,
    ROBERTA,
    XLM_ROBERTA,
    ELECTRA,
    ALBERT,
    DEBERTA_V3,
    BART,
    VIT,
    WHISPER,
    OPT,
    PHI3,
    MIXTRAL,
    T5_GATED,
    T5,
    GEMMA3,
    GPT_NEOX,
    DINOV2,
    DEIT,
    ESM,
    FNET,
    XLNET,
)
BY_BACKBONE: dict[str, tuple[Family, ...]] = {
    name: tuple(f for f in FAMILIES if f.backbone == name) for name in {f.backbone for f in FAMILIES}
}
BY_MODEL_TYPE: dict[str, Family] = {f.model_type: f for f in FAMILIES}


def family_of(backbone: str, config: Config) -> Family | None:
    """The family of a preset: its backbone class's, the one whose ``claims`` holds where several share it."""
    return next((f for f in BY_BACKBONE.get(backbone, ()) if f.claims is None or f.claims(config)), None)
