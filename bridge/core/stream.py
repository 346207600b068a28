"""Streaming values into a writer with the next one prepared on a second thread.

Reading (checksum included) and transposing a tensor, and writing the previous one,
are mostly GIL-free numpy/IO work, so overlapping them uses a second core while
memory stays bounded: at most the value being written plus the one being prepared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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


def produced_value(t: Planned) -> np.ndarray:
    """``t.produce()`` as a C-contiguous array (a 0-d value stays 0-d), checked against what the plan said."""
    value = np.require(t.produce(), requirements="C")
    if value.shape != tuple(t.shape) or dtypes.dtype_name(value.dtype) != t.dtype:
        raise ValueError(f"{t.name}: produced {value.dtype}{value.shape}, planned {t.dtype}{tuple(t.shape)}")
    return value


def prefetched(items: Sequence[T], work: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """Yield ``(item, work(item))`` in order, computing the next result while the caller uses this one."""
    if len(items) < 2:
        yield from ((item, work(item)) for item in items)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-prefetch") as pool:
        pending: Future[R] = pool.submit(work, items[0])
        for i, item in enumerate(items):
            result = pending.result()
            if i + 1 < len(items):
                pending = pool.submit(work, items[i + 1])
            yield item, result
            del result  # hold at most two results: the one being used and the next
