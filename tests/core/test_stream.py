"""The prefetch window: results in order, at most ``workers`` prepared beside the one in use, truly concurrent."""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pytest

from bridge.core.stream import current_workers, prefetched, using_workers


class _Alive:
    """Counts the values produced and not yet freed (a finalizer per array), and the most alive at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def produce(self, i: int) -> np.ndarray:
        value = np.full(1000, i, np.float32)
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        weakref.finalize(value, self._freed)
        return value

    def _freed(self) -> None:
        with self.lock:
            self.now -= 1


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_window_is_bounded_and_ordered(workers: int) -> None:
    alive = _Alive()
    seen = []
    for i, value in prefetched(list(range(200)), alive.produce, workers=workers):
        assert value[0] == i  # in the items' order whatever finished first
        seen.append(i)
        del value
    assert seen == list(range(200))
    # ``workers`` in the window, the one the loop holds, and the next one taken before the loop drops it.
    assert alive.peak <= workers + 2
    assert alive.now == 0


def test_workers_really_run_at_once() -> None:
    # Four producers meet at a barrier: it opens only if four run concurrently (else it times out, never hangs).
    barrier = threading.Barrier(4, timeout=30)

    def produce(i: int) -> int:
        if i < 4:
            barrier.wait()
        return i

    assert [r for _, r in prefetched(list(range(8)), produce, workers=4)] == list(range(8))


def test_error_is_raised_at_its_item_and_the_rest_cancelled() -> None:
    started = []

    def produce(i: int) -> int:
        started.append(i)
        if i == 3:
            raise ValueError("bad tensor 3")
        return i

    got = []
    with pytest.raises(ValueError, match="bad tensor 3"):
        for _, r in prefetched(list(range(1000)), produce, workers=2):
            got.append(r)
    assert got == [0, 1, 2]
    assert len(started) < 10  # the window, not the whole list


def test_using_workers_sets_the_default() -> None:
    assert current_workers() == 1
    with using_workers(3):
        assert current_workers() == 3
    assert current_workers() == 1
    with pytest.raises(ValueError):
        list(prefetched([1], str, workers=0))
