"""The bertseq2seq pack's ways up to the floors above the rules: each imports its module only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.core.verify_report import ForwardContext, VerifyReport


def forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """:func:`bridge.families.seq2seq.forward_check.seq2seq_forward_check`."""
    from bridge.families.seq2seq.forward_check import seq2seq_forward_check

    seq2seq_forward_check(report, ctx)
