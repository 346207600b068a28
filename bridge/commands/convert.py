"""``bridge convert``: execute a checked plan, streaming tensors into an atomic output directory."""

from __future__ import annotations

import functools
import inspect
import os
import shlex
import shutil
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bridge.api import load
from bridge.commands.check import plan_checkpoint
from bridge.commands.plan_request import PlanRequest
from bridge.core import dtypes
from bridge.core.atomic import atomic_directory
from bridge.core.casting import CastReport
from bridge.core.errors import BridgeError, UsageError
from bridge.core.factory import is_factory
from bridge.core.invoked import command_name
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.outputs import OutTensor, write_config
from bridge.core.packs import RulePack
from bridge.core.plan import Plan
from bridge.core.source import as_path, local_only
from bridge.core.stream import cpu_count, using_workers
from bridge.core.transforms import Transform, assemble, parse
from bridge.ranks import RankGroup, shared_directory
from bridge.report import human_bytes
from bridge.rules import get_pack

_SIDE_FILES = ("vocab.txt",)  # copied beside the weights so tokenizers load from the output too
_GAPS_SHOWN = 3  # gaps named in convert's refusal; `bridge check` lists them all


class PlanHasGaps(BridgeError):
    """The plan would produce a model that computes something else."""

    exit_code = 1


@dataclass
class ConvertResult:
    """What ``convert`` wrote: the plan it executed, the files in ``out``, the bytes written and dropped (optimizer
    state, counters).  ``ok`` is the plan's (a plan with gaps is written only with ``allow_gaps``, and still exits
    1); a :class:`~bridge.core.reports.Report`."""

    plan: Plan
    out: Path
    files: list[str]
    tensors: int
    bytes_written: int
    dropped_bytes: int
    notes: list[str] = field(default_factory=list)
    casts: list[dict[str, Any]] = field(default_factory=list)  # --dtype: per (from, to), see CastReport
    workers: int = 1
    ranks: int = 1

    @property
    def ok(self) -> bool:
        return self.plan.ok

    @property
    def exit_code(self) -> int:
        return self.plan.exit_code

    def to_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "files": self.files,
            "tensors": self.tensors,
            "bytes_written": self.bytes_written,
            "dropped_bytes": self.dropped_bytes,
            "notes": self.notes,
            "casts": self.casts,
            "workers": self.workers,
            "ranks": self.ranks,
            "plan": self.plan.to_json(),
        }


def convert(
    source: str | os.PathLike[str],
    *,
    to: str,
    out: str | os.PathLike[str],
    target: str | None = None,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    rules: str | None = None,
    maps: tuple[str, ...] = (),
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    source_format: str | None = None,
    out_format: str = "safetensors",
    max_shard_size: int | None = None,
    keep_optimizer: bool = False,
    dtype: str | None = None,
    force: bool = False,
    allow_gaps: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    group: RankGroup | None = None,
) -> ConvertResult:
    """Convert ``source`` to the ``to`` side into the directory ``out``.

    Args:
        source, to, target, config, rules, maps, strip_prefix, add_prefix, source_format: as for
            :func:`bridge.check`.
        out: the output directory; written atomically (temporary sibling, then rename).
        out_format: ``safetensors``, ``bin`` or ``dcp`` (a torch.distributed.checkpoint directory) for PyTorch;
            for TensorFlow the target layout's own files
            (``google-bert``: TF1 checkpoint; ``hf-tf``: ``tf_model.h5``), named by the layout.
        max_shard_size: bytes per shard, never splitting a tensor (a larger one gets its own shard): safetensors
            and transformers' ``tf_model.h5`` with an index file, a TF1 checkpoint as N data files.
        keep_optimizer: also write optimizer state, apart (``optimizer.safetensors``).
        dtype: cast floating tensors to this dtype (``float16``, ``bfloat16``, ``float32``), rounding to nearest,
            ties to even (:mod:`bridge.core.casting`); the result's ``casts`` and notes count what was cast and
            the values that overflowed to inf or became subnormal or zero.  Default: keep.
        force: replace an existing ``out``.
        allow_gaps: write even when the plan has gaps (the report still lists them).
        on_progress: called with (bytes written, bytes in all) after each tensor (progress bars).
        workers: threads reading, checksumming, transforming and casting the next tensors while one is written
            (default: the CPUs this process may use); the output's bytes are the same for any number, and memory
            stays about ``workers + 1`` times the largest tensor.
        group: the ranks of a torchrun job (:func:`bridge.ranks.joined`): every rank calls ``convert`` alike,
            each writes the safetensors shards it owns (shard k: rank k mod size; one file, ``bin`` and TF outputs:
            rank 0), rank 0 writes the index, configs and side files and renames the directory once all are done.
            Any rank's error is raised on every rank.  ``workers`` then defaults to this node's CPUs per rank.

    Returns:
        A :class:`ConvertResult` with the plan, the files and the byte counts.

    Raises:
        PlanHasGaps: the plan is not ``ok`` and ``allow_gaps`` is not set (exit code 1).
    """
    request = PlanRequest.parse(
        to=to,
        target=target,
        config=config,
        rules=rules,
        maps=maps,
        strip_prefix=strip_prefix,
        add_prefix=add_prefix,
        source_format=source_format,
    )
    return run_convert(
        source,
        request,
        out=out,
        out_format=out_format,
        max_shard_size=max_shard_size,
        keep_optimizer=keep_optimizer,
        dtype=dtype,
        force=force,
        allow_gaps=allow_gaps,
        on_progress=on_progress,
        workers=workers,
        group=group,
    )


def run_convert(
    source: str | os.PathLike[str],
    request: PlanRequest,
    *,
    out: str | os.PathLike[str],
    out_format: str = "safetensors",
    max_shard_size: int | None = None,
    keep_optimizer: bool = False,
    dtype: str | None = None,
    force: bool = False,
    allow_gaps: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    group: RankGroup | None = None,
) -> ConvertResult:
    """:func:`convert` of a parsed :class:`PlanRequest` (the CLI's)."""
    if dtype is not None and not dtypes.is_floating(dtype):
        raise UsageError("--dtype must be a floating dtype", hint=f"Use float16, bfloat16, float32. Received: {dtype}")
    out_path = local_only(out, "The output (-o)")
    if workers is not None and workers < 1:
        raise UsageError("--workers must be at least 1", hint=f"Omit it to use every CPU. Received: {workers}")
    workers = workers or max(1, cpu_count() // (group.local_size if group else 1))
    agree: Callable[[Callable[[], Any]], Any] = group.agree if group is not None else (lambda step: step())
    to = request.side()
    src_path = as_path(source)
    lead = group is None or group.rank == 0  # the one process that writes what is not dealt out by shard
    with ExitStack() as stack:
        ckpt: Checkpoint = stack.enter_context(agree(lambda: load(source, format=request.source_format)))
        plan: Plan = agree(lambda: plan_checkpoint(ckpt, request))
        if not plan.ok and not allow_gaps:
            raise PlanHasGaps(
                "The conversion plan has gaps",
                path=source,
                detail=_describe_gaps(plan),
                hint=f"`{check_command(source, request)}` shows the whole report; --allow-gaps writes anyway",
            )
        pack = plan.rule_pack or get_pack(plan.pack)
        if group is None:
            tmp = stack.enter_context(atomic_directory(out_path, force=force, inputs=(src_path,)))
        else:
            tmp = stack.enter_context(shared_directory(group, out_path, force=force, inputs=(src_path,)))
        stack.enter_context(using_workers(workers))
        casts = CastReport()
        tensors = _out_tensors(ckpt, plan, dtype, casts)
        if to == "pytorch" and pack.pt.copies is not None and plan.target.class_name:
            tensors += _copies(tensors, plan, pack.pt.copies(plan.target.config or {}, plan.target.class_name), dtype)
        if to == "tensorflow":  # a TF layout that stores a tensor twice: the tied copy is written too
            tensors += _copies(tensors, plan, {tie.name: tie.tied_to for tie in plan.tied}, dtype)
        notes: list[str] = []
        hook = _progress_hook(on_progress, sum(t.nbytes for t in tensors)) if on_progress else None
        if to == "pytorch":
            owns = group.owns if group is not None else None
            files = _write_pytorch(tmp, tensors, plan, pack, out_format, max_shard_size, hook, notes, owns)
        else:
            files = _write_tensorflow(tmp, tensors, plan, pack, out_format, max_shard_size, hook, notes) if lead else []
        notes += casts.notes(human_bytes)
        for row in plan.pad_rows:  # never zeroed: the row is the trained model's, and verify compares it too
            state = "zero" if row.zero else f"non-zero, norm {row.norm:.4g}"
            cast = f", cast to {dtype} only" if dtype is not None else " exactly"
            notes.append(
                f"padding row {row.pad_token_id} of {row.table} ({state}) kept{cast} as in the source: "
                "bridge never zeroes it"
            )
        dropped = [r for r in ckpt.values() if r.kind != "model"]
        if keep_optimizer and lead:
            files += _write_optimizer(tmp, ckpt)
            dropped = [r for r in dropped if r.kind != "optimizer"]
        folder = src_path if src_path.is_dir() else src_path.parent
        for name in _SIDE_FILES:
            if lead and (folder / name).is_file():  # through the source's own open(): the folder may be a URL
                with (folder / name).open("rb") as side, open(tmp / name, "wb") as copy:
                    shutil.copyfileobj(side, copy)
                files.append(name)
        if lead and pack.config.side_files is not None:
            for name, data in pack.config.side_files(folder).items():
                (tmp / name).write_bytes(data)
                files.append(name)
    return ConvertResult(
        plan=plan,
        out=out_path,
        files=files,
        tensors=len(tensors),
        bytes_written=sum(t.nbytes for t in tensors),
        dropped_bytes=sum(r.nbytes for r in dropped),
        notes=notes,
        casts=casts.to_json(),
        workers=workers,
        ranks=group.size if group is not None else 1,
    )


def check_command(source: str | os.PathLike[str], request: PlanRequest) -> str:
    """The ``check`` command line that shows this request's plan."""
    return command_name() + " " + shlex.join(["check", str(source), *request.cli_options()])


def verify_command(source: str | os.PathLike[str], request: PlanRequest, result: ConvertResult) -> str:
    """The ``verify`` command line that proves ``result``: SOURCE, OUT and every option that shaped the plan.

    verify plans against OUT itself, so a class, layout or reference ``--target`` is implied by OUT; a factory
    builds the model its forward check runs."""
    options = replace(request, to=None, target=request.target if is_factory(request.target) else None).cli_options()
    if any(x.expected and x.head is not None for x in result.plan.unused):
        options.append("--dropped-heads")  # the --target asked for a class without them
    return f"{command_name()} verify " + shlex.join([str(source), str(result.out), *options])


def _describe_gaps(plan: Plan) -> str:
    """The first few gaps, each with its reason, and how many more there are."""

    def row(x: Any, what: str) -> str:
        return f"`{x.name}` {list(x.shape)} {what}: {x.reason}" + (f" ({x.suggestion})" if x.suggestion else "")

    rows = [row(x, "missing") for x in plan.missing if not x.expected]
    rows += [f"`{x.source}` -> `{x.target}` mismatched: {x.detail}" for x in plan.mismatched]
    rows += [row(x, "left over") for x in plan.unused if not x.expected]
    more = f"; ... and {len(rows) - _GAPS_SHOWN} more" if len(rows) > _GAPS_SHOWN else ""
    suspicious = [n for n in plan.notes if n.startswith("suspicious:")]  # a likely cause of them all
    return "; ".join(suspicious + [f"{len(rows)} gap(s): " + "; ".join(rows[:_GAPS_SHOWN]) + more])


def _progress_hook(on_progress: Callable[[int, int], None], total: int) -> Callable[[Any], None]:
    done = 0

    def hook(tensor: Any) -> None:
        nonlocal done
        done += tensor.nbytes
        on_progress(done, total)

    return hook


def _out_tensors(ckpt: Checkpoint, plan: Plan, dtype: str | None, casts: CastReport) -> list[Any]:
    """One tensor per target: a matched source after its transform, a target assembled from several sources
    (parts stacked by ``place(k,n)``, added by ``sum(k,n)`` or concatenated by ``block(k,n)``), or zeros where the
    plan says so."""

    out = []
    by_target: dict[str, list[Any]] = {}
    for m in plan.matched:
        by_target.setdefault(m.target, []).append(m)
    for target, matches in by_target.items():
        m = matches[0]
        cast = dtype if dtype is not None and dtypes.is_floating(m.dtype) else None
        produce = functools.partial(_produce, [(ckpt[x.source], parse(x.transform)) for x in matches], cast, casts)
        out.append(OutTensor(target, m.target_shape, cast or m.dtype, produce))
    for x in plan.missing:
        if x.fill == "zeros":
            spec_dtype = plan.target.tensors[x.name].dtype or "float32"
            kind = dtype if dtype is not None and dtypes.is_floating(spec_dtype) else spec_dtype
            out.append(OutTensor(x.name, x.shape, kind, functools.partial(np.zeros, x.shape, dtypes.numpy_dtype(kind))))
    return out + _computed(out, plan)


def _computed(tensors: list[Any], plan: Plan) -> list[Any]:
    """The targets the pack computes (:class:`~bridge.core.packs.Fill`): a buffer from its shape, in the dtype its
    value function gives; a copy of another target after a transform, in that target's dtype."""
    by_name = {t.name: t for t in tensors}
    out = []
    for x in plan.missing:
        fill = plan.rule_pack.fill_of(x.name) if x.fill and x.fill != "zeros" and plan.rule_pack else None
        if fill is not None and fill.value is not None:
            value = fill.value(x.shape)
            out.append(OutTensor(x.name, x.shape, str(value.dtype), functools.partial(np.asarray, value)))
        elif fill is not None and fill.owner in by_name:
            owner, how = by_name[fill.owner], parse(fill.transform)
            out.append(OutTensor(x.name, x.shape, owner.dtype, functools.partial(_transformed, owner.produce, how)))
    return out


def _transformed(produce: Callable[[], np.ndarray], transform: Transform) -> np.ndarray:
    return np.ascontiguousarray(transform.apply(produce()))


def _copies(tensors: list[Any], plan: Plan, copies: dict[str, str | None], dtype: str | None) -> list[Any]:
    """Tensors the pack asks for beside the matched ones: copies of a matched target, or zeros."""

    by_name = {t.name: t for t in tensors}
    out = []
    for name, source in copies.items():
        target = plan.target.tensors.get(name)
        if name in by_name or target is None:
            continue
        if source is None:
            kind = dtype or "float32"
            out.append(
                OutTensor(name, target.shape, kind, functools.partial(np.zeros, target.shape, dtypes.numpy_dtype(kind)))
            )
        elif source in by_name:
            out.append(OutTensor(name, target.shape, by_name[source].dtype, by_name[source].produce))
    return out


def _produce(parts: Sequence[tuple[TensorRecord, Transform]], cast: str | None, casts: CastReport) -> np.ndarray:
    """Read a target's source value(s), bring them to the target layout, assemble the parts, then cast (counted):
    called once, while writing."""
    value = assemble([(transform, transform.apply(record.numpy())) for record, transform in parts])
    return casts.cast(value, cast) if cast else value


def _write_pytorch(
    tmp: Path,
    tensors: list[Any],
    plan: Plan,
    pack: Any,
    out_format: str,
    max_shard_size: int | None,
    hook: Any,
    notes: list[str],
    owns: Callable[[int], bool] | None = None,
) -> list[str]:
    """The weights (under torchrun, the safetensors shards ``owns`` says; the rest on rank 0), then the config."""
    from pt_side.state_dict_writer import write_safetensors, write_torch_bin

    lead = owns is None or owns(0)
    if out_format == "safetensors":
        paths = write_safetensors(tmp, tensors, max_shard_size=max_shard_size, on_tensor=hook, owns=owns)
    elif out_format == "bin":
        paths = write_torch_bin(tmp, tensors) if lead else []
    elif out_format == "dcp":
        from pt_side.dcp_writer import write_dcp

        paths = write_dcp(tmp, tensors, on_tensor=hook) if lead else []
    else:
        raise UsageError(f"Unknown PyTorch output format '{out_format}'", hint="Use safetensors, bin or dcp")
    files = [p.name for p in paths]
    if not lead:
        return files
    if out_format == "dcp":
        notes.append(
            "torch.distributed.checkpoint: load on any number of ranks with "
            "torch.distributed.checkpoint.load(model.state_dict(), checkpoint_id=OUT) (full or sharded tensors)"
        )
    if pack.config.pytorch is None or not plan.target.class_name:
        notes.append(
            "no config.json: the target is a plain state dict; load with "
            "model.load_state_dict(safetensors.torch.load_file(...), strict=True)"
        )
    else:
        config, config_notes = pack.config.pytorch(plan.target.config or {}, plan.target.class_name)
        notes.extend(config_notes)
        files.append(write_config(tmp, config).name)
        generation = pack.config.generation(config) if pack.config.generation else None
        if generation is not None:
            files.append(write_config(tmp, generation, "generation_config.json").name)
    return files


def _write_tensorflow(
    tmp: Path,
    tensors: list[Any],
    plan: Plan,
    pack: RulePack,
    out_format: str,
    max_shard_size: int | None,
    hook: Any,
    notes: list[str],
) -> list[str]:
    """The pack's TF-side files (:class:`~bridge.core.packs.Output`), its config beside them."""

    output = pack.tf.output
    if output is None:
        raise UsageError(f"The {pack.name} rules write no TensorFlow files", hint="Convert --to pytorch instead")
    if out_format not in (output.format, "safetensors"):  # safetensors: the CLI default, meaning "the layout's own"
        raise UsageError(
            f"Unknown TensorFlow output format '{out_format}'",
            hint=f"The {pack.name} layout is written as {output.weights}: omit --format or pass "
            f"--format {output.format}",
        )
    order = {name: i for i, name in enumerate(plan.target.tensors)}
    tensors = sorted(tensors, key=lambda t: order[t.name])  # the layout's own order (Keras' weight order)
    write = output.writer
    # asked of writers that shard only
    shard: dict[str, Any] = {"max_shard_size": max_shard_size} if max_shard_size else {}
    if shard and "max_shard_size" not in inspect.signature(write).parameters:
        raise UsageError(
            f"The {output.format} layout ({output.weights}) is written as one file",
            hint="Omit --max-shard-size",
        )
    paths = write(tmp / output.weights, tensors, metadata=plan.target.metadata, on_tensor=hook, **shard)
    if output.note:
        notes.append(output.note)
    files = [p.name for p in paths]
    if pack.config.tensorflow is not None and output.config is not None:
        config, config_notes = pack.config.tensorflow(plan.target.config or {}, plan.target.class_name or pack.name)
        notes.extend(config_notes)
        files.append(write_config(tmp, config, output.config, output.render).name)
    return files


def _write_optimizer(tmp: Path, ckpt: Checkpoint) -> list[str]:
    from pt_side.state_dict_writer import write_safetensors

    slots = [
        OutTensor(r.name, r.shape, r.dtype, r.numpy)
        for r in ckpt.values()
        if r.kind == "optimizer" and r.dtype != dtypes.STRING
    ]
    if not slots:
        return []
    return [p.name for p in write_safetensors(tmp, slots, stem="optimizer")]
