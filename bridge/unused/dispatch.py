"""`bridge unused`: the front's dispatch from a model, a factory or a TF1 graph to the framework sides.

No framework is imported here: :func:`find_unused` looks at the model's type by module name and
calls the framework side (:mod:`bridge.unused.sides`) only then.  The report types live in the core
(``bridge.core.unused.report``, ``bridge.core.unused.restore``), the factories in ``bridge.core.factory``,
the rendering in ``bridge.report``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

from bridge.core.errors import UsageError
from bridge.core.factory import UNUSED_CONTRACT, build_with, call_factory, load_factory, takes_rank
from bridge.core.unused.report import UnusedReport, ddp_indices_to_names
from bridge.core.unused.restore import RestoreReport, compare_restore
from bridge.unused import sides


def find_unused(
    model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None, steps: int = 1, *, seed: int | None = 0
) -> UnusedReport:
    """Classify every parameter/variable of ``model`` run on ``batch``.

    ``loss_fn(output, batch)`` gives the scalar to differentiate; without it the
    sum of every floating output is used.  ``steps > 1`` re-runs forward and
    backward that many times (in training mode) to find parameters used in some
    steps only; for a PyTorch model ``batch`` may be an iterable of batches (a
    generator, a ``DataLoader``: not a tuple or list, which are one batch's
    arguments), step ``i`` using batch ``i``, cycling.  PyTorch modules go to :mod:`pt_side.unused.trace`, anything else
    (Keras models, ``tf.Module``) to :mod:`tf_side.unused.trace`.
    """
    _check_steps(steps)
    return sides.trace(framework_of(model), model, batch, loss_fn, steps=steps, seed=seed)


def _check_steps(steps: object) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise UsageError("Bad --steps", detail=f"got {steps!r}", hint="Give a positive number of steps")


def watch(model: Any, *, quiet: bool = False, file: TextIO | None = None) -> Any:
    """Record, inside the user's own training loop, what `bridge unused` would say about ``model``.

    ``with bridge.watch(model) as w:`` around any number of training steps (forward, loss, backward,
    optimizer step; gradient accumulation; DDP).  When the block ends the report is printed (to ``file``,
    stderr by default; not with ``quiet=True``) and kept on ``w.report`` (an :class:`UnusedReport`).

    PyTorch (:mod:`pt_side.unused.watch`): reads are recorded during the model's forward, gradient arrivals per
    backward pass; a ``DistributedDataParallel`` model reports the union of its ranks once, on rank 0.
    Keras / ``tf.Module`` (:mod:`tf_side.unused.watch`): hand the tape's gradients over with
    ``grads = w.gradients(tape.gradient(loss, variables), variables, tape=tape)``; for ``model.fit`` use
    ``bridge.keras.UnusedVariables(batches=N)``.
    """
    from bridge.unused.render import render_unused

    return sides.watch(framework_of(model), model, render=None if quiet else render_unused, file=file)


def framework_of(model: Any) -> str:
    """``"pytorch"`` for a ``torch.nn.Module`` (by its class hierarchy's module names), else ``"tensorflow"``."""
    for cls in type(model).__mro__:
        if cls.__module__.startswith("torch.nn") and cls.__name__ == "Module":
            return "pytorch"
    mods = {cls.__module__.split(".")[0] for cls in type(model).__mro__}
    if mods & {"keras", "tf_keras", "tensorflow"}:
        return "tensorflow"
    raise UsageError(
        "Not a model",
        detail=f"got {type(model).__module__}.{type(model).__qualname__}",
        hint="Return a torch.nn.Module, a Keras model or a tf.Module from the factory",
    )


def is_meta_graph(target: str) -> bool:
    """``bridge unused`` on a TF1 ``MetaGraphDef`` (``model.ckpt.meta``) rather than ``FILE.py:FACTORY``."""
    return target.endswith(".meta") or (Path(target).is_file() and Path(target).suffix != ".py")


def find_unused_in_graph(path: str | Path, losses: Iterable[str]) -> UnusedReport:
    """Trainable variables of a TF1 ``.meta`` graph that no gradient of ``losses`` reaches.

    Args:
        path: the ``.meta`` file ``tf.compat.v1.train.Saver`` wrote beside the checkpoint.
        losses: loss or output tensor names (``loss:0``).

    Returns:
        An :class:`UnusedReport` (framework ``tf1-graph``), items grouped by variable scope.

    Raises:
        UsageError: no tensor given (the message lists candidates).
        TensorNotFound: a tensor the graph lacks (the message suggests close names).
    """
    return sides.trace_graph(path, list(losses))


def run_unused(
    target: str,
    *,
    tensors: Iterable[str] = (),
    checkpoint: str | None = None,
    steps: int = 1,
    ddp: bool = False,
    cost: bool = False,
    seed: int | None = 0,
) -> UnusedReport | RestoreReport:
    """The CLI's entry: a TF1 graph (``.meta``), a factory vs a checkpoint, or a factory run on its batch."""
    tensors = list(tensors)
    if is_meta_graph(target):
        if checkpoint is not None or ddp or cost or steps != 1:
            raise UsageError(
                "Options do not apply to a TF1 graph",
                path=target,
                detail="--checkpoint, --ddp, --cost and --steps need a FILE.py:FACTORY",
                hint="Give only --loss/--output with a .meta file",
            )
        return find_unused_in_graph(target, tensors)
    if tensors:
        raise UsageError(
            "--loss/--output name tensors of a TF1 graph",
            detail=f"got {target!r}",
            hint="Give a .meta file, or return loss_fn from the factory",
        )
    if checkpoint is not None:
        if ddp or cost or steps != 1:
            raise UsageError(
                "--ddp, --cost and --steps run the model; --checkpoint only compares names and shapes",
                hint="Drop --ddp/--cost/--steps, or run without --checkpoint",
            )
        model, batch, _ = call_factory(target)
        return checkpoint_vs_model(model, checkpoint, batch=batch)
    return unused_from_spec(target, steps=steps, ddp=ddp, cost=cost, seed=seed)


def unused_from_spec(
    spec: str, *, steps: int = 1, ddp: bool = False, cost: bool = False, seed: int | None = 0
) -> UnusedReport:
    """The CLI's entry: build the model from ``FILE.py:FACTORY``, classify, optionally confirm with DDP.

    With ``ddp`` and a factory that takes ``rank``/``world_size``, each rank's model and data are traced one
    after another in this process first, so that a parameter reached on some ranks only is ``rank_dependent``.
    ``cost`` times a DDP step with ``find_unused_parameters`` on and off (2 gloo processes).
    """
    _check_steps(steps)
    factory = load_factory(spec, UNUSED_CONTRACT)
    world = sides.DDP_WORLD_SIZE if ddp else 1
    made = build_with(factory, spec, rank=0, world_size=world)
    model = made[0]
    if ddp and framework_of(model) == "pytorch" and takes_rank(factory):

        def build(rank: int) -> tuple[Any, Any, Callable[..., Any] | None]:
            return made if rank == 0 else build_with(factory, spec, rank=rank, world_size=world)

        report = sides.trace_ranks("pytorch", build, world, steps=steps, seed=seed)
    else:
        report = find_unused(*made, steps=steps, seed=seed)
    if ddp:
        if report.framework != "pytorch":
            report.notes.append("--ddp applies to PyTorch models only; skipped")
        else:
            if not takes_rank(factory):
                report.notes.append(
                    "the factory takes no rank=, world_size=: every DDP rank runs the same data, so usage that "
                    "depends on the rank cannot show"
                )
            report.ddp = sides.ddp(spec, steps=steps)
            names = ddp_indices_to_names(model, str(report.ddp.get("message") or ""))
            if names:
                report.ddp["unused_names"] = names
    if cost:
        if report.framework != "pytorch":
            report.notes.append("--cost applies to PyTorch models only; skipped")
        else:
            report.cost = sides.ddp_cost(spec, report)
    return report


def checkpoint_vs_model(model: Any, checkpoint: str | Path, *, batch: Any = None) -> RestoreReport:
    """What the user's own restore call does with ``checkpoint`` as it is, and the fix when it falls short.

    Args:
        model: a ``torch.nn.Module`` (the report is ``model.load_state_dict(sd, strict=False)``'s result,
            ``sd`` the file's state dict as saved) or a Keras model / ``tf.Module`` (matched the way
            ``tf.train.Checkpoint.read`` walks the object graph, from where the model sits).
        checkpoint: any checkpoint ``bridge.load`` reads (for TF models: TF2 object-based, or a Keras 3
            ``.weights.h5`` / ``.keras`` for a Keras 3 model).
        batch: called on an unbuilt Keras model first, to create its variables.

    Returns:
        A :class:`RestoreReport`: the call, model leftovers (with a did-you-mean), optimizer state /
        counters / bookkeeping (``expect_partial_safe`` when these are all that is left), missing
        variables, mismatches, and a ``fix`` (code) when an aligned call restores more.

    Example:
        >>> report = bridge.checkpoint_vs_model(model, "ckpt/ckpt-1")   # doctest: +SKIP
        >>> report.expect_partial_safe, [i.name for i in report.by_kind("missing")]   # doctest: +SKIP
    """
    from bridge.api import load

    framework = framework_of(model)
    with load(checkpoint) as ckpt:
        if (ckpt.framework == "pytorch") != (framework == "pytorch"):
            raise UsageError(
                "Checkpoint and model are from different frameworks",
                path=checkpoint,
                detail=f"a {ckpt.framework} checkpoint ({ckpt.format}) for a {framework} model",
                hint="Convert it first (bridge convert), then compare the result",
            )
        setup = sides.restore(framework, model, ckpt, batch)
        if framework != "pytorch" and ckpt.metadata.get("layout") == "keras3":
            framework = "keras"  # restored by Keras' load_weights, not tf.train.Checkpoint
        return compare_restore(
            framework, setup.variables, ckpt.values(), checkpoint=str(checkpoint), root=setup.root, setup=setup
        )
