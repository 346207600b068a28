"""Named, invertible tensor transforms: the only way a value changes layout on its way across.

A transform is a value in the plan (``"transpose"``, ``"permute(3,2,0,1)"``,
``"reshape(12,64,768)"``), applied by one function and inverted by one function,
so round trips come for free.  Shapes are never squeezed or reshaped to make
them fit: a reshape must be named by a rule with its explicit target shape, a squeeze with its axis.

``gates(zrh->rzh)`` reorders equal blocks along axis 0 (recurrent gates: Keras' GRU
order update, reset, candidate = z, r, h is torch's r, z, n; the candidate keeps one
letter so the spec is a permutation); ``row(k)`` takes index ``k`` of axis 0 (one of
the two bias rows of a Keras GRU) and is undone by ``place(k,n)``: the value becomes
part ``k`` of ``n`` along a new axis 0, which the writer stacks with the other parts.
``sum(k,n)`` makes the value term ``k`` of ``n`` that the writer adds up (Keras' one LSTM
bias is torch's ``bias_ih + bias_hh``); its inverse ``term(k,n)`` splits a value into ``n``
terms that add up to it: term 0 is the value, the others are zeros.  ``block(k,n)`` makes the value
block ``k`` of ``n`` equal blocks that the writer concatenates along axis 0 (Keras' query, key and value
kernels are torch's one ``in_proj_weight``); its inverse ``chunk(k,n)`` takes block ``k`` of ``n`` back
out.  A third argument names another axis: ``block(k,n,1)`` / ``chunk(k,n,1)`` join and split along axis 1
(GPT-2's Conv1D ``c_attn`` kernel is ``[in, 3 * out]``: query, key and value side by side).  A fourth argument
``g`` splits that axis into ``g`` equal groups, each of ``n`` blocks: ``block(k,n,axis,g)`` makes the value's ``g``
groups block ``k`` of each of the target's (one projection whose rows hold per head its query, key and value:
``g`` heads of ``n`` blocks), and ``chunk(k,n,axis,g)`` takes block ``k`` of each group back out.
``squeeze(k)`` drops axis ``k``, which must have size 1 (GPT-2's Conv1D kernels are stored ``[1, nx, nf]``;
torch's are ``[nx, nf]``), and ``unsqueeze(k)`` puts it back: a rule names the axis, so a shape that has no size-1
axis there is a mismatch, never a forced fit.  :func:`assemble` is the one function that builds a target from its
parts, for the writer and for ``verify`` alike.
``join(k,axis,s0,s1,...)`` makes the value block ``k`` of blocks of sizes ``s0, s1, ...`` along ``axis`` that the
writer concatenates, the blocks unequal (Phi-3's ``qkv_proj`` under grouped-query attention: fewer key and value rows
than query rows); its inverse ``cut(k,axis,s0,s1,...)`` takes block ``k`` back out.
``prepend(k)`` puts ``k`` rows of zeros ahead of axis 0 (transformers' RoBERTa position table keeps two rows for
its padding offset that KerasHub's lacks), and ``drop(k)`` takes the first ``k`` rows of axis 0 away again.
``reverse`` reverses every axis, whatever the rank: transformers' own TF -> PyTorch rule for a kernel
that one layer name stores as ``[in, out]`` (a Dense) or ``[out/g, in/g, g]`` (ConvBERT's grouped linear layer,
torch's ``[g, in/g, out/g]``), as the config decides.
Steps chain with ``|``, applied left to right: ``transpose|gates(zrh->rzh)``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SPEC = re.compile(
    r"^(identity|transpose|reverse|permute|reshape|row|place|term|sum|block|chunk|squeeze|unsqueeze|prepend|drop|join|cut)(?:\(([-\d,\s]*)\))?$"
)
_GATES = re.compile(r"^gates\(([a-z]+)->([a-z]+)\)$")


@dataclass(frozen=True)
class Transform:
    """A layout change; ``str(t)`` is its spec and parses back with :func:`parse`."""

    op: str
    args: tuple[int, ...] = ()
    gates: tuple[str, str] = ("", "")  # (from order, to order) for ``gates``
    steps: tuple[Transform, ...] = ()  # for ``chain``

    def __str__(self) -> str:
        if self.op in ("identity", "transpose", "reverse"):
            return self.op
        if self.op == "gates":
            return f"gates({self.gates[0]}->{self.gates[1]})"
        if self.op == "chain":
            return "|".join(map(str, self.steps))
        return f"{self.op}({','.join(map(str, self.args))})"

    def shape(self, shape: tuple[int, ...]) -> tuple[int, ...] | None:
        """The output shape for an input ``shape``; ``None`` where the transform does not apply."""
        if self.op in ("identity", "term", "sum"):
            return shape
        if self.op == "transpose":
            return shape[::-1] if len(shape) == 2 else None
        if self.op == "reverse":
            return shape[::-1]
        if self.op == "permute":
            return tuple(shape[i] for i in self.args) if len(shape) == len(self.args) else None
        if self.op == "reshape":
            return self.args if math.prod(shape) == math.prod(self.args) else None
        if self.op == "gates":
            return shape if shape and shape[0] % len(self.gates[0]) == 0 else None
        if self.op == "row":
            return shape[1:] if shape and 0 <= self.args[0] < shape[0] else None
        if self.op == "place":
            return (self.args[1], *shape)
        if self.op == "block":
            a, g = self.axis, self.groups
            fits = a < len(shape) and shape[a] % g == 0
            return (*shape[:a], self.args[1] * shape[a], *shape[a + 1 :]) if fits else None
        if self.op == "chunk":
            a, n = self.axis, self.args[1]
            fits = a < len(shape) and shape[a] % (n * self.groups) == 0
            return (*shape[:a], shape[a] // n, *shape[a + 1 :]) if fits else None
        if self.op == "squeeze":
            k = self.args[0]
            return shape[:k] + shape[k + 1 :] if k < len(shape) and shape[k] == 1 else None
        if self.op == "unsqueeze":
            k = self.args[0]
            return (*shape[:k], 1, *shape[k:]) if k <= len(shape) else None
        if self.op in ("join", "cut"):
            k, a, sizes = self.args[0], self.args[1], self.args[2:]
            have, want = (sizes[k], sum(sizes)) if self.op == "join" else (sum(sizes), sizes[k])
            return (*shape[:a], want, *shape[a + 1 :]) if a < len(shape) and shape[a] == have else None
        if self.op == "prepend":
            return (shape[0] + self.args[0], *shape[1:]) if shape else None
        if self.op == "drop":
            return (shape[0] - self.args[0], *shape[1:]) if shape and shape[0] >= self.args[0] else None
        if self.op == "chain":
            out: tuple[int, ...] | None = shape
            for step in self.steps:
                out = step.shape(out) if out is not None else None
            return out
        raise AssertionError(self.op)  # noqa: S101 - ops are validated by parse()

    def apply(self, value: np.ndarray) -> np.ndarray:
        """Apply to a value; the result is C-contiguous (writers need contiguous bytes).

        ``place``, ``sum`` and ``block`` return the part alone; :func:`assemble` stacks, adds or concatenates
        the parts of one target.
        """
        if self.op in ("identity", "place", "sum", "block", "join"):
            return value
        if self.op == "term":
            return np.ascontiguousarray(value if self.args[0] == 0 else np.zeros_like(value))
        if self.op == "transpose":
            return _transpose_2d(value)
        if self.op == "reverse":
            return np.ascontiguousarray(np.transpose(value))
        if self.op == "permute":
            return np.ascontiguousarray(np.transpose(value, self.args))
        if self.op == "reshape":
            return np.ascontiguousarray(value).reshape(self.args)
        if self.op == "gates":
            blocks = np.split(value, len(self.gates[0]), axis=0)
            by_name = dict(zip(self.gates[0], blocks, strict=True))
            return np.ascontiguousarray(np.concatenate([by_name[g] for g in self.gates[1]], axis=0))
        if self.op == "row":
            return np.ascontiguousarray(value[self.args[0]])
        if self.op == "chunk":
            k, n, a = self.args[0], self.args[1], self.axis
            groups = np.split(value, self.groups, axis=a)
            return np.ascontiguousarray(np.concatenate([np.split(g, n, axis=a)[k] for g in groups], axis=a))
        if self.op == "cut":
            k, a, sizes = self.args[0], self.args[1], self.args[2:]
            start = sum(sizes[:k])
            return np.ascontiguousarray(np.take(value, range(start, start + sizes[k]), axis=a))
        if self.op == "squeeze":  # to a scalar too (CLIP's logit_scale [1] -> []): ascontiguousarray makes it [1]
            out = np.squeeze(value, axis=self.args[0])
            return out if out.flags.c_contiguous else np.ascontiguousarray(out)
        if self.op == "unsqueeze":
            return np.ascontiguousarray(np.expand_dims(value, self.args[0]))
        if self.op == "prepend":
            zeros = np.zeros((self.args[0], *value.shape[1:]), dtype=value.dtype)
            return np.ascontiguousarray(np.concatenate([zeros, value]))
        if self.op == "drop":
            return np.ascontiguousarray(value[self.args[0] :])
        for step in self.steps:
            value = step.apply(value)
        return value

    def inverse(self, source_shape: tuple[int, ...]) -> Transform:
        """The transform that undoes this one for inputs of ``source_shape``."""
        if self.op in ("identity", "transpose", "reverse"):
            return self
        if self.op == "permute":
            inv = [0] * len(self.args)
            for i, axis in enumerate(self.args):
                inv[axis] = i
            return Transform("permute", tuple(inv))
        if self.op == "gates":
            return Transform("gates", gates=(self.gates[1], self.gates[0]))
        if self.op == "row":
            return Transform("place", (self.args[0], source_shape[0]))
        if self.op == "place":
            return Transform("row", (self.args[0],))
        if self.op in _INVERSES:
            return Transform(_INVERSES[self.op], self.args)
        if self.op == "chain":
            shapes = [source_shape]
            for step in self.steps[:-1]:
                shapes.append(step.shape(shapes[-1]) or ())
            inverted = [step.inverse(s) for step, s in zip(self.steps, shapes, strict=True)]
            return chain(*reversed(inverted))
        return Transform("reshape", tuple(source_shape))

    @property
    def axis(self) -> int:
        """The axis ``block`` / ``join`` joins along and ``chunk`` / ``cut`` splits (0 where none is named)."""
        if self.op in ("join", "cut"):
            return self.args[1]
        return self.args[2] if self.op in ("block", "chunk") and len(self.args) >= 3 else 0

    @property
    def groups(self) -> int:
        """The groups ``block`` / ``chunk`` interleave their blocks in along their axis (1 where none is named)."""
        return self.args[3] if self.op in ("block", "chunk") and len(self.args) == 4 else 1

    @property
    def splits(self) -> bool:
        """Whether this transform takes one part of its source (starts with ``row``, ``term`` or ``chunk``): a
        source of several targets."""
        return (self.steps[0] if self.op == "chain" else self).op in ("row", "term", "chunk", "cut")

    @property
    def part(self) -> tuple[int, int] | None:
        """``(k, n)`` when this transform yields part ``k`` of ``n`` of its target (ends in ``place``, ``sum`` or
        ``block``, ``join``); trailing part steps nest, the last one outermost (``block(1,2,1)|place(3,4)``: part
        ``3 * 2 + 1`` of ``8``)."""
        steps = self.steps if self.op == "chain" else (self,)
        k, n, nested = 0, 1, False
        for step in reversed(steps):
            if step.op not in _PARTS:
                break
            own = len(step.args) - 2 if step.op == "join" else step.args[1]
            k, n, nested = k * own + step.args[0], n * own, True
        return (k, n) if nested else None

    @property
    def joins(self) -> str:
        """How the parts of this transform's target are joined: its last step (``place``, ``sum``, ``block``)."""
        return (self.steps[-1] if self.op == "chain" else self).op


def chain(*steps: Transform) -> Transform:
    """Steps applied left to right, identities dropped; one step is itself."""
    flat = [s for step in steps for s in (step.steps if step.op == "chain" else (step,)) if s.op != "identity"]
    if not flat:
        return IDENTITY
    return flat[0] if len(flat) == 1 else Transform("chain", steps=tuple(flat))


_PARTS = ("place", "sum", "block", "join")
_INVERSES = {
    "term": "sum",
    "sum": "term",
    "block": "chunk",
    "chunk": "block",
    "squeeze": "unsqueeze",
    "unsqueeze": "squeeze",
    "prepend": "drop",
    "drop": "prepend",
    "join": "cut",
    "cut": "join",
}
_TILE = 256  # elements per side: a tile of each operand stays in cache while it is copied
_CACHE_LINE = 64  # bytes
# Source rows this many bytes apart (or a multiple) fall into few sets of a CPU's L1 cache (its set index is taken
# from address bits 6-11): a 256-row tile then evicts itself while it is read.
_SET_CONFLICT_STRIDE = 2048


def _transpose_2d(value: np.ndarray) -> np.ndarray:
    """``value.T`` made contiguous, 2-5x faster than numpy's one strided copy on large kernels.

    Tile by tile, unless the source's row stride is a multiple of 2 KiB (BERT's ``[768, 3072]`` kernels, most
    power-of-two widths): its tiles conflict in cache, so it goes by strips of one cache line of output instead
    (a few source rows, read whole, written as one line into each output row)."""
    rows, cols = value.shape
    if rows * cols < _TILE * _TILE * 4:
        return np.ascontiguousarray(value.T)
    out = np.empty((cols, rows), dtype=value.dtype)
    if (cols * value.itemsize) % _SET_CONFLICT_STRIDE == 0:
        strip = max(1, _CACHE_LINE // value.itemsize)
        for i in range(0, rows, strip):
            out[:, i : i + strip] = value[i : i + strip].T
        return out
    for i in range(0, rows, _TILE):
        for j in range(0, cols, _TILE):
            out[j : j + _TILE, i : i + _TILE] = value[i : i + _TILE, j : j + _TILE].T
    return out


def assemble(parts: Sequence[tuple[Transform, np.ndarray]]) -> np.ndarray:
    """One target from its parts' values (each already through its transform), in part order: stacked along a
    new axis 0 (``place``), added in the values' own dtype (``sum``) or concatenated along the block's axis
    (``block``); a single part is returned as it is.  Parts nested by trailing part steps (``block(k,2,1)|place(e,n)``:
    block ``k`` of row ``e``) are joined innermost first."""
    if len(parts) == 1:
        return parts[0][1]
    outer = _last(parts[0][0])
    groups: dict[int, list[tuple[Transform, np.ndarray]]] = {}
    for transform, value in parts:
        groups.setdefault(_last(transform).args[0], []).append((_before_last(transform), value))
    values = [assemble(groups[k]) for k in sorted(groups)]
    if outer.op == "sum":
        total = values[0].copy()
        for value in values[1:]:
            total += value
        return np.ascontiguousarray(total)
    if outer.op in ("block", "join"):
        axis, groups = outer.axis, outer.groups
        split = [np.split(value, groups, axis=axis) for value in values]  # group j of each block, in block order
        return np.ascontiguousarray(np.concatenate([s[j] for j in range(groups) for s in split], axis=axis))
    return np.ascontiguousarray(np.stack(values))


def _last(transform: Transform) -> Transform:
    return transform.steps[-1] if transform.op == "chain" else transform


def _before_last(transform: Transform) -> Transform:
    return chain(*transform.steps[:-1]) if transform.op == "chain" else IDENTITY


IDENTITY = Transform("identity")
TRANSPOSE = Transform("transpose")


def parse(spec: str | Transform | None) -> Transform:
    """``"permute(3,2,0,1)"`` -> ``Transform('permute', (3, 2, 0, 1))``; ``None`` is identity."""
    if spec is None:
        return IDENTITY
    if isinstance(spec, Transform):
        return spec
    spec = spec.replace(" ", "")
    if "|" in spec:
        return chain(*(_parse_one(step) for step in spec.split("|")))
    return _parse_one(spec)


def _parse_one(spec: str) -> Transform:
    g = _GATES.match(spec)
    if g:
        if sorted(g.group(1)) != sorted(g.group(2)) or len(set(g.group(1))) != len(g.group(1)):
            raise ValueError(f"gates needs two orders of the same distinct letters, got {spec!r}")
        return Transform("gates", gates=(g.group(1), g.group(2)))
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(
            f"unknown transform {spec!r}; known: identity, transpose, reverse, permute(...), reshape(...), "
            "gates(abc->bca), row(k), place(k,n), term(k,n), sum(k,n), block(k,n[,axis[,g]]), chunk(k,n[,axis[,g]]), "
            "squeeze(k), "
            "unsqueeze(k), prepend(k), drop(k), join(k,axis,s0,s1,...), cut(k,axis,s0,s1,...), and chains a|b"
        )
    op, raw = m.group(1), m.group(2)
    args = tuple(int(a) for a in raw.split(",") if a) if raw else ()
    if op == "permute" and sorted(args) != list(range(len(args))):
        raise ValueError(f"permute needs a permutation of 0..n-1, got {args}")
    if op == "reverse" and raw is not None:
        raise ValueError(f"reverse takes no arguments, got {spec!r}")
    if op in ("permute", "reshape") and not args:
        raise ValueError(f"{op} needs arguments")
    pair = op in ("place", "term", "sum", "block", "chunk")
    single = op in ("row", "squeeze", "unsqueeze", "prepend", "drop")
    sizes = (2, 3, 4) if op in ("block", "chunk") else (2,)  # block/chunk: an optional axis, then groups
    bad_pair = pair and (len(args) not in sizes or not 0 <= args[0] < args[1] or min(args) < 0)
    bad_pair = bad_pair or (pair and len(args) == 4 and args[3] < 1)
    if (single and (len(args) != 1 or args[0] < 0)) or bad_pair:
        want = "(k,n[,axis[,g]])" if len(sizes) > 1 else "(k,n)"
        raise ValueError(f"{op} needs {'(k)' if single else want + ' with 0 <= k < n'}, got {args}")
    if op in ("join", "cut") and (len(args) < 4 or not 0 <= args[0] < len(args) - 2 or min(args) < 0):
        raise ValueError(f"{op} needs (k,axis,s0,s1,...) with two sizes or more and 0 <= k < their count, got {args}")
    return Transform(op, args)
