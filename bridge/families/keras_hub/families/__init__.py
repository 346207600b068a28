"""The KerasHub families, one module each (or one per shape where families share a table), and their registry."""

from __future__ import annotations

from bridge.families.keras_hub.families.albert import ALBERT
from bridge.families.keras_hub.families.bart import BART
from bridge.families.keras_hub.families.bert import BERT
from bridge.families.keras_hub.families.bloom import BLOOM
from bridge.families.keras_hub.families.clip import CLIP
from bridge.families.keras_hub.families.deberta_v3 import DEBERTA_V3
from bridge.families.keras_hub.families.decoder import LLAMA, LLAMA3, MISTRAL, QWEN2, QWEN3
from bridge.families.keras_hub.families.deit import DEIT
from bridge.families.keras_hub.families.depth_anything import DEPTH_ANYTHING
from bridge.families.keras_hub.families.dinov2 import DINOV2
from bridge.families.keras_hub.families.dinov3 import DINOV3
from bridge.families.keras_hub.families.distilbert import DISTILBERT
from bridge.families.keras_hub.families.efficientnet import EFFICIENTNET
from bridge.families.keras_hub.families.electra import ELECTRA
from bridge.families.keras_hub.families.esm import ESM
from bridge.families.keras_hub.families.falcon import FALCON
from bridge.families.keras_hub.families.fnet import FNET
from bridge.families.keras_hub.families.gemma import GEMMA
from bridge.families.keras_hub.families.gemma2 import GEMMA2
from bridge.families.keras_hub.families.gemma3 import GEMMA3
from bridge.families.keras_hub.families.gemma3_vision import GEMMA3_VISION
from bridge.families.keras_hub.families.gemma4 import GEMMA4, GEMMA4_PUBLISHED
from bridge.families.keras_hub.families.gpt2 import GPT2
from bridge.families.keras_hub.families.gpt_neox import GPT_NEOX
from bridge.families.keras_hub.families.gpt_oss import GPT_OSS
from bridge.families.keras_hub.families.metaclip_2 import METACLIP_2
from bridge.families.keras_hub.families.mit import MIT
from bridge.families.keras_hub.families.mixtral import MIXTRAL
from bridge.families.keras_hub.families.moonshine import MOONSHINE
from bridge.families.keras_hub.families.opt import OPT
from bridge.families.keras_hub.families.pali_gemma import PALI_GEMMA
from bridge.families.keras_hub.families.phi3 import PHI3
from bridge.families.keras_hub.families.qwen3_5 import QWEN3_5, QWEN3_5_PUBLISHED
from bridge.families.keras_hub.families.qwen3_5_moe import QWEN3_5_MOE
from bridge.families.keras_hub.families.qwen_moe import QWEN2_MOE, QWEN3_MOE
from bridge.families.keras_hub.families.resnet import RESNET
from bridge.families.keras_hub.families.roberta import ROBERTA, XLM_ROBERTA
from bridge.families.keras_hub.families.sam import SAM
from bridge.families.keras_hub.families.segformer import SEGFORMER
from bridge.families.keras_hub.families.siglip import SIGLIP
from bridge.families.keras_hub.families.smollm3 import SMOLLM3
from bridge.families.keras_hub.families.swin import SWIN
from bridge.families.keras_hub.families.t5 import T5, T5_GATED
from bridge.families.keras_hub.families.t5gemma import T5GEMMA
from bridge.families.keras_hub.families.vit import VIT
from bridge.families.keras_hub.families.vit_det import VIT_DET
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
    BLOOM,
    FALCON,
    CLIP,
    QWEN2_MOE,
    QWEN3_MOE,
    LLAMA3,
    T5GEMMA,
    SMOLLM3,
    GPT_OSS,
    SIGLIP,
    ESM,
    FNET,
    XLNET,
    GEMMA3_VISION,
    QWEN3_5,
    MOONSHINE,
    DINOV3,
    SWIN,
    GEMMA4,
    PALI_GEMMA,
    METACLIP_2,
    MIT,
    SEGFORMER,
    QWEN3_5_PUBLISHED,
    QWEN3_5_MOE,
    DEPTH_ANYTHING,
    RESNET,
    GEMMA4_PUBLISHED,
    EFFICIENTNET,
    VIT_DET,
    SAM,
)
BY_BACKBONE: dict[str, tuple[Family, ...]] = {
    name: tuple(f for f in FAMILIES if f.backbone == name) for name in {f.backbone for f in FAMILIES}
}


def family_for(config: Config) -> Family | None:
    """The family a transformers config is written as, among those of its model_type: the one whose ``picks``
    holds for it (Llama 3 beside Llama), else the first whose ``claims`` holds for the Keras config it is written as
    (T5 gated or not)."""
    shared = tuple(f for f in FAMILIES if f.model_type == str(config.get("model_type")))
    picked = next((f for f in shared if f.picks is not None and f.picks(config)), None)
    if picked is not None:
        return picked
    rest = tuple(f for f in shared if f.picks is None)
    for family in rest:
        if family.writing is None or family.claims is None or family.claims(family.writing.keras_config(config)):
            return family
    return rest[-1] if rest else None


def family_of(backbone: str, config: Config) -> Family | None:
    """The family of a preset: its backbone class's, the one whose ``claims`` holds where several share it."""
    return next((f for f in BY_BACKBONE.get(backbone, ()) if f.claims is None or f.claims(config)), None)
