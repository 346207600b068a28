"""The framework sides of `bridge unused`, one typed function per job.

Each imports its adapter when called, so a framework is imported only when a model of it is looked at
(``bridge.unused`` itself imports none).  A new job (a classification over steps or ranks) is one more function
here, beside its adapter module in ``pt_side/unused/`` and ``tf_side/unused/``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

DDP_WORLD_SIZE = 2  # `bridge unused --ddp`: the gloo processes DDP's own verdict runs on

if TYPE_CHECKING:
    from bridge.core.unused.report import UnusedReport
    from bridge.core.unused.restore import RestoreSetup
    from pt_side.unused.watch import TorchWatch
    from tf_side.unused.watch import TFWatch


def trace(
    framework: str, model: Any, batch: Any, loss_fn: Callable[..., Any] | None, *, steps: int, seed: int | None
) -> UnusedReport:
    """Run ``model`` on ``batch`` for ``steps`` steps and classify every parameter/variable."""
    if framework == "pytorch":
        from pt_side.unused.trace import find_unused_torch

        return find_unused_torch(model, batch, loss_fn, steps=steps, seed=seed)
    from tf_side.unused.trace import find_unused_tf

    return find_unused_tf(model, batch, loss_fn, steps=steps, seed=seed)


def trace_ranks(
    framework: str,
    build: Callable[[int], tuple[Any, Any, Callable[..., Any] | None]],
    world_size: int,
    *,
    steps: int,
    seed: int | None,
) -> UnusedReport:
    """Each rank's (model, batch, loss_fn) from ``build(rank)``, run for ``steps`` steps and classified together."""
    if framework != "pytorch":
        raise ValueError(f"ranks are recorded for PyTorch models only, not {framework}")
    from pt_side.unused.trace import find_unused_torch_ranks

    return find_unused_torch_ranks(build, world_size, steps=steps, seed=seed)


def trace_graph(path: str | Path, tensors: Sequence[str]) -> UnusedReport:
    """A TF1 ``.meta`` graph's trainable variables outside the backward closure of ``tensors``."""
    from tf_side.unused.meta_graph import find_unused_meta_graph

    return find_unused_meta_graph(path, tensors)


def restore(framework: str, model: Any, ckpt: Any, batch: Any = None) -> RestoreSetup:
    """What the framework's own restore call would give ``model`` from ``ckpt``."""
    if framework == "pytorch":
        from pt_side.unused.trace import restore_setup as torch_restore_setup

        return torch_restore_setup(model, ckpt)
    from tf_side.unused.trace import restore_setup as tf_restore_setup

    return tf_restore_setup(model, ckpt, batch)


def ddp(spec: str, *, steps: int = 2) -> dict[str, Any]:
    """DistributedDataParallel's own verdict on ``FILE.py:FACTORY`` (two CPU processes, at least 2 steps)."""
    from pt_side.unused.ddp import run_ddp_check

    return run_ddp_check(spec, steps=max(steps, 2), world_size=DDP_WORLD_SIZE)


def ddp_cost(spec: str, report: UnusedReport) -> dict[str, Any]:
    """Seconds per DDP step of ``FILE.py:FACTORY`` with ``find_unused_parameters`` False and True, and the ratio.

    Where some parameter misses a step, the ``False`` run adds the zero-weighted term that touches every
    parameter (the code fix), so that it runs; a model with reentrant checkpoints is timed with
    ``use_reentrant=False`` (``find_unused_parameters=True`` raises with reentrant ones).
    """
    from pt_side.unused.ddp import time_find_unused

    touch = not report.ok
    reentrant = False if report.checkpointing == "reentrant" else None
    return time_find_unused(spec, world_size=DDP_WORLD_SIZE, touch_all=touch, reentrant=reentrant)


def watch(
    framework: str, model: Any, *, render: Callable[[UnusedReport], str] | None, file: TextIO | None
) -> TorchWatch | TFWatch:
    """The context manager that records the classification inside the user's own loop."""
    if framework == "pytorch":
        from pt_side.unused.watch import TorchWatch

        return TorchWatch(model, render=render, file=file)
    from tf_side.unused.watch import TFWatch

    return TFWatch(model, render=render, file=file)
