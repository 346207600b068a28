"""The pack's doorway to its forward check (front floor), imported only when ``verify`` runs it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.core.verify_report import ForwardContext, VerifyReport


def forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """:func:`bridge.families.keras_hub.forward_check.keras_hub_forward_check`."""
    from bridge.families.keras_hub.forward_check import keras_hub_forward_check

    keras_hub_forward_check(report, ctx)
