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
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from bridge.core.errors import UsageError
from bridge.core.unused.report import UnusedReport
from pt_side.unused.trace import _read_mode, _torch, build_report


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
        self.names: list[str] = []
        self.params: list[Any] = []
        for name, p in self.module.named_parameters():  # tied parameters once, under the first name
            self.names.append(name)
            self.params.append(p)
        self.read: set[int] = set()
        self.passes: list[set[int]] = []  # per backward pass: the indices of the parameters it reached
        self.report: UnusedReport | None = None
        self._handles: list[Any] = []
        self._pass: set[int] | None = None  # parameters reached in the backward pass under way
        self._mode: Any = None
        self._depth = 0

    # --- recording ---------------------------------------------------------------------------------

    def _pre_forward(self, module: Any, args: Any) -> None:
        self._depth += 1
        if self._depth == 1:
            self._mode = _read_mode(self.params, self.read)
            self._mode.__enter__()

    def _post_forward(self, module: Any, args: Any, output: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._mode is not None:
            mode, self._mode = self._mode, None
            mode.__exit__(None, None, None)

    def _arrived(self, param: Any, index: int) -> None:
        if param.grad is None:  # DDP's output sink sends undefined gradients down unused outputs: no arrival
            return
        if self._pass is None:
            self._pass = set()
            _torch().autograd.Variable._execution_engine.queue_callback(self._end_of_pass)
        self._pass.add(index)

    def _end_of_pass(self) -> None:
        reached, self._pass = self._pass or set(), None
        self.passes.append(reached)

    def __enter__(self) -> TorchWatch:
        self._handles.append(self.module.register_forward_pre_hook(self._pre_forward))
        self._handles.append(self.module.register_forward_hook(self._post_forward, always_call=True))
        for i, p in enumerate(self.params):
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(lambda p, i=i: self._arrived(p, i)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._mode is not None:  # the block left in the middle of a forward
            self._mode.__exit__(None, None, None)
            self._mode = None
        self._depth = 0
        torch = _torch()
        dist = torch.distributed
        gather = self.ddp and exc_type is None and dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if self.ddp and dist.is_available() and dist.is_initialized() else 0
        read, passes, notes = self.read, {0: self.passes}, []
        ranks = None
        if gather and dist.get_world_size() > 1:
            read, passes = self._gathered(dist)
            ranks = dist.get_world_size()
            notes.append(
                f"the union of {ranks} DDP ranks ({dist.get_backend()}): a step is one backward "
                "pass on one rank; a parameter reached at the same step on some ranks only is 'rank_dependent'"
            )
        elif self.ddp and exc_type is not None:
            notes.append(f"rank {rank} alone: the block raised, so the ranks' counts were not gathered")
        steps = sum(len(ps) for ps in passes.values())
        if steps == 0:
            notes.append(
                "no backward pass reached a parameter inside the block: put loss.backward() inside "
                "`with bridge.watch(model)`"
            )
        self.report = build_report(self.names, self.params, read, passes, notes, ranks=ranks)
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
