"""``bridge verify``: prove a conversion.

Two checks, each reported on its own:

* **values**: every matched tensor of the output equals the source tensor after
  the plan's transform, bit for bit (after the requested cast, if any), and every
  second copy a TF output stores equals the tensor it copies;
* **forward**: where the pack declares a forward check (``RulePack.forward_check``: a model
  on each side, such as a TF2 reference forward and the transformers class), the same
  seeded inputs go through both and every output is compared (max abs / max rel
  difference, ``atol``).
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np

from bridge.api import load
from bridge.commands.check import run_check
from bridge.commands.plan_request import PlanRequest
from bridge.core import dtypes
from bridge.core.keras_hub_preset import sniff_keras_hub_preset
from bridge.core.model import Checkpoint
from bridge.core.plan import Assumption, Plan
from bridge.core.source import as_path
from bridge.core.transforms import assemble, parse
from bridge.core.verify_report import ForwardContext, VerifyReport
from bridge.quiet import quietly
from bridge.rules import get_pack


def verify(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    atol: float = 1e-5,
    seed: int = 0,
    batch: int = 2,
    seq_len: int = 16,
    forward: bool = True,
    rules: str | None = None,
    maps: tuple[str, ...] = (),
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    source_format: str | None = None,
    target: str | None = None,
    source_model: str | None = None,
    dropped_heads: bool = False,
) -> VerifyReport:
    """Compare a converted checkpoint ``out`` with its ``source``.

    Args:
        source: what was converted.
        out: the conversion's output (directory or checkpoint).
        atol: largest allowed absolute difference of forward outputs.
        seed: seeds the random inputs (token ids, segment ids, a padded row).
        batch, seq_len: input shape (``seq_len`` is capped by the model's positions).
        forward: run the forward comparison where possible.
        rules, maps, strip_prefix, add_prefix, config, source_format: what the conversion was made
            with (as for :func:`bridge.check`); the plan they give is the one verified.
        target: for a structural pack (Keras), ``file.py:factory`` of the model on the output's side
            (the PyTorch twin, or the Keras model), as given to ``convert``.
        source_model: for a structural pack, ``file.py:factory`` of the model on the source's side
            when the source cannot build it (a weights-only Keras file, a PyTorch state dict).
        dropped_heads: the output was converted to a class without some of the source's heads on purpose
            (``convert --target CLASS``): those heads are listed as dropped, not failed.  Any other source tensor
            the output lacks still fails.

    Returns:
        A :class:`VerifyReport`; ``ok`` when all values are bit-exact and all outputs within ``atol``.
    """
    request = PlanRequest.parse(
        target=target,
        config=config,
        rules=rules,
        maps=maps,
        strip_prefix=strip_prefix,
        add_prefix=add_prefix,
        source_format=source_format,
    )
    return run_verify(
        source,
        out,
        request,
        atol=atol,
        seed=seed,
        batch=batch,
        seq_len=seq_len,
        forward=forward,
        source_model=source_model,
        dropped_heads=dropped_heads,
    )


@quietly
def run_verify(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    request: PlanRequest,
    *,
    atol: float = 1e-5,
    seed: int = 0,
    batch: int = 2,
    seq_len: int = 16,
    forward: bool = True,
    source_model: str | None = None,
    dropped_heads: bool = False,
) -> VerifyReport:
    """:func:`verify` of a parsed :class:`PlanRequest` (the CLI's); its ``to`` follows from ``out``, its ``target``
    is the factory of the model on OUT's side, if any (the plan's target is OUT itself)."""
    report = VerifyReport(str(source), str(out), atol)
    folder = as_path(out)
    if folder.is_dir() and (folder / "model.weights.h5").is_file() and not sniff_keras_hub_preset(folder):
        out = as_path(out) / "model.weights.h5"  # what convert writes for a Keras target
    with load(out) as out_ckpt:
        to = "pytorch" if out_ckpt.framework == "pytorch" else "tensorflow"
    plan = run_check(source, replace(request, to=to, target=str(out)))
    report.assumptions = plan.assumed  # the verdict carries them, not the notes
    report.notes.extend(n for n in plan.notes if not n.startswith("config:") and not isinstance(n, Assumption))
    with load(source, format=request.source_format) as src, load(out) as dst:
        _plan_gaps(report, plan, src, dst, to=to, dropped_heads=dropped_heads)
        by_target: dict[str, list[Any]] = {}
        for m in plan.matched:
            by_target.setdefault(m.target, []).append(m)
        for target_name, matches in by_target.items():  # a target of several parts: stacked or added, as written
            report.values_compared += len(matches)
            transforms = [parse(m.transform) for m in matches]
            expected = assemble([(t, t.apply(src[m.source].numpy())) for t, m in zip(transforms, matches, strict=True)])
            got = dst[target_name].numpy()
            if got.dtype != expected.dtype and dtypes.dtype_name(got.dtype) != dtypes.STRING:
                expected = expected.astype(got.dtype)
            if expected.shape == got.shape and _same_bytes(expected, got):
                report.values_equal += len(matches)
            else:
                report.value_failures.append(f"{' + '.join(m.source for m in matches)} -> {target_name}: values differ")
        if to == "tensorflow":  # a TF layout's second copies (hf-tf's masked-LM embeddings) equal their owners
            for tie in plan.tied:
                report.values_compared += 1
                if _same_bytes(dst[tie.name].numpy(), dst[tie.tied_to].numpy()):
                    report.values_equal += 1
                else:
                    report.value_failures.append(f"{tie.name}: differs from `{tie.tied_to}`, which it copies")
        if not forward:
            return report
        if (src.framework == "pytorch") == (dst.framework == "pytorch"):
            report.notes.append("no forward check: both sides are the same framework, so equal values compute the same")
            return report
        pack = plan.rule_pack or get_pack(plan.pack)
        if pack.forward_check is None:
            report.notes.append(f"no forward check for the {plan.pack} rules: values compared only")
        else:
            context = ForwardContext(
                src,
                dst,
                to,
                as_path(source),
                as_path(out),
                plan,
                seed,
                batch,
                seq_len,
                request.target,
                source_model,
                request.strip_prefix,
                request.add_prefix,
            )
            pack.forward_check(report, context)
    return report


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return bool(np.array_equal(a, b))
    return a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def _plan_gaps(
    report: VerifyReport, plan: Plan, src: Checkpoint, dst: Checkpoint, *, to: str, dropped_heads: bool
) -> None:
    """Source tensors the output leaves out: a convert run with --allow-gaps, or a head a target without it dropped
    (the plan calls that expected for the target the output is, but the output does not hold the source).  The
    other way round, output tensors no source fills are what convert wrote itself (a pack's copies, zeros)."""
    held = _held_as_a_tie(plan, src, dst) if to == "pytorch" else {}
    for name, owner in held.items():
        report.notes.append(f"`{name}` is stored once in the output: its values are `{owner}`'s (tied)")
    report.plan_gaps = [
        f"`{x.name}` {list(x.shape)}: " + (x.reason if not x.expected else f"not in the output ({x.head} dropped)")
        for x in plan.unused
        if not x.expected or (x.head is not None and x.name not in held and not dropped_heads)
    ]
    dropped = sorted({x.head for x in plan.unused if x.expected and x.head is not None and x.name not in held})
    if dropped_heads and dropped:
        report.notes.append(f"dropped on purpose (--dropped-heads): {', '.join(dropped)}")
    report.heads_only = bool(dropped) and all(x.expected for x in plan.unused) and not plan.mismatched
    report.plan_gaps += [f"`{x.source}` -> `{x.target}` mismatched: {x.detail}" for x in plan.mismatched]


def _held_as_a_tie(plan: Plan, src: Checkpoint, dst: Checkpoint) -> dict[str, str]:
    """Source tensors of a dropped head that the output holds anyway, under the name of the tensor they are tied to
    (a TF LM head kernel that is the word embeddings transposed, which a transformers class stores once): read
    against the output's names, the plan calls the head dropped, but nothing is lost.  Compared by value, matrices
    that are not constant only."""
    pack = plan.rule_pack or get_pack(plan.pack)
    held: dict[str, str] = {}
    for x in plan.unused:
        hit = pack.map_name(x.name) if x.expected and x.head is not None else None
        if hit is None:
            continue
        value = hit[1].apply(src[x.name].numpy())
        if value.ndim < 2 or value.dtype.kind not in "fc" or not np.any(value != value.flat[0]):
            continue  # a tie is a table or a kernel; a constant tensor equals any other of its shape
        for r in dst.values():
            if r.kind == "model" and tuple(r.shape) == value.shape and _same_bytes(value, r.numpy()):
                held[x.name] = r.name
                break
    return held
