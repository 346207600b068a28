"""`bridge.watch(model)` for PyTorch: the `bridge unused` classification, recorded inside the user's own loop.

Two recorders, attached on ``__enter__`` and removed on ``__exit__``:

* reads: the same :class:`TorchFunctionMode` as `bridge unused` (:func:`pt_side.unused.trace._read_mode`), pushed
  only while the model's own ``forward`` runs (a forward pre-hook / forward hook pair), so that the
  optimizer's step, an EMA update or a logging ``p.norm()`` outside the forward never count as reads;
* gradients: ``Tensor.register_post_accumulate_grad_hook`` on every parameter that requires grad; the first
  arrival of a backward pass queues an end-of-pass callback on the autograd engine (as DDP's reducer does),
  which counts the pass and the parameters it reached.  Steps = backward passes seen, so gradient
  accumulation (several ``backward()`` per optimizer step) counts each micro-batch.

Under ``DistributedDataParallel`` the wrapped module is watched (names without ``module.``); at the end every
rank's passes are gathered with ``all_gather_object`` (the report's steps are all ranks' passes together; a
parameter reached at the same step on some ranks only is "rank_dependent"), and rank 0 alone prints.

Other wrappers, names always as the user wrote them (``_orig_mod.``, ``_fsdp_wrapped_module.``,
``_checkpoint_wrapped_module.`` dropped):

* ``torch.compile``: the hooks sit on the compiled module, so the read mode is active around the compiled call
  (dynamo traces the mode's ``__torch_function__`` into the graph) and gradients still accumulate into the same
  ``Parameter`` objects: the same two signals as eager;
* FSDP (``FullyShardedDataParallel(use_orig_params=True)`` or ``fully_shard``): the ``Parameter`` objects hold
  shards and the forward runs on unsharded tensors FSDP puts on the modules, so a forward pre-hook on every
  module that owns parameters picks those tensors up: their ``id`` counts as the parameter for reads, and a
  gradient hook on each (``Tensor.register_hook``, before FSDP reduces anything) is the arrival.  Ranks are
  gathered as under DDP; in place of DDP's configurations the report predicts FSDP's outcome per unit.

``torch.utils.checkpoint`` calls made during the forward are recorded (as ``bridge unused`` does), so the DDP
predictions include the reentrant-checkpointing configurations.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from bridge.core.errors import UsageError
from bridge.core.unused.report import UnusedReport
from pt_side.unused.trace import _checkpoint_calls, _read_mode, _torch, build_report

_WRAPPER_SEGMENTS = frozenset({"_orig_mod", "_fsdp_wrapped_module", "_checkpoint_wrapped_module"})


def clean_name(name: str) -> str:
    """A name as the user wrote it: the segments torch.compile, FSDP and activation-checkpoint wrappers add, out."""
    return ".".join(part for part in name.split(".") if part not in _WRAPPER_SEGMENTS)


@dataclass(frozen=True)
class _Unsharded:
    """What the report needs of an FSDP parameter whose ``Parameter`` holds a flat shard: its full shape."""

    requires_grad: bool
    shape: tuple[int, ...]

    def numel(self) -> int:
        return math.prod(self.shape)


def _fsdp_kind(torch: Any, module: Any) -> str | None:
    """ "FullyShardedDataParallel" or "fully_shard" when ``module`` is an FSDP unit, else None."""
    if not torch.distributed.is_available():
        return None
    import torch.distributed.fsdp as fsdp

    if isinstance(module, fsdp.FullyShardedDataParallel):
        return "FullyShardedDataParallel"
    fsdp2 = getattr(fsdp, "FSDPModule", None)
    return "fully_shard" if fsdp2 is not None and isinstance(module, fsdp2) else None


class TorchWatch:
    """Context manager returned by ``bridge.watch(torch_module)``; ``report`` holds the answer after the block."""

    def __init__(
        self, model: Any, *, render: Callable[[UnusedReport], str] | None = None, file: TextIO | None = None
    ) -> None:
        torch = _torch()
        if not isinstance(model, torch.nn.Module):
            raise UsageError("Not a PyTorch module", detail=type(model).__name__, hint="Pass a torch.nn.Module")
        self.ddp = isinstance(model, torch.nn.parallel.DistributedDataParallel)
        self.module = model.module if self.ddp else model  # DDP's names are the module's, behind "module."
        self.render = render  # the front's renderer (adapters import no front module); None: quiet
        self.file = file
        units = {clean_name(n): kind for n, m in self.module.named_modules() if (kind := _fsdp_kind(torch, m))}
        self.fsdp = next(iter(units.values()), None)  # the FSDP wrapper's name; None: no FSDP
        self.units = sorted(units, key=len, reverse=True)  # innermost first
        self.names: list[str] = []
        self.params: list[Any] = []
        self.shaped: list[Any] | None = None  # FSDP: each parameter's full shape, for the report
        for name, p in self.module.named_parameters():  # tied parameters once, under the first name
            self.names.append(clean_name(name))
            self.params.append(p)
        self.read: set[int] = set()
        self.passes: list[set[int]] = []  # per backward pass: the indices of the parameters it reached
        self.checkpointing: set[str] = set()
        self.report: UnusedReport | None = None
        self._handles: list[Any] = []
        self._pass: set[int] | None = None  # parameters reached in the backward pass under way
        self._forward: ExitStack | None = None
        self._depth = 0
        self._live: dict[int, int] = {}  # FSDP: id of the tensor on the module during this forward -> index
        self._kept: list[Any] = []  # those tensors, held so that no other tensor takes their id meanwhile
        self._grad_hooks: list[Any] = []

    # --- recording ---------------------------------------------------------------------------------

    def _pre_forward(self, module: Any, args: Any) -> None:
        self._depth += 1
        if self._depth == 1:
            stack = ExitStack()
            stack.enter_context(_read_mode(self.params, self.read, self._live))
            stack.enter_context(_checkpoint_calls(self.checkpointing))
            self._forward = stack

    def _post_forward(self, module: Any, args: Any, output: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._leave_forward()

    def _leave_forward(self) -> None:
        if self._forward is not None:
            stack, self._forward = self._forward, None
            stack.close()
        self._live.clear()
        self._kept.clear()

    def _arrived(self, param: Any, index: int) -> None:
        if param.grad is None:  # DDP's output sink sends undefined gradients down unused outputs: no arrival
            return
        self._reached(index)

    def _reached(self, index: int) -> None:
        if self._pass is None:
            self._pass = set()
            _torch().autograd.Variable._execution_engine.queue_callback(self._end_of_pass)
        self._pass.add(index)

    def _end_of_pass(self) -> None:
        reached, self._pass = self._pass or set(), None
        self.passes.append(reached)
        for handle in self._grad_hooks:  # FSDP: the hooks of this pass's unsharded tensors
            handle.remove()
        self._grad_hooks.clear()

    def _owner_pre_forward(self, owned: list[tuple[str, int]]) -> Callable[[Any, Any], None]:
        """FSDP: the tensors standing for ``owned`` parameters in this forward are read and hooked as them."""
        torch = _torch()

        def pick_up(module: Any, args: Any) -> None:
            for attr, index in owned:
                t = getattr(module, attr, None)
                if not isinstance(t, torch.Tensor):
                    continue
                self._live[id(t)] = index
                self._kept.append(t)
                if t.requires_grad and torch.is_grad_enabled() and self.params[index].requires_grad:
                    self._grad_hooks.append(t.register_hook(lambda grad, i=index: self._reached(i)))

        return pick_up

    def __enter__(self) -> TorchWatch:
        self._handles.append(self.module.register_forward_pre_hook(self._pre_forward))
        self._handles.append(self.module.register_forward_hook(self._post_forward, always_call=True))
        if self.fsdp is None:
            for i, p in enumerate(self.params):
                if p.requires_grad:
                    self._handles.append(p.register_post_accumulate_grad_hook(lambda p, i=i: self._arrived(p, i)))
            return self
        self.shaped = self._unsharded_shapes()
        index = {name: i for i, name in enumerate(self.names)}
        for prefix, module in self.module.named_modules():
            owned = [
                (attr, index[full])
                for attr, p in module._parameters.items()
                if p is not None and (full := clean_name(f"{prefix}.{attr}" if prefix else attr)) in index
            ]
            if owned:
                self._handles.append(module.register_forward_pre_hook(self._owner_pre_forward(owned)))
        return self

    def _unsharded_shapes(self) -> list[Any]:
        """FSDP: each parameter's full shape (``fully_shard``'s DTensors have it; ``FullyShardedDataParallel``'s
        flat shards are gathered once, on every rank together, as the block is entered)."""
        if self.fsdp == "fully_shard":
            return [_Unsharded(p.requires_grad, tuple(p.shape)) for p in self.params]
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(self.module, writeback=False):
            shapes = {clean_name(n): tuple(p.shape) for n, p in self.module.named_parameters()}
        return [_Unsharded(p.requires_grad, shapes[n]) for n, p in zip(self.names, self.params, strict=True)]

    def _unit_of(self) -> dict[str, str]:
        """FSDP: each parameter's unit (the innermost FSDP-wrapped module above it, "" for the root)."""
        return {n: next((u for u in self.units if not u or n.startswith(u + ".")), "") for n in self.names}

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in [*self._handles, *self._grad_hooks]:
            handle.remove()
        self._handles.clear()
        self._grad_hooks.clear()
        self._leave_forward()  # the block may have left in the middle of a forward
        self._depth = 0
        torch = _torch()
        dist = torch.distributed
        spread = (self.ddp or self.fsdp is not None) and dist.is_available() and dist.is_initialized()
        wrapper = "DDP" if self.ddp else "FSDP"
        rank = dist.get_rank() if spread else 0
        read, passes, notes = self.read, {0: self.passes}, []
        ranks = None
        if spread and exc_type is None and dist.get_world_size() > 1:
            read, passes = self._gathered(dist)
            ranks = dist.get_world_size()
            notes.append(
                f"the union of {ranks} {wrapper} ranks ({dist.get_backend()}): a step is one backward "
                "pass on one rank; a parameter reached at the same step on some ranks only is 'rank_dependent'"
            )
        elif spread and exc_type is not None:
            notes.append(f"rank {rank} alone: the block raised, so the ranks' counts were not gathered")
        steps = sum(len(ps) for ps in passes.values())
        if steps == 0:
            notes.append(
                "no backward pass reached a parameter inside the block: put loss.backward() inside "
                "`with bridge.watch(model)`"
            )
        fsdp = None if self.fsdp is None else (self.fsdp, self._unit_of())
        self.report = build_report(
            self.names,
            self.shaped or self.params,
            read,
            passes,
            notes,
            ranks=ranks,
            checkpointing=self.checkpointing,
            fsdp=fsdp,
        )
        self.report.steps = steps
        if self.render is not None and (rank == 0 or exc_type is not None):
            print(self.render(self.report), file=self.file or sys.stderr)

    def _gathered(self, dist: Any) -> tuple[set[int], dict[int, list[set[int]]]]:
        """Every rank's reads and passes, by name (ranks list the same parameters), keyed by rank."""
        mine = {
            "names": self.names,
            "read": sorted(self.read),
            "passes": [sorted(reached) for reached in self.passes],
        }
        ranks: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(ranks, mine)
        index = {name: i for i, name in enumerate(self.names)}

        def mapped(r: Any, indices: list[int]) -> set[int]:
            return {index[r["names"][i]] for i in indices if r["names"][i] in index}

        read = {i for r in ranks for i in mapped(r, r["read"])}
        return read, {rank: [mapped(r, ps) for ps in r["passes"]] for rank, r in enumerate(ranks)}
