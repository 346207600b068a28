"""Running under ``torchrun``: the ranks of one conversion, kept in step with ``torch.distributed``.

``torchrun --nproc_per_node N -m bridge convert ...`` starts N copies of the same command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE`` and ``MASTER_ADDR``/``MASTER_PORT`` set.  Each copy plans the same
conversion (the plan is deterministic), rank 0 makes the temporary output directory, every rank writes the
output shards it owns into it, and rank 0 renames it once all have finished.

Why ``torch.distributed`` (gloo) rather than a file barrier: torchrun has already given every rank a rendezvous
(``MASTER_ADDR``), so no shared path needs agreeing on before the output exists, and each step below is one
collective with a timeout: a rank that fails sends its error instead of its result, every rank raises the first
error (same exit code everywhere, rank 0 prints it), and a rank that hangs ends the others after
``BRIDGE_RANK_TIMEOUT`` seconds (default 1800) instead of holding them forever.  torch is imported only here,
only when torchrun's environment says there is more than one rank.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bridge.core.atomic import atomic_directory
from bridge.core.errors import BridgeError, MissingDependency

T = TypeVar("T")
_TIMEOUT_S = 1800.0
INTERNAL_ERROR = 3


class RanksOutOfStep(BridgeError):
    """A collective did not complete: another rank died or is stuck (past the timeout)."""


class RankFailed(BridgeError):
    """Another rank of the same torchrun job failed; this rank stops with its exit code."""

    def __init__(self, rank: int, size: int, code: int, message: str) -> None:
        super().__init__(f"Rank {rank} of {size} failed", detail=message.rstrip("."))
        self.exit_code = code


@dataclass
class RankGroup:
    """This process's place in a torchrun job: its ``rank`` among ``size``, ``local_size`` of them on this node."""

    rank: int
    size: int
    local_size: int

    def owns(self, k: int) -> bool:
        """Whether this rank writes output part ``k`` (parts are dealt round-robin: ``k mod size``)."""
        return k % self.size == self.rank

    def settle(self, error: BaseException | None) -> None:
        """Wait for every rank to reach this point; if any failed, raise the lowest rank's error on every rank."""
        import torch.distributed as dist

        outcome = None if error is None else (_exit_code(error), str(error))
        outcomes: list[Any] = [None] * self.size
        with _collective(self):
            dist.all_gather_object(outcomes, outcome)
        for k, got in enumerate(outcomes):
            if got is not None:
                if k == self.rank and error is not None:
                    raise error
                raise RankFailed(k, self.size, got[0], got[1])

    def agree(self, step: Callable[[], T]) -> T:
        """Run ``step`` on every rank, then :meth:`settle`: its result where every rank succeeded."""
        try:
            result = step()
        except Exception as e:
            self.settle(e)
            raise  # settle raised already; for the type checker
        self.settle(None)
        return result

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value``, on every rank."""
        import torch.distributed as dist

        box = [value]
        with _collective(self):
            dist.broadcast_object_list(box, src=0)
        return box[0]


@contextmanager
def _collective(group: RankGroup) -> Iterator[None]:
    """gloo's timeout (and a peer's death) surfaces as a RuntimeError: bad luck with the job, not a bug here."""
    try:
        yield
    except RuntimeError as e:
        raise RanksOutOfStep(
            f"Rank {group.rank} of {group.size} lost the other ranks",
            detail=str(e).splitlines()[0] if str(e) else type(e).__name__,
            hint=f"Another rank died or is stuck (each waits BRIDGE_RANK_TIMEOUT={_timeout():g} s); its own "
            "message is above. On a slow shared filesystem, raise BRIDGE_RANK_TIMEOUT",
        ) from e


def _exit_code(error: BaseException) -> int:
    return error.exit_code if isinstance(error, BridgeError) else INTERNAL_ERROR


def _timeout() -> float:
    try:
        return float(os.environ.get("BRIDGE_RANK_TIMEOUT", _TIMEOUT_S))
    except ValueError:
        return _TIMEOUT_S


def torchrun_size() -> int:
    """How many ranks torchrun's environment says this job has (1 outside torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


@contextmanager
def joined() -> Iterator[RankGroup | None]:
    """The torchrun job this process is a rank of (a gloo process group), or None when it runs alone."""
    if torchrun_size() == 1 or "RANK" not in os.environ:
        yield None
        return
    try:
        import datetime

        import torch.distributed as dist
    except ImportError as e:
        raise MissingDependency("torchrun's environment is set but torch is missing", hint="pip install torch") from e
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=_timeout()))
    try:
        size = dist.get_world_size()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", size))
        yield RankGroup(rank=dist.get_rank(), size=size, local_size=max(1, local))
    finally:
        dist.destroy_process_group()


@contextmanager
def shared_directory(group: RankGroup, out: Path, *, force: bool, inputs: tuple[Path, ...]) -> Iterator[Path]:
    """:func:`~bridge.core.atomic.atomic_directory` for a whole job: rank 0 makes the temporary directory and
    renames it into ``out`` only after every rank has finished writing into it; any rank's failure removes it."""
    with ExitStack() as stack:
        made = group.agree(
            lambda: stack.enter_context(atomic_directory(out, force=force, inputs=inputs)) if group.rank == 0 else None
        )
        tmp = Path(str(group.broadcast(made)))  # rank 0's, the same on every rank
        error: BaseException | None = None
        try:
            yield tmp
        except Exception as e:
            error = e
        group.settle(error)  # every rank has written its part, or all raise (rank 0's stack removes tmp)
        group.agree(stack.close)  # rank 0 renames; a failed rename fails every rank
