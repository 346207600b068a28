"""PyTorch side of `bridge unused`: which parameters enter ops, which get gradients.

"Read" is recorded by a :class:`torch.overrides.TorchFunctionMode` that looks at
every tensor argument of every torch function and Tensor method called during
the forward (and the loss), matching it against the model's parameters by
object identity (and, for tensors that are not the Parameter object, by storage
pointer + shape + stride).  "Reaches the loss" is ``param.grad is not None``
after ``loss.backward()``: exactly what DDP's reducer waits for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bridge.core.errors import MissingDependency, UsageError
from bridge.core.unused.predict import predict, predict_fsdp, recommend
from bridge.core.unused.report import (
    ParameterUsage,
    Row,
    UnusedReport,
    classify_usage,
    make_items,
    module_expression,
)
from bridge.core.unused.restore import ModelVariable, RestoreFix, RestoreSetup, realign


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise MissingDependency(
            "torch is needed for `bridge unused` on a PyTorch model", hint="pip install 'ckpt-bridge[torch]'"
        ) from e
    return torch


def iter_tensors(value: Any) -> Iterator[Any]:
    """Every tensor inside ``value``: tensors, mappings (ModelOutput), lists, tuples, ``to_tuple()`` objects."""
    torch = _torch()
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from iter_tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_tensors(v)
    elif hasattr(value, "to_tuple"):
        yield from iter_tensors(value.to_tuple())


def call_model(model: Any, batch: Any) -> Any:
    """``model(**batch)`` for a mapping, ``model(*batch)`` for a tuple/list, else ``model(batch)``."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def default_loss(output: Any, batch: Any = None) -> Any:
    """The sum of every floating output (each reduced to a scalar); ``None`` when there is none."""
    torch = _torch()
    parts = [t.float().sum() for t in iter_tensors(output) if t.is_floating_point() and t.requires_grad]
    if not parts:
        return None
    return torch.stack(parts).sum()


def compute_loss(output: Any, batch: Any, loss_fn: Callable[..., Any] | None) -> Any:
    torch = _torch()
    loss = default_loss(output, batch) if loss_fn is None else loss_fn(output, batch)
    if loss is not None and not isinstance(loss, torch.Tensor):
        raise UsageError("Bad loss", detail=f"loss_fn returned {type(loss).__name__}", hint="Return a torch tensor")
    if loss is not None and loss.numel() != 1:
        loss = loss.sum()
    return loss


def _read_mode(params: list[Any], seen: set[int], live: Mapping[int, int] | None = None) -> Any:
    """A TorchFunctionMode adding to ``seen`` the index of every parameter passed to an op; ``live``: more
    tensors by ``id`` (the unsharded views FSDP puts on the modules during a forward), read as they change."""
    torch = _torch()
    from torch.overrides import TorchFunctionMode

    by_id = {id(p): i for i, p in enumerate(params)}
    by_storage: dict[tuple[int, tuple[int, ...], tuple[int, ...]], int] = {}
    for i, p in enumerate(params):
        by_storage.setdefault((p.data_ptr(), tuple(p.shape), tuple(p.stride())), i)

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            i = by_id.get(id(value))
            if i is None and live:
                i = live.get(id(value))
            if i is None and value.layout == torch.strided and not value.is_meta:
                try:
                    i = by_storage.get((value.data_ptr(), tuple(value.shape), tuple(value.stride())))
                except RuntimeError:  # tensors without storage (functional wrappers)
                    i = None
            if i is not None:
                seen.add(i)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
        elif isinstance(value, Mapping):
            for v in value.values():
                visit(v)

    class ReadRecorder(TorchFunctionMode):  # type: ignore[misc,unused-ignore]  # Any without torch
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            visit(args)
            visit(kwargs)
            return func(*args, **kwargs)

    return ReadRecorder()


@contextmanager
def _checkpoint_calls(seen: set[str]) -> Iterator[None]:
    """Add to ``seen`` the kind of every ``torch.utils.checkpoint.checkpoint`` call made inside the block.

    ``checkpoint`` reaches each mode through a module global (``CheckpointFunction.apply`` for reentrant,
    ``_checkpoint_without_reentrant_generator`` otherwise), so wrapping those two sees the calls however the
    user imported ``checkpoint``.
    """
    import torch.utils.checkpoint as ckpt

    reentrant = getattr(ckpt, "CheckpointFunction", None)
    generator = getattr(ckpt, "_checkpoint_without_reentrant_generator", None)
    if reentrant is None or generator is None:  # another torch layout: record nothing rather than guess
        yield
        return

    reentrant_apply = reentrant.apply

    class Reentrant:
        @staticmethod
        def apply(*args: Any) -> Any:
            seen.add("reentrant")
            return reentrant_apply(*args)

    def non_reentrant(*args: Any, **kwargs: Any) -> Any:
        seen.add("non_reentrant")
        return generator(*args, **kwargs)

    ckpt.CheckpointFunction = Reentrant
    ckpt._checkpoint_without_reentrant_generator = non_reentrant
    try:
        yield
    finally:
        ckpt.CheckpointFunction = reentrant
        ckpt._checkpoint_without_reentrant_generator = generator


def batch_list(batch: Any, steps: int) -> list[Any]:
    """The batches of ``steps`` steps: step ``i`` uses batch ``i`` (cycling).

    One batch is a tensor, a mapping (``model(**batch)``), a tuple or a list (``model(*batch)``), or any other
    object with a shape; anything else iterable (a generator, an iterator, a ``DataLoader``) yields batches, of
    which the first ``steps`` are taken.
    """
    torch = _torch()
    one = isinstance(batch, (torch.Tensor, Mapping, tuple, list, str, bytes)) or hasattr(batch, "shape")
    if one or not hasattr(batch, "__iter__"):
        return [batch]
    import itertools

    batches = list(itertools.islice(iter(batch), steps))
    if not batches:
        raise UsageError(
            "No batch", detail="the factory's iterable of batches yielded none", hint="Yield at least one batch"
        )
    return batches


@dataclass
class Recording:
    """One process's run: the parameters (tied ones once), which entered an op, and which each backward pass
    reached (``passes[s]``: the indices of the parameters a gradient reached at step ``s``)."""

    names: list[str]
    params: list[Any]
    read: set[int] = field(default_factory=set)
    passes: list[set[int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpointing: set[str] = field(default_factory=set)  # "reentrant" / "non_reentrant": checkpoint calls seen


def parameters_of(model: Any) -> tuple[list[str], list[Any]]:
    """``named_parameters()`` as two lists; shared (tied) parameters are listed once, under the first name."""
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise UsageError("Not a PyTorch module", detail=type(model).__name__, hint="Pass a torch.nn.Module")
    pairs = list(model.named_parameters())
    return [n for n, _ in pairs], [p for _, p in pairs]


def record_torch(
    model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None, *, steps: int = 1, seed: int | None = 0
) -> Recording:
    """Run ``steps`` forward+backward passes (step ``i`` on batch ``i``, cycling) and record reads and arrivals."""
    torch = _torch()
    names, params = parameters_of(model)
    batches = batch_list(batch, steps)
    if seed is not None:
        torch.manual_seed(seed)
    rec = Recording(names, params)
    for step in range(steps):
        batch = batches[step % len(batches)]
        for p in params:
            p.grad = None
        with _read_mode(params, rec.read), _checkpoint_calls(rec.checkpointing):
            output = call_model(model, batch)
            loss = compute_loss(output, batch, loss_fn)
        if loss is None or not loss.requires_grad:
            if "no differentiable loss" not in " ".join(rec.notes):
                rec.notes.append("no differentiable loss: no output depends on a trainable parameter")
            rec.passes.append(set())
            continue
        loss.backward()
        rec.passes.append({i for i, p in enumerate(params) if p.grad is not None})
    for p in params:
        p.grad = None
    if not model.training and steps > 1:
        rec.notes.append("the model is in eval mode: layer-drop and dropout-like branches are off; call model.train()")
    if len(batches) < steps:
        rec.notes.append(f"{len(batches)} batches for {steps} steps: step i uses batch i mod {len(batches)}")
    return rec


def find_unused_torch(
    model: Any, batch: Any, loss_fn: Callable[..., Any] | None = None, *, steps: int = 1, seed: int | None = 0
) -> UnusedReport:
    """Run ``steps`` forward+backward passes and classify every parameter of ``model``."""
    rec = record_torch(model, batch, loss_fn, steps=steps, seed=seed)
    return build_report(rec.names, rec.params, rec.read, {0: rec.passes}, rec.notes, checkpointing=rec.checkpointing)


def find_unused_torch_ranks(
    build: Callable[[int], tuple[Any, Any, Callable[..., Any] | None]],
    world_size: int,
    *,
    steps: int = 1,
    seed: int | None = 0,
) -> UnusedReport:
    """Each rank's model and data from ``build(rank)``, run one after another in this process: the parameters
    a gradient reaches at the same step on some ranks only are ``rank_dependent``."""
    names: list[str] = []
    params: list[Any] = []
    read: set[str] = set()
    passes: dict[int, list[set[str]]] = {}
    notes: list[str] = []
    checkpointing: set[str] = set()
    for rank in range(world_size):
        rec = record_torch(*build(rank), steps=steps, seed=seed)
        checkpointing |= rec.checkpointing
        if rank == 0:
            names, params = rec.names, rec.params
        read |= {rec.names[i] for i in rec.read}
        passes[rank] = [{rec.names[i] for i in reached} for reached in rec.passes]
        notes += [n for n in rec.notes if n not in notes]
    index = {name: i for i, name in enumerate(names)}
    by_index = {r: [{index[n] for n in reached if n in index} for reached in ps] for r, ps in passes.items()}
    notes.append(
        f"{world_size} ranks run one after another in this process, each on the data the factory built for "
        "rank=, world_size=: a step is one backward pass on one rank"
    )
    read_index = {index[n] for n in read if n in index}
    return build_report(names, params, read_index, by_index, notes, ranks=world_size, checkpointing=checkpointing)


def build_report(
    names: list[str],
    params: list[Any],
    read: set[int],
    passes: Mapping[int, list[set[int]]],
    notes: list[str],
    *,
    ranks: int | None = None,
    checkpointing: set[str] | None = None,
    fsdp: tuple[str, Mapping[str, str]] | None = None,
) -> UnusedReport:
    """Classify parameter ``i`` from whether it entered an op (``i in read``) and which backward passes of each
    rank (``passes[rank][step]``: the indices reached) a gradient reached it in; scopes folded by module,
    one fix per group; each DDP configuration's outcome predicted.  ``ranks``: the number of ranks recorded
    apart (``None``: one process, taken as what every rank does); ``checkpointing``: the kinds of
    ``torch.utils.checkpoint`` calls seen; ``fsdp``: the FSDP wrapper's name and each parameter's unit, to
    predict FSDP in place of DDP."""
    rows: list[Row] = []
    usages: list[ParameterUsage] = []
    counts = {r: len(ps) for r, ps in passes.items()}
    total = sum(counts.values())
    for i, (name, p) in enumerate(zip(names, params, strict=True)):
        by_rank = {r: tuple(s for s, reached in enumerate(ps) if i in reached) for r, ps in passes.items()}
        usage = classify_usage(by_rank, counts) if p.requires_grad else "never"
        steps = tuple(sorted({s for ss in by_rank.values() for s in ss}))
        usages.append(ParameterUsage(name, usage, steps, by_rank if ranks is not None else None))
        used = sum(len(ss) for ss in by_rank.values())
        if not p.requires_grad:
            kind = "frozen"
        elif usage == "always":
            continue
        elif usage in ("sometimes", "rank_dependent"):
            kind = usage
        elif i in read:
            kind = "no_gradient"
        else:
            kind = "never_read"
        rows.append(Row(name, "", kind, int(p.numel()), tuple(p.shape), used if kind in _PARTIAL else None))
    rows = _with_module_scopes(names, rows)
    items = make_items("pytorch", rows, max(total, 1))
    mode = next((m for m in ("reentrant", "non_reentrant") if m in (checkpointing or ())), None)
    by_name = {r: [frozenset(names[i] for i in reached) for reached in ps] for r, ps in passes.items()}
    trainable = [n for n, p in zip(names, params, strict=True) if p.requires_grad]
    predictions = None if fsdp else predict(by_name, trainable, mode)

    def scopes(*kinds: str) -> list[str]:
        return list(dict.fromkeys(i.scope for i in items if i.kind in kinds))

    return UnusedReport(
        framework="pytorch",
        items=items,
        total_params=len(params),
        total_numel=sum(int(p.numel()) for p in params),
        steps=max(total, 1),
        notes=notes,
        parameters=usages,
        ranks=ranks,
        checkpointing=mode,
        predictions=predictions,
        recommended=None
        if predictions is None
        else recommend(predictions, mode, never=scopes("never_read", "no_gradient"), varying=scopes(*_PARTIAL)),
        fsdp=None if fsdp is None else predict_fsdp(by_name, trainable, fsdp[1], fsdp[0]),
    )


_PARTIAL = ("sometimes", "rank_dependent")


def _with_module_scopes(names: list[str], rows: list[Row]) -> list[Row]:
    """Scope of a parameter = the outermost module all of whose parameters share its kind.

    ``pooler.dense.weight`` and ``pooler.dense.bias`` both never read -> scope ``pooler``;
    ``embeddings.position_embeddings.weight`` alone -> ``embeddings.position_embeddings``.
    """
    kind_of = {r.name: r.kind for r in rows}
    module_kinds: dict[str, set[str | None]] = {}
    for name in names:
        parts = name.split(".")
        for depth in range(len(parts)):
            module_kinds.setdefault(".".join(parts[:depth]), set()).add(kind_of.get(name))
    out = []
    for r in rows:
        parts = r.name.split(".")
        scope = ".".join(parts[:-1])
        for depth in range(1, len(parts)):
            candidate = ".".join(parts[:depth])
            if module_kinds.get(candidate) == {r.kind}:
                scope = candidate
                break
        out.append(Row(r.name, scope or "(root)", r.kind, r.numel, r.shape, r.steps_used))
    return out


def restore_setup(model: Any, ckpt: Any) -> RestoreSetup:
    """What ``model.load_state_dict(sd, strict=False)`` is given and matches, ``sd`` being the file's state dict
    as saved: no prefix is aligned here; an alignment that restores more becomes the report's ``fix``.

    A training-state file nests the weights (``{"model": sd, "optimizer": ...}``): the reader keeps the key
    paths of the dicts that hold tensors (``tensor_dicts``), and ``sd`` is the one that fits the model best,
    indexed out as the user would (``torch.load(f, weights_only=True)["model"]``).  A dotted prefix on flat keys (DDP's
    ``module.``, a head model's ``bert.``) is not a dict: ``load_state_dict`` does not see through it.
    """
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise UsageError("Not a PyTorch module", detail=type(model).__name__, hint="Pass a torch.nn.Module")
    state = {k: tuple(int(d) for d in t.shape) for k, t in model.state_dict().items()}
    modules = [name for name, _ in model.named_modules() if name]
    groups = _by_dict(ckpt)

    def fit(path: tuple[Any, ...]) -> tuple[int, int, int]:
        keys = _relative(path, groups[path])
        aligned = realign(keys, state, modules)[2]
        return aligned, sum(k in set(keys) for k in state), -len(path)

    path = max(groups, key=fit)
    prefix = "".join(f"{k}." for k in path)
    names = groups[path]
    keys = _relative(path, names)
    load = _load_code(ckpt, path)
    variables = [ModelVariable(prefix + k, k, shape) for k, shape in state.items()]
    as_is = sum(k in set(keys) for k in state)
    strip, into, restored = realign(keys, state, modules)
    fix = None
    if restored > as_is:  # the keys line up better: the fix says so, and what of it still does not fit
        shapes = {k: tuple(ckpt[name].shape) for k, name in zip(keys, names, strict=True)}
        fix = _fix(load, shapes, state, strip, into)
    root = ".".join(str(k) for k in path)
    return RestoreSetup(variables, root, f"{load}\nmodel.load_state_dict(sd, strict=False)", set(names), prefix, fix)


def _by_dict(ckpt: Any) -> dict[tuple[Any, ...], list[str]]:
    """Record names by the innermost dict (a key path, ``()`` = the file's root) that holds them."""
    paths = [tuple(p) for p in ckpt.metadata.get("tensor_dicts") or [()]]
    dotted = sorted(((".".join(map(str, p)), p) for p in paths), key=lambda e: -len(e[0]))
    groups: dict[tuple[Any, ...], list[str]] = {}
    for r in ckpt.values():
        home = next((p for d, p in dotted if not d or r.name.startswith(d + ".")), ())
        groups.setdefault(home, []).append(r.name)
    return groups


def _relative(path: tuple[Any, ...], names: list[str]) -> list[str]:
    prefix = "".join(f"{k}." for k in path)
    return [n[len(prefix) :] for n in names]


def _load_code(ckpt: Any, path: tuple[Any, ...]) -> str:
    """The line that makes ``sd`` what the user passes: the file's dict, indexed down to ``path``."""
    files = [f for f in ckpt.files if not f.endswith(".json")]
    if ckpt.format == "safetensors":
        head, one = "from safetensors.torch import load_file", "load_file({})"
    else:
        head, one = "import torch", "torch.load({}, weights_only=True)"
    if len(files) == 1:
        return f"{head}\nsd = {one.format(repr(files[0]))}" + "".join(f"[{k!r}]" for k in path)
    return f"{head}\nsd = {{k: v for f in {files!r} for k, v in {one.format('f')}.items()}}"


def _fix(
    load: str, shapes: Mapping[str, tuple[int, ...]], state: Mapping[str, tuple[int, ...]], strip: str, into: str
) -> RestoreFix:
    """The aligned call as code, and what torch's own result of it will say.  A key whose value has another
    shape than the model's is left out of the call (``load_state_dict`` raises on a size mismatch even with
    ``strict=False``) and reported, never counted as restored."""
    keys = list(shapes)
    every = all(k.startswith(strip) for k in keys)
    if not strip:
        given, arg = keys, "sd"
    elif every:
        given, arg = [k[len(strip) :] for k in keys], f"{{k.removeprefix({strip!r}): v for k, v in sd.items()}}"
    else:
        given = [k[len(strip) :] for k in keys if k.startswith(strip)]
        arg = f"{{k.removeprefix({strip!r}): v for k, v in sd.items() if k.startswith({strip!r})}}"
    inner = {k[len(into) + 1 :]: k for k in state if k.startswith(into + ".")} if into else {k: k for k in state}
    target = module_expression(into)
    present = set(given)
    mismatched = tuple(
        (k, shapes[strip + k], state[full])
        for k, full in inner.items()
        if k in present and shapes[strip + k] != state[full]
    )
    restored = sum(k in present for k in inner) - len(mismatched)
    if not mismatched:
        code = f"{load}\n{target}.load_state_dict({arg}, strict=False)"
    elif restored:
        code = (
            f"{load}\nsd = {arg}\nown = {target}.state_dict()\n"
            f"# {len(mismatched)} tensors of other shapes are left out: they keep the model's initial values\n"
            f"{target}.load_state_dict({{k: v for k, v in sd.items() if k not in own or v.shape == own[k].shape}}, "
            "strict=False)"
        )
    else:
        code = ""  # nothing fits: no call to run, the report says to build the model with the file's config
    return RestoreFix(
        code,
        restored,
        strip,
        into,
        missing=tuple(k for k in inner if k not in present),
        unexpected=tuple(k for k in given if k not in inner),
        untouched=tuple(k for k in state if into and not k.startswith(into + ".")),
        left_out=() if every else tuple(k for k in keys if not k.startswith(strip)),
        mismatched=mismatched,
    )
