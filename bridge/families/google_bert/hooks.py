"""The google-bert and hf-tf pack's ways up to the floors above the rules: each imports its module only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.core.verify_report import ForwardContext, VerifyReport


def forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """:func:`bridge.families.google_bert.forward_check.bert_forward_check`."""
    from bridge.families.google_bert.forward_check import bert_forward_check

    bert_forward_check(report, ctx)
