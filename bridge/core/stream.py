"""Streaming values into a writer, the next ones prepared by worker threads, in order.

Reading (checksum included), transposing and casting a tensor are mostly GIL-free
numpy/IO work, so ``N`` threads preparing the next tensors while the caller writes
the current one use ``N`` more cores.  Results come back in the items' order, so a
writer's bytes do not depend on ``N``, and the window is bounded: at most ``N``
results are being prepared or waiting beside the one the caller holds, so memory is
about ``N + 1`` times the largest tensor, never the checkpoint's size.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol, TypeVar

import numpy as np

from bridge.core import dtypes


class Planned(Protocol):
    """A tensor a writer is given: its planned name, shape and dtype, and its value on demand."""

    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def dtype(self) -> str: ...
    def produce(self) -> np.ndarray: ...


T = TypeVar("T")
R = TypeVar("R")

# The writers are called through the packs' import strings with a fixed signature, so the number of threads
# reaches them as a context (set by ``convert``) rather than as one more argument of every writer.
_WORKERS: ContextVar[int] = ContextVar("bridge_workers", default=1)


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask: what a container or ``taskset`` grants)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def current_workers() -> int:
    """The number of threads :func:`prefetched` uses when not told (1 unless inside :func:`using_workers`)."""
    return _WORKERS.get()


@contextmanager
def using_workers(n: int) -> Iterator[None]:
    """Inside the block, :func:`prefetched` prepares up to ``n`` results ahead on ``n`` threads."""
    if n < 1:
        raise ValueError(f"workers must be at least 1, got {n}")
    token = _WORKERS.set(n)
    try:
        yield
    finally:
        _WORKERS.reset(token)


def produced_value(t: Planned) -> np.ndarray:
    """``t.produce()`` as a C-contiguous array (a 0-d value stays 0-d), checked against what the plan said."""
    value = np.require(t.produce(), requirements="C")
    if value.shape != tuple(t.shape) or dtypes.dtype_name(value.dtype) != t.dtype:
        raise ValueError(f"{t.name}: produced {value.dtype}{value.shape}, planned {t.dtype}{tuple(t.shape)}")
    return value


def prefetched(items: Sequence[T], work: Callable[[T], R], *, workers: int | None = None) -> Iterator[tuple[T, R]]:
    """Yield ``(item, work(item))`` in order, while ``workers`` threads (default :func:`current_workers`) compute
    the next ``workers`` results.  An exception in ``work`` is raised here, at its item; closing the iterator early
    cancels what has not started."""
    n = workers if workers is not None else current_workers()
    if n < 1:
        raise ValueError(f"workers must be at least 1, got {n}")
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="bridge-prefetch")
    pending: collections.deque[Future[R]] = collections.deque()
    try:
        ahead = iter(items)
        for item in ahead:  # fill the window
            pending.append(pool.submit(work, item))
            if len(pending) == n:
                break
        for item in items:
            result = pending.popleft().result()
            for nxt in ahead:  # one in, one out: the window stays full
                pending.append(pool.submit(work, nxt))
                break
            yield item, result
            del result  # the caller holds the value it is writing; the window holds the rest
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
