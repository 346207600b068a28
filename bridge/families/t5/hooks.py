"""The t5 pack's ways up to the floors above the rules: each imports its module only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.core.verify_report import ForwardContext, VerifyReport


def forward_check(report: VerifyReport, ctx: ForwardContext) -> None:
    """:func:`bridge.families.t5.forward_check.t5_forward_check`."""
    from bridge.families.t5.forward_check import t5_forward_check

    t5_forward_check(report, ctx)
